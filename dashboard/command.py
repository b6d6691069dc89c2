"""``sidetrace dashboard``: the trace pages, JSON APIs and SLO evaluation on one port."""

from __future__ import annotations

import argparse
import sys

from dashboard import PORT, SLO_INTERVAL_S
from runtime.coordination import add_coordinator_flag
from tracestore.store import add_clickhouse_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("dashboard", help="serve the dashboard and its JSON APIs")
    add_clickhouse_flag(parser)
    parser.add_argument("--port", type=int, default=PORT, help="HTTP port")
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on")
    parser.add_argument(
        "--slo", action="append", default=[], metavar="FILE", help="SLO file (repeatable)"
    )
    parser.add_argument(
        "--slo-interval",
        type=float,
        default=SLO_INTERVAL_S,
        metavar="SECONDS",
        help="seconds between SLO evaluations",
    )
    parser.add_argument(
        "--slo-time-scale",
        type=float,
        default=1.0,
        help="TEST ONLY: divide SLO windows, for, keep_firing_for and repeat_interval by this",
    )
    parser.add_argument(
        "--external-url", default="", help="URL users reach the dashboard at (for links in alerts)"
    )
    parser.add_argument("--auth-token", default=None, help="require this bearer token")
    parser.add_argument(
        "--basic-auth", default=None, metavar="USER:PASSWORD", help="require basic auth"
    )
    parser.add_argument(
        "--max-trace-spans", type=int, default=None, help="spans loaded per trace at most"
    )
    add_coordinator_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from dashboard.app import create_app
    from dashboard.context import DEFAULT_MAX_TRACE_SPANS, AuthSettings, DashboardContext
    from dashboard.slo_evaluator import JOB
    from dashboard.slo_routes import STATE_KEY, load_evaluator
    from runtime.coordination import CoordinatorError, open_leaderships
    from slospec.slo_config import SloConfigError
    from tracestore.migrate import migrate
    from tracestore.store import open_store

    for flag, value in (
        ("--slo-interval", args.slo_interval),
        ("--slo-time-scale", args.slo_time_scale),
    ):
        if not value > 0:
            print(f"sidetrace dashboard: {flag} must be > 0, got {value:g}", file=sys.stderr)
            return 2
    try:
        auth = AuthSettings.from_flags(args.auth_token, args.basic_auth)
    except ValueError as exc:
        raise SystemExit(f"sidetrace dashboard: {exc}") from None
    store = open_store(args.clickhouse)
    migrate(store)
    ctx = DashboardContext(
        store=store,
        external_url=args.external_url or f"http://127.0.0.1:{args.port}",
        auth=auth,
        slo_files=list(args.slo),
        max_trace_spans=args.max_trace_spans or DEFAULT_MAX_TRACE_SPANS,
        slo_interval=args.slo_interval,
        slo_time_scale=args.slo_time_scale,
    )
    coordinator = None
    if ctx.slo_files:
        # Refuse invalid SLO files with one line each, before serving anything.
        try:
            evaluator = ctx.state[STATE_KEY] = load_evaluator(ctx)
        except SloConfigError as exc:
            for line in exc.errors:
                print(f"sidetrace dashboard: {line}", file=sys.stderr)
            return 2
        try:
            coordinator, leaderships = open_leaderships(args.coordinator, (JOB,), "dashboard")
        except CoordinatorError as exc:
            raise SystemExit(f"sidetrace dashboard: {exc}") from None
        evaluator.stand(leaderships[JOB], coordinator.identity if coordinator else "")
    try:
        uvicorn.run(create_app(ctx), host=args.host, port=args.port, log_level="warning")
    finally:
        if coordinator is not None:
            coordinator.close()
    return 0
