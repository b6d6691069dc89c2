"""``collector/http_serving.py``: uvicorn on a background thread, ticking once a second."""

from __future__ import annotations

import email.utils

import httpx
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from collector.http_serving import BackgroundServer, QuietServer
from runtime.loopback_ports import free_port


def _app() -> Starlette:
    return Starlette(routes=[Route("/", lambda request: PlainTextResponse("ok"))])


def test_a_stop_wakes_the_server_between_its_ticks(monkeypatch):
    """With a tick an hour long, only the wake-up can end the server within the join."""
    monkeypatch.setattr(QuietServer, "tick_seconds", 3600.0)
    server = BackgroundServer(_app(), "127.0.0.1", free_port(), "test-http")
    server.start()
    response = httpx.get(f"http://127.0.0.1:{server.port}/")
    assert response.text == "ok"
    assert email.utils.parsedate_to_datetime(response.headers["date"]) is not None
    server.stop(timeout=30)
    assert not server._thread.is_alive()


def test_a_server_stopped_before_it_serves_still_ends():
    server = BackgroundServer(_app(), "127.0.0.1", free_port(), "test-http")
    server.server.should_exit = True
    server.server.wake()  # no loop yet: nothing to wake, the first tick exits
    server._thread.start()
    server._thread.join(30)
    assert not server._thread.is_alive()
