"""The delivery record: every notification decision, before and after it is sent.

Rows of ``alert_deliveries`` (migration 0005) are appended, never updated: a
decision is written ``pending`` (or ``quiet`` when nothing goes out) before the
dispatcher may send it, and its outcome (``sent``, ``failed``, ``superseded``)
after. A process that wins the evaluator's election reads back the last
decision per group, so it goes on deduplicating where the old leader stopped,
and the notifications with no outcome, which it sends. A duplicate therefore
needs a crash between a send and its ``sent`` row.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from dashboard.alert_delivery import Decision, GroupEntry, Notification
from slospec.slo_config import Receiver
from tracestore.store import Store

PENDING, QUIET, SENT, FAILED, SUPERSEDED = "pending", "quiet", "sent", "failed", "superseded"
# How far back a new leader reads decisions: groups told nothing for longer are
# notified afresh (as a repeat would), and older pending ones are not resent.
LOOKBACK_S = 3 * 86400

_COLUMNS = (
    "ts",
    "at_ms",
    "id",
    "decided_at_ms",
    "receiver",
    "group_key",
    "state",
    "status",
    "fingerprints",
    "firing",
    "resolved",
    "leader",
    "term",
    "body",
)

# What each group was last told: its newest decision (outcome rows carry no decision).
_LAST_DECISIONS_SQL = """
SELECT receiver, group_key, argMax(firing, decided_at_ms), argMax(resolved, decided_at_ms),
    max(decided_at_ms)
FROM alert_deliveries
WHERE ts >= toDateTime(%(since)s) AND state IN ('pending', 'quiet')
GROUP BY receiver, group_key
"""

# Notifications decided and with no outcome, newest decision first.
_UNSENT_SQL = """
SELECT id, any(receiver), any(group_key), any(status), any(fingerprints),
    max(decided_at_ms), any(body)
FROM alert_deliveries
WHERE ts >= toDateTime(%(since)s) AND id != ''
GROUP BY id
HAVING countIf(state != 'pending') = 0
ORDER BY max(decided_at_ms) DESC
"""


class DeliveryLog:
    """Reads and writes ``alert_deliveries`` for one process (``leader``)."""

    def __init__(self, store: Store, leader: str) -> None:
        self.store = store
        self.leader = leader

    def decided(self, decisions: Sequence[Decision], term: int) -> None:
        """Record a round of decisions before any of them is sent."""
        self._insert(
            [
                self._row(
                    d.receiver,
                    d.group_key,
                    d.notification,
                    PENDING if d.notification is not None else QUIET,
                    term,
                    d.entry,
                )
                for d in decisions
            ]
        )

    def outcome(self, n: Notification, state: str, term: int) -> None:
        """Record what became of a notification: sent, failed or superseded."""
        self._insert([self._row(n.receiver.name, n.group_key, n, state, term, None)])

    def last_decisions(self, now: float) -> dict[tuple[str, str], GroupEntry]:
        """What each group was last told, per (receiver, group key)."""
        rows = self.store.query(_LAST_DECISIONS_SQL, {"since": int(now - LOOKBACK_S)})
        return {
            (str(r[0]), str(r[1])): GroupEntry(frozenset(r[2]), frozenset(r[3]), int(r[4]) / 1000)
            for r in rows
        }

    def unsent(self, now: float, receivers: dict[str, Receiver], term: int) -> list[Notification]:
        """The newest unsent notification of each group whose receiver is still configured;
        older unsent ones of a group are recorded superseded."""
        newest: dict[tuple[str, str], Notification] = {}
        older: list[Notification] = []
        rows = self.store.query(_UNSENT_SQL, {"since": int(now - LOOKBACK_S)})
        for nid, receiver, group, status, fingerprints, _, body in rows:
            config = receivers.get(str(receiver))
            if config is None:
                continue
            n = Notification(
                config, str(group), str(status), tuple(fingerprints), str(body).encode(), str(nid)
            )
            if (config.name, n.group_key) in newest:
                older.append(n)
            else:
                newest[(config.name, n.group_key)] = n
        for n in older:
            self.outcome(n, SUPERSEDED, term)
        return list(newest.values())

    def _row(
        self,
        receiver: str,
        group_key: str,
        n: Notification | None,
        state: str,
        term: int,
        entry: GroupEntry | None,
    ) -> dict:
        now = time.time()
        return {
            "ts": int(now),
            "at_ms": int(now * 1000),
            "id": n.id if n is not None else "",
            "decided_at_ms": int(entry.sent_at * 1000) if entry is not None else 0,
            "receiver": receiver,
            "group_key": group_key,
            "state": state,
            "status": n.status if n is not None else "",
            "fingerprints": list(n.fingerprints) if n is not None else [],
            "firing": sorted(entry.firing) if entry is not None else [],
            "resolved": sorted(entry.resolved) if entry is not None else [],
            "leader": self.leader,
            "term": term,
            "body": n.body.decode() if n is not None else "",
        }

    def _insert(self, rows: list[dict]) -> None:
        if rows:
            self.store.insert("alert_deliveries", {c: [r[c] for r in rows] for c in _COLUMNS})
