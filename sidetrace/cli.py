"""The one command line, ``sidetrace <subcommand>``.

Each component registers its own subcommand through a ``register(subparsers)``
function in its ``*_command`` module; this file only assembles them. Every flag
can also be set from the environment as ``SIDETRACE_<FLAG>`` (dashes become
underscores), which is how Kubernetes manifests configure the components.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence

from sidetrace.store import StoreError

# Modules that provide ``register(subparsers)``; imported lazily so one broken
# component never takes the whole CLI down.
COMMAND_MODULES = (
    "sidetrace.migrate_command",
    "collector.command",
    "sidecar.command",
    "sidecar.inject_command",
    "sidecar.webhook_command",
    "dashboard.command",
    "dashboard.alerter_command",
    "sidetrace.demo_command",
)


class EnvDefaultsParser(argparse.ArgumentParser):
    """An ArgumentParser whose optional flags default to ``SIDETRACE_<FLAG>``."""

    def _add_action(self, action: argparse.Action) -> argparse.Action:
        action = super()._add_action(action)
        long_flags = [o for o in action.option_strings if o.startswith("--")]
        if long_flags and action.dest not in ("help",):
            env = "SIDETRACE_" + long_flags[0][2:].upper().replace("-", "_")
            value = os.environ.get(env)
            if value is not None:
                action.required = False
                if isinstance(action, argparse._AppendAction):
                    action.default = [v for v in value.split(",") if v]
                elif isinstance(action, argparse._StoreTrueAction):
                    action.default = value.lower() in ("1", "true", "yes", "on")
                else:
                    action.default = action.type(value) if callable(action.type) else value
            if action.help and action.help is not argparse.SUPPRESS:
                action.help += f" [env {env}]"
        return action


def add_clickhouse_flag(parser: argparse.ArgumentParser) -> None:
    from sidetrace.store import DEFAULT_URL

    parser.add_argument(
        "--clickhouse",
        default=DEFAULT_URL,
        help="store URL: chdb:PATH (embedded) or clickhouse://user:pass@host:9000/db",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = EnvDefaultsParser(
        prog="sidetrace", description="Tracing sidecar, collector and dashboard on ClickHouse."
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning or error")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # component not present in this build
            raise
        module.register(subparsers)
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # clickhouse-driver logs a traceback per failed connect; our errors say it in one line.
    logging.getLogger("clickhouse_driver").setLevel(logging.CRITICAL)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return int(handler(args) or 0)
    except StoreError as exc:
        print(f"sidetrace {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
