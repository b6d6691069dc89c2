"""The CLI's contract: environment variables checked like flags, one variable per meaning."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sidetrace.cli import RELATED_COMMANDS, SHARED_FLAGS, build_parser, command_parsers, related


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SIDETRACE_")}
    return subprocess.run(
        [sys.executable, "-m", "sidetrace", *args],
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("variable", "value", "command", "expected"),
    [
        ("SIDETRACE_COLLECTOR_GRPC_PORT", "abc", "collector", "expected an integer"),
        ("SIDETRACE_SPOOL_FSYNC", "sometimes", "collector", "choose from always"),
        ("SIDETRACE_DASHBOARD_PORT", "1.5", "dashboard", "expected an integer"),
        ("SIDETRACE_RESET", "maybe", "demo", "expected true or false"),
    ],
)
def test_a_bad_environment_value_is_one_line_naming_it(variable, value, command, expected):
    result = run_cli(command, env={variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert variable in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_a_bad_value_breaks_only_the_command_that_reads_it():
    env = {"SIDETRACE_COLLECTOR_GRPC_PORT": "abc"}
    assert run_cli("--help", env=env).returncode == 0
    assert run_cli("dashboard", "--help", env=env).returncode == 0
    assert run_cli("collector", "--help", env=env).returncode == 0


def test_version_and_defaults_in_help():
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("sidetrace ")
    help_text = run_cli("collector", "--help").stdout
    assert "(default: 4317)" in help_text
    assert "SIDETRACE_COLLECTOR_GRPC_PORT" in help_text


def test_every_subcommand_has_a_description():
    for path, parser in command_parsers(build_parser()):
        if path:
            assert parser.description, f"sidetrace {' '.join(path)} has no description"


def test_no_variable_is_shared_by_unrelated_commands():
    readers: dict[str, set[str]] = {}
    for path, parser in command_parsers(build_parser()):
        for action in parser._actions:
            variable = getattr(action, "env_variable", None)
            if variable and path:
                readers.setdefault(variable, set()).add(path[0])
    assert readers["SIDETRACE_CLICKHOUSE"] >= {"collector", "dashboard", "migrate"}
    for variable, commands in readers.items():
        if variable.removeprefix("SIDETRACE_").lower().replace("_", "-") in SHARED_FLAGS:
            continue
        for a in commands:
            for b in commands:
                assert related(a, b), f"{variable} is read by unrelated {a} and {b}"
    assert {"dashboard", "alerter"} in RELATED_COMMANDS
    assert "SIDETRACE_PORT" not in readers


def test_environment_sets_a_flag():
    args = build_parser().parse_args(["dashboard"])
    assert args.port == 16686
    os.environ["SIDETRACE_DASHBOARD_PORT"] = "17000"
    try:
        assert build_parser().parse_args(["dashboard"]).port == 17000
    finally:
        del os.environ["SIDETRACE_DASHBOARD_PORT"]


def test_the_parser_imports_only_what_the_slim_sidecar_image_has():
    """Every command is registered in every image: building the parser (as ``sidetrace
    sidecar`` does before it starts) may import only the standard library, our packages
    and ruamel.yaml, which deploy/sidecar-requirements.in installs for the init container."""
    probe = (
        "import sys\n"
        "from sidetrace.cli import build_parser\n"
        "build_parser()\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules}"
        " - set(sys.stdlib_module_names))))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    ours = {"collector", "dashboard", "runtime", "sidecar", "sidetrace", "slospec", "tracestore"}
    third_party = {
        m for m in done.stdout.split() if m not in ours and not m.startswith(("_", "__"))
    }
    assert third_party <= {"ruamel"}, third_party
