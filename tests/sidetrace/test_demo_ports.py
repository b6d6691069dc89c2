"""A port already taken stops ``sidetrace demo`` / ``all-in-one`` with a message naming it."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.loopback_ports import free_port


@pytest.mark.parametrize(
    ("command", "taken_flag", "role"),
    [
        ("demo", "--port", "dashboard"),
        ("demo", "--grpc-port", "OTLP/gRPC"),
        ("all-in-one", "--admin-port", "collector admin"),
    ],
)
def test_taken_port_is_named_and_exit_is_non_zero(
    tmp_path: Path, command: str, taken_flag: str, role: str
) -> None:
    flags = {f: free_port() for f in ("--port", "--grpc-port", "--http-port", "--admin-port")}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        flags[taken_flag] = taken
        args = [str(x) for pair in flags.items() for x in pair]
        result = subprocess.run(
            [sys.executable, "-m", "sidetrace", command, "--data", str(tmp_path / "d"), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode != 0
    assert f"port {taken} ({role}) is already in use" in result.stderr
    assert taken_flag in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "d").exists(), "nothing may be started or created"
