"""Silences as stored: table ``alert_silences`` (schemas/migrations/0004).

A silence is a versioned row: every change (an expiry) writes the whole silence
again with a newer version, and readers take the latest version per id. The
matchers are three parallel arrays (name, operator, value), so the row carries
plain text; parsing and checking matchers is the alerting code's job.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tracestore.store import Store

TABLE = "alert_silences"


@dataclass(frozen=True)
class SilenceRow:
    """One silence as stored; times are Unix milliseconds."""

    id: str
    created_at_ms: int
    starts_at_ms: int
    ends_at_ms: int
    created_by: str
    comment: str
    matcher_names: tuple[str, ...]
    matcher_ops: tuple[str, ...]
    matcher_values: tuple[str, ...]


_LATEST_SQL = """
SELECT id, argMax(created_at_ms, version), argMax(starts_at_ms, version),
    argMax(ends_at_ms, version), argMax(created_by, version), argMax(comment, version),
    argMax(matcher_names, version), argMax(matcher_ops, version), argMax(matcher_values, version)
FROM alert_silences
GROUP BY id
"""


def write_silence(store: Store, row: SilenceRow) -> None:
    """Store ``row`` as the newest version of its silence (the version is the clock in
    nanoseconds, so a later write wins)."""
    store.insert(
        TABLE,
        {
            "id": [row.id],
            "version": [time.time_ns()],
            "created_at_ms": [row.created_at_ms],
            "starts_at_ms": [row.starts_at_ms],
            "ends_at_ms": [row.ends_at_ms],
            "created_by": [row.created_by],
            "comment": [row.comment],
            "matcher_names": [list(row.matcher_names)],
            "matcher_ops": [list(row.matcher_ops)],
            "matcher_values": [list(row.matcher_values)],
        },
    )


def latest_silences(store: Store) -> list[SilenceRow]:
    """The latest version of every silence, in no particular order."""
    return [
        SilenceRow(
            id=str(r[0]),
            created_at_ms=int(r[1]),
            starts_at_ms=int(r[2]),
            ends_at_ms=int(r[3]),
            created_by=str(r[4]),
            comment=str(r[5]),
            matcher_names=tuple(str(v) for v in r[6]),
            matcher_ops=tuple(str(v) for v in r[7]),
            matcher_values=tuple(str(v) for v in r[8]),
        )
        for r in store.query(_LATEST_SQL)
    ]
