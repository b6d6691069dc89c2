"""Retention tiers as the dashboard sees them: a trace's decision, and pins.

The tiering job (collector/tiering.py) decides each settled trace once and stores
the decision with its reasons for the kept window, so a trace id that was not kept
gets an honest answer instead of a bare "not found". A pin asks the job to keep a
trace; it works while the trace is still in the hot tier.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tracestore.store import Store

MAX_NOTE = 500


@dataclass(frozen=True)
class Decision:
    trace_id: str
    kept: bool
    reasons: tuple[str, ...]
    decided_at: int  # seconds
    moved: bool


def trace_decision(store: Store, trace_id: str) -> Decision | None:
    """The latest decision about ``trace_id`` (a normalised id), by primary key."""
    rows = store.query(
        "SELECT argMax(kept, version), argMax(reasons, version), "
        "toUInt32(argMax(decided_at, version)), argMax(moved, version), count() "
        "FROM trace_decisions PREWHERE trace_id = %(t)s",
        {"t": trace_id},
    )
    if not rows or not int(rows[0][4]):
        return None
    kept, reasons, decided_at, moved, _ = rows[0]
    return Decision(
        trace_id, bool(kept), tuple(str(r) for r in reasons), int(decided_at), bool(moved)
    )


def not_kept_message(decision: Decision) -> str:
    """What a lookup of a trace that was not kept answers."""
    return f"not kept after the hot window (reason: {', '.join(decision.reasons)})"


def missing_trace_message(store: Store, trace_id: str) -> str | None:
    """The not-kept answer for a trace id the tiers do not hold, or None when never decided."""
    decision = trace_decision(store, trace_id)
    if decision is None or decision.kept:
        return None
    return not_kept_message(decision)


def pin_trace(store: Store, trace_id: str, note: str = "") -> None:
    """Ask retention tiering to keep ``trace_id`` (a normalised id); pinning twice is harmless."""
    store.insert(
        "trace_pins",
        {"trace_id": [trace_id], "pinned_at": [int(time.time())], "note": [note[:MAX_NOTE]]},
    )


def is_pinned(store: Store, trace_id: str) -> bool:
    rows = store.query("SELECT count() FROM trace_pins PREWHERE trace_id = %(t)s", {"t": trace_id})
    return bool(rows and int(rows[0][0]))
