"""``ThreadedUvicorn``, the one way tests serve an app on a thread."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.polling import Gone
from tests.support.threaded_server import ThreadedUvicorn


def _app() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("up"))])


def test_threaded_uvicorn_serves_once_started() -> None:
    with ThreadedUvicorn(_app()) as server:
        assert httpx.get(server.url, timeout=10).text == "up"
    assert not server.thread.is_alive()


def test_threaded_uvicorn_on_a_taken_port_fails_at_once() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(Gone, match="stopped before serving"):
            ThreadedUvicorn(_app(), port).start(timeout=60)
        assert time.monotonic() - started < 30
