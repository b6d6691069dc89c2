"""The alerting record as stored: state changes (``alert_events``) and notification
attempts (``alert_notifications``), schemas/migrations/0004.

Both tables are append-only logs. The evaluator writes them; the history pages
read them newest first, and a process that starts evaluating reads each alert's
last state back so an episode goes on where it stopped. Times are Unix
milliseconds; ``ts`` (the second) is derived here, for partitions and retention.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from tracestore.store import Store

EVENTS, NOTIFICATIONS = "alert_events", "alert_notifications"


@dataclass(frozen=True)
class AlertEvent:
    """One alert state change; labels and annotations as (key, value) pairs."""

    at_ms: int
    fingerprint: str
    alertname: str
    severity: str
    kind: str
    from_state: str
    to_state: str
    value: str
    silenced: bool
    starts_at_ms: int
    ends_at_ms: int
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


class LastState(NamedTuple):
    """An alert's newest recorded state change."""

    state: str
    starts_at_ms: int
    at_ms: int
    ends_at_ms: int


@dataclass(frozen=True)
class NotificationAttempt:
    """One try at sending a notification (``outcome``: sent, retry, failed, superseded)."""

    at_ms: int
    receiver: str
    group_key: str
    status: str
    fingerprints: tuple[str, ...]
    attempt: int
    outcome: str
    http_status: int
    error: str


_EVENT_SQL = """
SELECT at_ms, fingerprint, alertname, severity, kind, from_state, to_state, value, silenced,
    starts_at_ms, ends_at_ms, label_keys, label_values, annotation_keys, annotation_values
FROM alert_events
{where}
ORDER BY at_ms DESC
LIMIT %(limit)s
"""

_LAST_STATES_SQL = """
SELECT fingerprint, argMax(to_state, at_ms), argMax(starts_at_ms, at_ms), max(at_ms),
    argMax(ends_at_ms, at_ms)
FROM alert_events
GROUP BY fingerprint
"""

_ATTEMPTS_SQL = """
SELECT at_ms, receiver, group_key, status, fingerprints, attempt, outcome, http_status, error
FROM alert_notifications
ORDER BY at_ms DESC
LIMIT %(limit)s
"""


def write_events(store: Store, events: Sequence[AlertEvent]) -> None:
    """Append state changes (one insert for all of them)."""
    if not events:
        return
    columns: dict[str, list[Any]] = {
        "ts": [e.at_ms // 1000 for e in events],
        "at_ms": [e.at_ms for e in events],
        "fingerprint": [e.fingerprint for e in events],
        "alertname": [e.alertname for e in events],
        "severity": [e.severity for e in events],
        "kind": [e.kind for e in events],
        "from_state": [e.from_state for e in events],
        "to_state": [e.to_state for e in events],
        "value": [e.value for e in events],
        "silenced": [int(e.silenced) for e in events],
        "starts_at_ms": [e.starts_at_ms for e in events],
        "ends_at_ms": [e.ends_at_ms for e in events],
        "label_keys": [[k for k, _ in e.labels] for e in events],
        "label_values": [[v for _, v in e.labels] for e in events],
        "annotation_keys": [[k for k, _ in e.annotations] for e in events],
        "annotation_values": [[v for _, v in e.annotations] for e in events],
    }
    store.insert(EVENTS, columns)


def event_history(store: Store, limit: int, fingerprint: str | None = None) -> list[AlertEvent]:
    """State changes newest first, at most ``limit``; with ``fingerprint``, one alert's."""
    where = "WHERE fingerprint = %(fp)s" if fingerprint else ""
    rows = store.query(_EVENT_SQL.format(where=where), {"fp": fingerprint or "", "limit": limit})
    return [
        AlertEvent(
            at_ms=int(r[0]),
            fingerprint=str(r[1]),
            alertname=str(r[2]),
            severity=str(r[3]),
            kind=str(r[4]),
            from_state=str(r[5]),
            to_state=str(r[6]),
            value=str(r[7]),
            silenced=bool(r[8]),
            starts_at_ms=int(r[9]),
            ends_at_ms=int(r[10]),
            labels=tuple(zip(r[11], r[12], strict=True)),
            annotations=tuple(zip(r[13], r[14], strict=True)),
        )
        for r in rows
    ]


def last_states(store: Store) -> dict[str, LastState]:
    """Per alert fingerprint, its newest recorded state change."""
    return {
        str(r[0]): LastState(str(r[1]), int(r[2]), int(r[3]), int(r[4]))
        for r in store.query(_LAST_STATES_SQL)
    }


def write_attempt(store: Store, a: NotificationAttempt) -> None:
    """Append one notification attempt to the log."""
    store.insert(
        NOTIFICATIONS,
        {
            "ts": [a.at_ms // 1000],
            "at_ms": [a.at_ms],
            "receiver": [a.receiver],
            "group_key": [a.group_key],
            "status": [a.status],
            "fingerprints": [list(a.fingerprints)],
            "attempt": [a.attempt],
            "outcome": [a.outcome],
            "http_status": [a.http_status],
            "error": [a.error],
        },
    )


def recent_attempts(store: Store, limit: int) -> list[NotificationAttempt]:
    """Notification attempts newest first, at most ``limit``."""
    return [
        NotificationAttempt(
            at_ms=int(r[0]),
            receiver=str(r[1]),
            group_key=str(r[2]),
            status=str(r[3]),
            fingerprints=tuple(str(f) for f in r[4]),
            attempt=int(r[5]),
            outcome=str(r[6]),
            http_status=int(r[7]),
            error=str(r[8]),
        )
        for r in store.query(_ATTEMPTS_SQL, {"limit": limit})
    ]
