"""Failed exports counted by reason and explained in the log, without flooding it.

A refused token or an untrusted certificate fails every export until someone
fixes the Secret: the first failure of each reason is logged at once, then at
most one line per reason every ``LOG_EVERY_S`` seconds, with how many spans
were dropped since. ``/metrics`` shows
``sidetrace_sidecar_spans_dropped_by_reason_total{reason=...}``.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger(__name__)
LOG_EVERY_S = 30.0


class ExportFailures:
    """Span drops per failure reason (``unauthenticated``, ``tls``, ``unavailable``, ...)."""

    def __init__(self, log_every_s: float = LOG_EVERY_S) -> None:
        self._dropped: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._next_log: dict[str, float] = {}
        self._log_every_s = log_every_s
        self._lock = threading.Lock()

    def record(self, reason: str, explanation: str, spans: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._dropped[reason] = self._dropped.get(reason, 0) + spans
            self._unlogged[reason] = self._unlogged.get(reason, 0) + spans
            if now < self._next_log.get(reason, 0.0):
                return
            self._next_log[reason] = now + self._log_every_s
            dropped, self._unlogged[reason] = self._unlogged[reason], 0
        log.error("%s; %d spans dropped (reason=%s)", explanation, dropped, reason)

    def dropped(self, reason: str) -> int:
        with self._lock:
            return self._dropped.get(reason, 0)

    def counts(self) -> dict[str, int]:
        """Spans dropped so far, by reason (read by the admin port's ``/metrics``)."""
        with self._lock:
            return dict(self._dropped)
