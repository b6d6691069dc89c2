"""A real HTTP webhook receiver for the alert tests: records each notification and answers
with the statuses a test scripts (a 500 first, to see a retry)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from runtime.loopback_ports import free_port
from tests.support.polling import eventually


class RecordingReceiver:
    """A real HTTP webhook receiver on 127.0.0.1 that records bodies and answers from a script."""

    def __init__(self, statuses: list[int] | None = None, delay_s: float = 0.0) -> None:
        self.statuses = list(statuses or [])
        self.delay_s = delay_s
        self.requests: list[tuple[str, dict, float]] = []
        self.ids: list[str] = []  # each request's X-Sidetrace-Notification header
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(receiver.delay_s)
                with receiver.lock:
                    receiver.requests.append((self.path, json.loads(body), time.time()))
                    receiver.ids.append(self.headers.get("X-Sidetrace-Notification", ""))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def bodies(self) -> list[dict]:
        with self.lock:
            return [body for _, body, _ in self.requests]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        """The bodies received, once there are at least ``count``."""
        what = f"{count} notifications at the receiver"
        eventually(lambda: len(self.bodies()) >= count, timeout, 0.05, what=what)
        return self.bodies()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
