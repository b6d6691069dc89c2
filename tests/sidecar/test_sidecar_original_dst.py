"""Transparent interception: an iptables REDIRECT sends a connection to the outbound listener,
and the sidecar forwards it to the original destination read from SO_ORIGINAL_DST."""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest

from tests.support.sidecar_harness import BannerServer, build_app
from tests.support.sidecar_process import SidecarProcess
from tests.support.threaded_server import ThreadedUvicorn

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("iptables") is None, reason="needs root and iptables"
)


def test_redirected_connection_reaches_original_destination(redirect) -> None:
    app = ThreadedUvicorn(build_app()).start()
    sidecar = SidecarProcess(app.port, "--service-name", "intercepted").start()
    try:
        client = socket.socket()
        client.bind(("127.0.0.1", 0))
        redirect(client.getsockname()[1], app.port, sidecar.outbound)
        client.settimeout(10)
        client.connect(("127.0.0.1", app.port))
        client.sendall(b"GET /users/3 HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n")
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
        client.close()
    finally:
        sidecar.stop()
        app.stop()
    assert reply.startswith(b"HTTP/1.1 200")
    seen = json.loads(reply.split(b"\r\n\r\n", 1)[1])["headers"]
    assert seen["x-sidetrace-peer"] == "intercepted"  # it went through the outbound listener
    assert seen["traceparent"].startswith("00-")


def test_redirected_opaque_tcp_is_piped_to_original_destination(redirect) -> None:
    banner = BannerServer()
    sidecar = SidecarProcess(1, "--opaque-ports", str(banner.port)).start()
    try:
        client = socket.socket()
        client.bind(("127.0.0.1", 0))
        redirect(client.getsockname()[1], banner.port, sidecar.outbound)
        client.settimeout(10)
        client.connect(("127.0.0.1", banner.port))
        assert client.recv(1024) == b"220 banner ready\r\n"  # server speaks first
        client.sendall(b"QUIT\r\n")
        assert client.recv(1024) == b"QUIT\r\n"
        client.close()
    finally:
        sidecar.stop()
        banner.stop()
