"""``sidetrace alerter``: the SLO evaluator and alert delivery on their own, without pages.

Run it when the dashboard runs without ``--slo`` files (or not at all). Several
replicas may run with ``--coordinator zk://host:2181/path``: one leads and
notifies, the others evaluate and wait to take over. Without a coordinator run
only one per store, or notifications go out twice. Invalid SLO files are
refused at start (exit status 2) with one ``FILE:LINE: FIELD: message`` line per
problem; later edits are reloaded each interval, and an invalid edit keeps the
file's previous version running.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from dashboard import EXTERNAL_URL, SLO_INTERVAL_S
from runtime.coordination import add_coordinator_flag
from tracestore.store import add_clickhouse_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("alerter", help="evaluate SLOs and deliver alerts")
    add_clickhouse_flag(parser)
    parser.add_argument(
        "--slo", action="append", default=[], metavar="FILE", help="SLO file (repeatable)"
    )
    parser.add_argument(
        "--interval", type=float, default=SLO_INTERVAL_S, help="seconds between evaluations"
    )
    parser.add_argument(
        "--external-url",
        default=EXTERNAL_URL,
        help="the dashboard's URL, for links in notifications",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="TEST ONLY: divide SLO windows, for, keep_firing_for and repeat_interval by this",
    )
    add_coordinator_flag(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address of the admin port")
    parser.add_argument(
        "--admin-port", type=int, default=None, help="serve /healthz, /readyz, /metrics here"
    )
    parser.add_argument("--check", action="store_true", help="validate the SLO files and exit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dashboard.alerter_admin import serve_admin
    from dashboard.slo_evaluator import JOB, SloEvaluator
    from runtime.coordination import CoordinatorError, open_leaderships
    from slospec.slo_config import SloConfigError, SloConfigSet
    from tracestore.migrate import migrate
    from tracestore.store import open_store

    if not args.slo:
        print("sidetrace alerter: give at least one --slo FILE", file=sys.stderr)
        return 2
    if args.interval <= 0:
        print("sidetrace alerter: --interval must be > 0", file=sys.stderr)
        return 2
    if args.time_scale <= 0:
        print("sidetrace alerter: --time-scale must be > 0", file=sys.stderr)
        return 2
    store = open_store(args.clickhouse)
    migrate(store)
    try:
        config = SloConfigSet(list(args.slo), args.time_scale)
        evaluator = SloEvaluator(store, config, args.external_url)
        try:
            config.load(evaluator.known_services)
        except SloConfigError:
            evaluator.close()
            raise
    except SloConfigError as exc:
        for line in exc.errors:
            print(f"sidetrace alerter: {line}", file=sys.stderr)
        return 2
    if args.check:
        evaluator.close()
        print(f"ok: {len(config.slos)} SLO(s), {len(config.threshold_alerts)} threshold alert(s)")
        return 0

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        coordinator, leaderships = open_leaderships(args.coordinator, (JOB,), "alerter")
    except CoordinatorError as exc:
        evaluator.close()
        print(f"sidetrace alerter: {exc}", file=sys.stderr)
        return 2
    evaluator.stand(leaderships[JOB], coordinator.identity if coordinator else "")
    admin = None
    if args.admin_port is not None:
        try:
            admin = serve_admin(evaluator, args.host, args.admin_port)
        except OSError as exc:
            evaluator.close()
            print(f"sidetrace alerter: admin port {args.admin_port}: {exc}", file=sys.stderr)
            return 2
    evaluator.start(args.interval)
    print(
        f"sidetrace alerter: {len(config.slos)} SLO(s), {len(config.threshold_alerts)} "
        f"threshold alert(s), every {args.interval:g}s",
        flush=True,
    )
    stop.wait()
    if admin is not None:
        admin.shutdown()
    evaluator.close()
    if coordinator is not None:
        coordinator.close()
    return 0
