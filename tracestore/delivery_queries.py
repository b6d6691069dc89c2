"""The delivery record as stored: table ``alert_deliveries`` (schemas/migrations/0005).

Rows are appended, never updated: a decision is written ``pending`` (or
``quiet`` when nothing goes out) before it may be sent, and its outcome
(``sent``, ``failed``, ``superseded``) after, under the same id. Reading it back
gives what each group was last told and which notifications have no outcome.
Times are Unix milliseconds; ``ts`` (the second) is derived here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from tracestore.store import Store

TABLE = "alert_deliveries"
PENDING, QUIET, SENT, FAILED, SUPERSEDED = "pending", "quiet", "sent", "failed", "superseded"
STATES = (PENDING, QUIET, SENT, FAILED, SUPERSEDED)


@dataclass(frozen=True)
class DeliveryRow:
    """One decision (``pending``, ``quiet``) or outcome row; ``id`` is empty for ``quiet``."""

    at_ms: int
    id: str
    decided_at_ms: int
    receiver: str
    group_key: str
    state: str
    status: str
    fingerprints: tuple[str, ...]
    firing: tuple[str, ...]
    resolved: tuple[str, ...]
    leader: str
    term: int
    body: str


class GroupDecision(NamedTuple):
    """What a group was last told."""

    receiver: str
    group_key: str
    firing: tuple[str, ...]
    resolved: tuple[str, ...]
    decided_at_ms: int


class Unsent(NamedTuple):
    """A notification decided and with no outcome yet."""

    id: str
    receiver: str
    group_key: str
    status: str
    fingerprints: tuple[str, ...]
    decided_at_ms: int
    body: str


# A group's newest decision (outcome rows carry no decision).
_LAST_DECISIONS_SQL = """
SELECT receiver, group_key, argMax(firing, decided_at_ms), argMax(resolved, decided_at_ms),
    max(decided_at_ms)
FROM alert_deliveries
WHERE ts >= toDateTime(%(since)s) AND state IN %(decisions)s
GROUP BY receiver, group_key
"""

# Notifications decided and with no outcome, newest decision first.
_UNSENT_SQL = """
SELECT id, any(receiver), any(group_key), any(status), any(fingerprints),
    max(decided_at_ms), any(body)
FROM alert_deliveries
WHERE ts >= toDateTime(%(since)s) AND id != ''
GROUP BY id
HAVING countIf(state != %(pending)s) = 0
ORDER BY max(decided_at_ms) DESC
"""


def write_deliveries(store: Store, rows: Sequence[DeliveryRow]) -> None:
    """Append decision or outcome rows (one insert for all of them)."""
    for row in rows:
        if row.state not in STATES:
            raise ValueError(f"not a delivery state: {row.state!r}")
    if not rows:
        return
    store.insert(
        TABLE,
        {
            "ts": [r.at_ms // 1000 for r in rows],
            "at_ms": [r.at_ms for r in rows],
            "id": [r.id for r in rows],
            "decided_at_ms": [r.decided_at_ms for r in rows],
            "receiver": [r.receiver for r in rows],
            "group_key": [r.group_key for r in rows],
            "state": [r.state for r in rows],
            "status": [r.status for r in rows],
            "fingerprints": [list(r.fingerprints) for r in rows],
            "firing": [list(r.firing) for r in rows],
            "resolved": [list(r.resolved) for r in rows],
            "leader": [r.leader for r in rows],
            "term": [r.term for r in rows],
            "body": [r.body for r in rows],
        },
    )


def last_decisions(store: Store, since_s: int) -> list[GroupDecision]:
    """Per (receiver, group key), its newest decision made since ``since_s``."""
    rows = store.query(_LAST_DECISIONS_SQL, {"since": since_s, "decisions": (PENDING, QUIET)})
    return [GroupDecision(str(r[0]), str(r[1]), tuple(r[2]), tuple(r[3]), int(r[4])) for r in rows]


def unsent(store: Store, since_s: int) -> list[Unsent]:
    """Notifications decided since ``since_s`` with no outcome, newest decision first."""
    rows = store.query(_UNSENT_SQL, {"since": since_s, "pending": PENDING})
    return [
        Unsent(str(r[0]), str(r[1]), str(r[2]), str(r[3]), tuple(r[4]), int(r[5]), str(r[6]))
        for r in rows
    ]
