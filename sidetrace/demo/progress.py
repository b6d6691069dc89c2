"""What the demo tells the user while it runs: requests sent, spans stored, the incident."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from sidetrace.demo.behaviour import IncidentSchedule
from sidetrace.demo.loadgen import LoadStats
from sidetrace.demo.topology import INCIDENT_SERVICE, SERVICE_NAMES
from tracestore.store import Store, StoreError
from tracestore.store_summary import latest_trace_through, span_count


def example_trace(store: Store) -> str | None:
    """The most recent trace that crossed every service of the sample system, if any yet."""
    return latest_trace_through(store, SERVICE_NAMES)


def format_line(elapsed: float, stats: LoadStats, spans: int | None, incident: str) -> str:
    stored = "?" if spans is None else f"{spans:,}"
    return (
        f"{elapsed:5.0f}s  requests sent {stats.sent:,} ({stats.failed:,} failed)"
        f"  spans stored {stored}  {incident}"
    )


def incident_state(schedule: IncidentSchedule, now: float) -> str:
    on, left = schedule.next_change(now)
    if left == float("inf"):
        return "no incidents scheduled"
    if on:
        return f"INCIDENT in {INCIDENT_SERVICE} ({left:.0f}s left)"
    return f"next {INCIDENT_SERVICE} incident in {left:.0f}s"


class Progress:
    """One live line on a terminal; a line every ``every`` seconds otherwise (logs, CI)."""

    def __init__(self, out: TextIO = sys.stdout, every: float = 10.0) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every = every
        self._last_print = 0.0
        self._width = 0

    def show(self, line: str) -> None:
        if self.tty:
            self.out.write("\r" + line.ljust(self._width))
            self._width = len(line)
            self.out.flush()
            return
        now = time.monotonic()
        if now - self._last_print >= self.every:
            self._last_print = now
            print(line, file=self.out, flush=True)

    def say(self, text: str) -> None:
        """A permanent message, printed above the live line."""
        if self.tty and self._width:
            self.out.write("\r" + " " * self._width + "\r")
            self._width = 0
        print(text, file=self.out, flush=True)


def safe_count(store: Store) -> int | None:
    try:
        return span_count(store)
    except StoreError:
        return None
