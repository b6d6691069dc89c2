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
from tracestore.delivery_queries import (
    PENDING,
    QUIET,
    SUPERSEDED,
    DeliveryRow,
    last_decisions,
    unsent,
    write_deliveries,
)
from tracestore.store import Store

# How far back a new leader reads decisions: groups told nothing for longer are
# notified afresh (as a repeat would), and older pending ones are not resent.
LOOKBACK_S = 3 * 86400


class DeliveryLog:
    """Reads and writes ``alert_deliveries`` for one process (``leader``)."""

    def __init__(self, store: Store, leader: str) -> None:
        self.store = store
        self.leader = leader

    def decided(self, decisions: Sequence[Decision], term: int) -> None:
        """Record a round of decisions before any of them is sent."""
        write_deliveries(
            self.store,
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
            ],
        )

    def outcome(self, n: Notification, state: str, term: int) -> None:
        """Record what became of a notification: sent, failed or superseded."""
        write_deliveries(
            self.store, [self._row(n.receiver.name, n.group_key, n, state, term, None)]
        )

    def last_decisions(self, now: float) -> dict[tuple[str, str], GroupEntry]:
        """What each group was last told, per (receiver, group key)."""
        return {
            (d.receiver, d.group_key): GroupEntry(
                frozenset(d.firing), frozenset(d.resolved), d.decided_at_ms / 1000
            )
            for d in last_decisions(self.store, int(now - LOOKBACK_S))
        }

    def unsent(self, now: float, receivers: dict[str, Receiver], term: int) -> list[Notification]:
        """The newest unsent notification of each group whose receiver is still configured;
        older unsent ones of a group are recorded superseded."""
        newest: dict[tuple[str, str], Notification] = {}
        older: list[Notification] = []
        for row in unsent(self.store, int(now - LOOKBACK_S)):
            config = receivers.get(row.receiver)
            if config is None:
                continue
            n = Notification(
                config, row.group_key, row.status, row.fingerprints, row.body.encode(), row.id
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
    ) -> DeliveryRow:
        return DeliveryRow(
            at_ms=int(time.time() * 1000),
            id=n.id if n is not None else "",
            decided_at_ms=int(entry.sent_at * 1000) if entry is not None else 0,
            receiver=receiver,
            group_key=group_key,
            state=state,
            status=n.status if n is not None else "",
            fingerprints=tuple(n.fingerprints) if n is not None else (),
            firing=tuple(sorted(entry.firing)) if entry is not None else (),
            resolved=tuple(sorted(entry.resolved)) if entry is not None else (),
            leader=self.leader,
            term=term,
            body=n.body.decode() if n is not None else "",
        )
