"""The one command line, ``sidetrace <subcommand>``.

Each component registers its own subcommand through a ``register(subparsers)``
function in its ``*_command`` module; this file only assembles them. Every flag
can also be set from the environment (dashes become underscores):
``SIDETRACE_<FLAG>``, or ``SIDETRACE_<COMMAND>_<FLAG>`` for a flag that unrelated
commands both define (``--port`` of the dashboard and of the webhook), so one
variable never configures two different things. Environment values are checked
like flags, only for the command that runs, and a bad one is one line naming
the variable, exit 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version

from collector import command as collector_command
from dashboard import alerter_command
from dashboard import command as dashboard_command
from sidecar import command as sidecar_command
from sidecar import inject_command, webhook_command
from sidetrace import demo_command, migrate_command
from tracestore.store import StoreError

# Flags that mean the same thing in every command that has them: one variable for all.
SHARED_FLAGS = frozenset({"clickhouse", "log-level"})
# Commands that configure one thing together, so a flag they share means the same:
# the proxy and how it is put into pods; the SLO evaluator wherever it runs; the
# single-machine stacks.
RELATED_COMMANDS = (
    frozenset({"sidecar", "iptables-init", "inject", "uninject", "webhook"}),
    frozenset({"dashboard", "alerter"}),
    frozenset({"demo", "all-in-one"}),
)


class EnvDefaultsParser(argparse.ArgumentParser):
    """An ArgumentParser whose optional flags default to an environment variable.

    The variable of each flag is assigned by :func:`assign_env_variables` once every
    command is registered; values are read and converted when the parser parses, so
    a bad value breaks only the command that uses it, never ``--help``.
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        errors = []
        for action in self._actions:
            env = getattr(action, "env_variable", None)
            if env is not None and env in os.environ:
                try:
                    self._apply_env_default(action, os.environ[env])
                except EnvValueError as exc:
                    errors.append(f"{env}={os.environ[env]!r}: {exc}")
        parsed = super().parse_known_args(args, namespace)  # --help exits here, before errors
        if errors:
            self.exit(2, f"sidetrace: {errors[0]}\n")
        return parsed

    def _apply_env_default(self, action: argparse.Action, value: str) -> None:
        action.required = False
        if isinstance(action, argparse._AppendAction):
            action.default = [env_value(action, item) for item in value.split(",") if item]
        elif isinstance(action, argparse._StoreTrueAction):
            truthy, falsy = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
            if value.lower() not in truthy + falsy:
                raise EnvValueError("expected true or false")
            action.default = value.lower() in truthy
        else:
            action.default = env_value(action, value)


class EnvValueError(ValueError):
    """An environment variable's value that its flag would refuse."""


def env_value(action: argparse.Action, value: str):
    """Convert and check one environment value as argparse would the flag's."""
    try:
        converted = action.type(value) if callable(action.type) else value
    except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
        expected = {int: "expected an integer", float: "expected a number"}
        raise EnvValueError(expected.get(action.type) or str(exc) or "invalid value") from None
    if action.choices is not None and converted not in action.choices:
        raise EnvValueError("choose from " + ", ".join(map(str, action.choices)))
    return converted


def package_version() -> str:
    try:
        return version("sidetrace")
    except PackageNotFoundError:
        return "unknown"


# Each component's command module: its flags and defaults, nothing heavy at import (its
# ``run`` imports the rest), so every image, the slim sidecar one included, has them all.
COMMAND_MODULES = (
    migrate_command,
    collector_command,
    sidecar_command,
    inject_command,
    webhook_command,
    dashboard_command,
    alerter_command,
    demo_command,
)


def register_commands(subparsers: argparse._SubParsersAction) -> None:
    for module in COMMAND_MODULES:
        module.register(subparsers)


def long_flag(action: argparse.Action) -> str | None:
    """The flag's long name, or None for flags no variable can set (--help, --version)."""
    if isinstance(action, argparse._HelpAction | argparse._VersionAction):
        return None
    flags = [o for o in action.option_strings if o.startswith("--")]
    return flags[0][2:] if flags else None


def command_parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """The parser of every (sub)command, with its command path (``("webhook", "certs")``)."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += command_parsers(sub, (*path, name))
    return found


def related(a: str, b: str) -> bool:
    return a == b or any(a in group and b in group for group in RELATED_COMMANDS)


def assign_env_variables(parser: argparse.ArgumentParser) -> None:
    """Give every flag its variable: ``SIDETRACE_<FLAG>`` unless unrelated commands share it."""
    parsers = command_parsers(parser)
    owners: dict[str, set[str]] = {}
    for path, sub in parsers:
        for action in sub._actions:
            if (flag := long_flag(action)) is not None:
                owners.setdefault(flag, set()).add(path[0] if path else "")
    for path, sub in parsers:
        command = path[0] if path else ""
        for action in sub._actions:
            flag = long_flag(action)
            if flag is None:
                continue
            shared = flag in SHARED_FLAGS or all(related(command, o) for o in owners[flag])
            scope = "" if shared or not command else command + "_"
            env = ("SIDETRACE_" + scope + flag).upper().replace("-", "_")
            action.env_variable = env  # type: ignore[attr-defined]
            if action.help and action.help is not argparse.SUPPRESS:
                action.help += f" [env {env}]"


def describe_commands(parser: argparse.ArgumentParser) -> None:
    """A subcommand without its own description shows its one-line help as one."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, sub in action.choices.items():
                if sub.description is None:
                    sub.description = helps.get(name)
                describe_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = EnvDefaultsParser(
        prog="sidetrace", description="Tracing sidecar, collector and dashboard on ClickHouse."
    )
    parser.add_argument("--version", action="version", version=f"sidetrace {package_version()}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="log level",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    register_commands(subparsers)
    describe_commands(parser)
    assign_env_variables(parser)
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
