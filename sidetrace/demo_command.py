"""``sidetrace demo`` and ``sidetrace all-in-one``: everything on one machine, embedded store."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import signal
import sys
import threading
from importlib import resources
from pathlib import Path

from sidetrace.all_in_one import (
    DataInUse,
    DataLayout,
    EmbeddedStack,
    PortTaken,
    StackPorts,
    check_ports_free,
)

DEMO_SLO = "examples/slo-demo.yaml"


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="embedded store, collector, dashboard and a sample system under load",
        description="Start the embedded store, collector and dashboard, a sample system of five "
        "services each behind its own sidecar, and a load generator; print the dashboard URL.",
    )
    add_stack_flags(demo, default_data="./data/demo")
    demo.add_argument("--duration", type=positive, default=None, help="stop after SECONDS")
    demo.add_argument("--reset", action="store_true", help="start from an empty store")
    demo.add_argument("--rate", type=positive, default=10.0, help="requests per second to frontend")
    demo.add_argument(
        "--incident-start",
        type=float,
        default=30.0,
        help="first payments incident SECONDS after the sample system starts",
    )
    demo.add_argument(
        "--incident-every", type=float, default=180.0, help="payments incident period (0: none)"
    )
    demo.add_argument(
        "--incident-length", type=float, default=45.0, help="payments incident length in seconds"
    )
    demo.add_argument(
        "--slo-time-scale",
        type=positive,
        default=20.0,
        help="divide SLO windows and alert timers by this, so a 1 h burn-rate window "
        "lasts 3 min and the page alert fires and resolves with each incident",
    )
    demo.set_defaults(handler=run_demo_command)

    aio = subparsers.add_parser(
        "all-in-one",
        help="embedded store, collector and dashboard in one process",
        description="Collector and dashboard over one embedded ClickHouse (chDB) folder, "
        "for pointing your own OTLP exporters at.",
    )
    add_stack_flags(aio, default_data="./data/sidetrace")
    aio.set_defaults(handler=run_all_in_one)


def add_stack_flags(parser: argparse.ArgumentParser, default_data: str) -> None:
    parser.add_argument("--data", default=default_data, help="folder of the embedded store")
    parser.add_argument("--port", type=int, default=StackPorts.dashboard, help="dashboard port")
    parser.add_argument(
        "--grpc-port", type=int, default=StackPorts.grpc, help="collector OTLP/gRPC port"
    )
    parser.add_argument(
        "--http-port", type=int, default=StackPorts.http, help="collector OTLP/HTTP port"
    )
    parser.add_argument(
        "--admin-port", type=int, default=StackPorts.admin, help="collector admin port"
    )
    parser.add_argument(
        "--slo", action="append", default=None, help="SLO file (repeatable) for the dashboard"
    )


def quiet_client_logs() -> None:
    """An INFO line per request (load generator, health checks) would drown the output."""
    logging.getLogger("httpx").setLevel(logging.WARNING)


def stack_ports(args: argparse.Namespace) -> StackPorts:
    return StackPorts(
        grpc=args.grpc_port, http=args.http_port, admin=args.admin_port, dashboard=args.port
    )


def demo_slo_files(args: argparse.Namespace) -> list[str]:
    """The SLO files given, or the one shipped with the demo when none are."""
    if args.slo:
        return list(args.slo)
    shipped = resources.files("schemas") / DEMO_SLO
    return [str(shipped)] if shipped.is_file() else []


def run_demo_command(args: argparse.Namespace) -> int:
    from sidetrace.demo.runner import DemoOptions, run_demo
    from sidetrace.demo.system import StartupError

    quiet_client_logs()
    # `kill -USR1 PID` prints every thread's stack: what a demo that ignores Ctrl-C waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    options = DemoOptions(
        data=Path(args.data),
        ports=stack_ports(args),
        duration=args.duration,
        reset=args.reset,
        rate=args.rate,
        incident_start=args.incident_start,
        incident_every=args.incident_every,
        incident_length=args.incident_length,
        slo_files=demo_slo_files(args),
        slo_time_scale=args.slo_time_scale,
    )
    try:
        return run_demo(options)
    except (PortTaken, DataInUse, StartupError, RuntimeError) as exc:
        print(f"sidetrace demo: {exc}", file=sys.stderr)
        return 1


def run_all_in_one(args: argparse.Namespace) -> int:
    quiet_client_logs()
    ports = stack_ports(args)
    stack = EmbeddedStack(DataLayout(Path(args.data)), ports, list(args.slo or []))
    try:
        check_ports_free(ports)
        stack.take_data_folder()
        stack.start()
    except (PortTaken, DataInUse, RuntimeError) as exc:
        stack.stop()
        print(f"sidetrace all-in-one: {exc}", file=sys.stderr)
        return 1
    print(f"sidetrace all-in-one: data in {stack.data.root}")
    print(f"  OTLP/gRPC  127.0.0.1:{ports.grpc}   OTLP/HTTP  http://127.0.0.1:{ports.http}")
    print(f"  admin      http://127.0.0.1:{ports.admin}/metrics")
    print(f"  dashboard  {stack.dashboard_url}", flush=True)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        pass
    print("stopping: flushing the collector ...", flush=True)
    stack.stop()
    print(f"stopped. The data lives in {stack.data.root.resolve()}", flush=True)
    return 0
