"""OTLP/HTTP export of encoded requests with the standard library only.

``POST`` of the protobuf bytes ``sidecar.otlp_encode`` wrote, over one kept-alive
connection, as the OTLP/HTTP specification and the OpenTelemetry SDK's HTTP
exporter do it: ``Content-Type: application/x-protobuf``, the configured headers,
the export timeout as the deadline of the whole call; retries with exponential
backoff (2^n s, ±20 % jitter, or the server's ``Retry-After``) on connection
errors and on 408, 429, 502, 503 and 504, as long as the wait fits before the
deadline. Any other answer fails at once; ``last_failure`` says why. ``shutdown``
ends a call in flight and any wait, so a sidecar stops within its grace period even
while the collector does not answer.

A connection older than its maximum age (±10 % jitter, so a fleet does not reconnect
in step) is closed before the next request, never during one: the new connection goes
through the Service again and may land on a collector replica the autoscaler added,
as gRPC clients do when the collector ends theirs after ``--max-connection-age``.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import socket
import ssl
import threading
import time

from sidecar.export_target import ExportTarget
from sidecar.otlp_encode import EncodedSpans
from sidecar.otlp_export import ExportFailure, ExportResult

MAX_ATTEMPTS = 6  # as the SDK's exporters
AGE_JITTER = 0.1  # as gRPC's max_connection_age
RETRYABLE = frozenset((408, 429, 502, 503, 504))
PROTOBUF = "application/x-protobuf"


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: the exponential backoff instead


class HttpExporter:
    """Exports to one OTLP/HTTP path of the target; thread-safe, one connection at a time,
    replaced once older than ``max_connection_age_s`` (0: kept while it lasts)."""

    def __init__(
        self, target: ExportTarget, path: str, timeout_s: float, max_connection_age_s: float
    ) -> None:
        self._target = target
        self._path = path
        self._timeout_s = timeout_s
        self._max_age_s = max_connection_age_s
        self._retire_at = 0.0  # monotonic time after which the connection is not reused
        self._headers = {k: v for k, v in target.headers} | {"Content-Type": PROTOBUF}
        scheme = "http" if target.insecure else "https"
        self._url = f"{scheme}://{target.endpoint}{path}"
        self._context: ssl.SSLContext | None = None
        if not target.insecure:
            ca = target.ca_pem()
            self._context = ssl.create_default_context(
                cadata=ca.decode("ascii") if ca is not None else None
            )
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()
        self._shut = threading.Event()
        self.last_failure: ExportFailure | None = None

    def export(self, spans: EncodedSpans) -> ExportResult:
        return self.export_request(spans.payload)

    def export_request(self, body: bytes) -> ExportResult:
        """Send one request body; ``SUCCESS`` once the collector answered 2xx."""
        with self._lock:
            self.last_failure = None
            if self._shut.is_set():
                self.last_failure = ExportFailure("shutdown", "exporter already shut down")
                return ExportResult.FAILURE
            deadline = time.monotonic() + self._timeout_s
            for attempt in range(MAX_ATTEMPTS):
                status, wait, failure = self._attempt(body, deadline)
                if status is not None and 200 <= status < 300:
                    return ExportResult.SUCCESS
                self.last_failure = failure
                if wait is None:
                    break
                backoff = wait if wait >= 0 else 2**attempt * random.uniform(0.8, 1.2)
                if attempt + 1 == MAX_ATTEMPTS or backoff > deadline - time.monotonic():
                    break
                if self._shut.wait(backoff):
                    break
            if self._shut.is_set():
                self._close()
            return ExportResult.FAILURE

    def _attempt(
        self, body: bytes, deadline: float
    ) -> tuple[int | None, float | None, ExportFailure | None]:
        """One POST: ``(status, wait, failure)``. ``wait`` is ``None`` when retrying is
        pointless, ``-1`` for the exponential backoff, else seconds to wait (the server's
        ``Retry-After``, or 0 to reconnect a kept-alive connection the server closed)."""
        where = f"collector {self._url}"
        if self._connection is not None and time.monotonic() >= self._retire_at:
            self._close()  # old enough: reconnect through the Service, between requests
        reused = self._connection is not None and self._connection.sock is not None
        try:
            connection = self._connect(max(0.001, deadline - time.monotonic()))
            connection.request("POST", self._path, body, self._headers)
            reply = connection.getresponse()
            detail = reply.read(4096)
            if reply.will_close:
                self._close()
        except ssl.SSLError as exc:
            self._close()
            return (
                None,
                None,
                ExportFailure(
                    "tls",
                    f"TLS handshake with {where} failed (untrusted or mismatched certificate? "
                    f"check the CA bundle): {exc}",
                ),
            )
        except (OSError, http.client.HTTPException) as exc:
            self._close()  # a kept-alive connection the server closed meanwhile: at once
            return (
                None,
                0 if reused else -1,
                ExportFailure(
                    "unavailable", f"export to {where} failed: {type(exc).__name__} {exc}"
                ),
            )
        status = reply.status
        if 200 <= status < 300:
            return status, None, None
        text = detail.decode("utf-8", "replace").strip()
        if status in (401, 403):
            failure = ExportFailure(
                "unauthenticated",
                f"{where} refused the bearer token (HTTP {status} {text}): check the token Secret",
            )
        else:
            failure = ExportFailure(
                f"http_{status}", f"export to {where} failed: HTTP {status} {reply.reason} {text}"
            )
        if status not in RETRYABLE:
            return status, None, failure
        wait = _retry_after(reply.getheader("Retry-After"))
        return status, -1 if wait is None else wait, failure

    def _connect(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._context is None:
                self._connection = http.client.HTTPConnection(self._target.endpoint)
            else:
                self._connection = http.client.HTTPSConnection(
                    self._target.endpoint, context=self._context
                )
            age_s = self._max_age_s * random.uniform(1 - AGE_JITTER, 1 + AGE_JITTER)
            self._retire_at = time.monotonic() + age_s if age_s > 0 else float("inf")
        self._connection.timeout = timeout_s
        if self._connection.sock is not None:
            self._connection.sock.settimeout(timeout_s)
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def shutdown(self) -> None:
        """No more exports; a call in flight fails now (its socket is shut down)."""
        self._shut.set()
        connection = self._connection
        sock = connection.sock if connection is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._lock.acquire(blocking=False):  # else the call in flight closes it
            try:
                self._close()
            finally:
                self._lock.release()
