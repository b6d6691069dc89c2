"""Periodic rollup jobs the collector runs beside its writer (filled by the analytics work)."""

from __future__ import annotations

import threading

from sidetrace.store import Store


def start_rollup_jobs(store: Store, stop: threading.Event) -> list[threading.Thread]:
    """Start the periodic rollup threads; they exit when ``stop`` is set."""
    return []
