"""Alert delivery: per-group deduplication, then webhooks sent with retries off the evaluator.

Grouping and deduplication follow Alertmanager: alerts of a receiver are
grouped by its ``group_by`` labels; a group is notified when it has a firing
alert not notified yet, when everything notified has resolved, when a notified
alert resolved (with ``send_resolved``), or every ``repeat_interval`` while it
fires - so at most one notification per change of a group. Silenced alerts are
left out of notifications (but still evaluated and shown).

Each receiver has its own sender thread, so a slow or failing receiver never
holds up evaluation or other receivers. Failed sends (network errors, 5xx,
429) are retried with exponential backoff; a newer notification for the same
group replaces one still waiting to be retried.

Notifications once across replicas: the notifier hands each round of group
decisions to ``decide`` (which records them, fenced by leadership, see
``alert_record``) before anything is submitted, and the dispatcher asks
``may_send`` right before each HTTP request, so a process that is no longer the
leader sends nothing more.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import httpx

from dashboard.alert_payloads import FORMATS, OutgoingAlert, group_key, group_labels
from dashboard.alert_rules import FIRING, RESOLVED, Alert, AlertState
from dashboard.receiver_transport import CredentialsError, auth_headers, client_for
from slospec.slo_config import Receiver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupEntry:
    """What a group's last notification said."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float


def needs_update(
    entry: GroupEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    now: float,
    repeat_s: float,
    send_resolved: bool,
) -> bool:
    """Alertmanager's dedup rule for one group."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return now - entry.sent_at >= repeat_s


@dataclass(frozen=True)
class Notification:
    receiver: Receiver
    group_key: str
    status: str
    fingerprints: tuple[str, ...]
    body: bytes
    id: str = ""  # one decision to notify; a resend after failover keeps it


@dataclass(frozen=True)
class Decision:
    """One group's new state after an evaluation, and what (if anything) goes out for it."""

    receiver: str
    group_key: str
    entry: GroupEntry
    notification: Notification | None


@dataclass(frozen=True)
class Attempt:
    """One try at sending a notification, for the notification log."""

    at: float
    notification: Notification
    attempt: int
    outcome: str  # "sent", "retry", "failed" or "superseded"
    http_status: int
    error: str


class Notifier:
    """Decides which groups to notify after an evaluation and hands them to the dispatcher."""

    def __init__(
        self,
        submit: Callable[[Notification], None],
        external_url: str,
        decide: Callable[[list[Decision]], bool] | None = None,
        annotate: Callable[[Alert, float], dict[str, str]] | None = None,
    ) -> None:
        self._submit = submit
        self.external_url = external_url.rstrip("/")
        self._decide = decide
        # Extra annotations of a firing alert as it goes out (links to example traces).
        self._annotate = annotate
        self._entries: dict[tuple[str, str], GroupEntry] = {}

    def restore(self, entries: dict[tuple[str, str], GroupEntry]) -> None:
        """Start from what each group was last told (by this or an earlier leader)."""
        self._entries = dict(entries)

    def notify(
        self,
        alerts: Iterable[tuple[Alert, AlertState]],
        silenced: set[str],
        receivers: dict[str, Receiver],
        now: float,
    ) -> list[Notification]:
        by_group: dict[tuple[str, str], list[tuple[Alert, AlertState]]] = {}
        labels_of: dict[tuple[str, str], dict[str, str]] = {}
        for alert, state in alerts:
            for name in alert.receivers:
                receiver = receivers.get(name)
                if receiver is None:
                    continue
                groups = group_labels(alert.labels, receiver.group_by)
                key = (name, group_key(groups))
                by_group.setdefault(key, []).append((alert, state))
                labels_of[key] = groups
        decisions = []
        extra: dict[str, dict[str, str]] = {}  # per alert, once per round
        for key, members in sorted(by_group.items()):
            receiver = receivers[key[0]]
            entry = self._entries.get(key)
            notified = entry.firing if entry else frozenset()
            audible = [(a, s) for a, s in members if a.fingerprint not in silenced]
            firing = [(a, s) for a, s in audible if s.state == FIRING]
            resolved = [
                (a, s) for a, s in audible if s.state == RESOLVED and a.fingerprint in notified
            ]
            firing_fps = frozenset(a.fingerprint for a, _ in firing)
            resolved_fps = frozenset(a.fingerprint for a, _ in resolved)
            if not needs_update(
                entry,
                firing_fps,
                resolved_fps,
                now,
                receiver.repeat_interval_s,
                receiver.send_resolved,
            ):
                continue
            outgoing = firing + (resolved if receiver.send_resolved else [])
            notification = (
                self._build(receiver, labels_of[key], outgoing, self._extra(firing, now, extra))
                if outgoing
                else None
            )
            entry = GroupEntry(firing_fps, resolved_fps, now)
            decisions.append(Decision(key[0], key[1], entry, notification))
        if not decisions or (self._decide is not None and not self._decide(decisions)):
            return []  # not recorded (not the leader, or the store is down): decide again next time
        sent = []
        for decision in decisions:
            self._entries[(decision.receiver, decision.group_key)] = decision.entry
            if decision.notification is not None:
                self._submit(decision.notification)
                sent.append(decision.notification)
        return sent

    def _extra(
        self, firing: list[tuple[Alert, AlertState]], now: float, done: dict[str, dict[str, str]]
    ) -> dict[str, dict[str, str]]:
        """The extra annotations of the firing alerts, by fingerprint (each asked for once)."""
        if self._annotate is not None:
            for alert, _ in firing:
                if alert.fingerprint not in done:
                    done[alert.fingerprint] = self._annotate(alert, now)
        return done

    def _build(
        self,
        receiver: Receiver,
        groups: dict[str, str],
        members: list[tuple[Alert, AlertState]],
        extra: dict[str, dict[str, str]] | None = None,
    ) -> Notification:
        extra = extra or {}
        outgoing = [
            OutgoingAlert(
                status="firing" if state.state == FIRING else "resolved",
                labels=alert.labels,
                annotations={**alert.annotations, **extra.get(alert.fingerprint, {})}
                if state.state == FIRING
                else alert.annotations,
                starts_at=state.fired_at or state.active_at or 0.0,
                ends_at=state.resolved_at,
                generator_url=f"{self.external_url}/alerts?fingerprint={alert.fingerprint}",
                fingerprint=alert.fingerprint,
            )
            for alert, state in sorted(members, key=lambda m: m[0].fingerprint)
        ]
        body = FORMATS[receiver.format](receiver.name, groups, outgoing, self.external_url)
        status = "firing" if any(a.status == "firing" for a in outgoing) else "resolved"
        return Notification(
            receiver=receiver,
            group_key=group_key(groups),
            status=status,
            fingerprints=tuple(a.fingerprint for a in outgoing),
            body=json.dumps(body).encode(),
            id=uuid.uuid4().hex,
        )


@dataclass
class _Pending:
    notification: Notification
    attempt: int = 1
    not_before: float = 0.0


@dataclass
class _ReceiverQueue:
    """Waiting notifications of one receiver, one per group (the newest wins)."""

    slots: dict[str, _Pending] = field(default_factory=dict)
    thread: threading.Thread | None = None


class Dispatcher:
    """Sends notifications on one thread per receiver, retrying with backoff."""

    def __init__(
        self,
        on_attempt: Callable[[Attempt], None],
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_attempts: int = 8,
        may_send: Callable[[], bool] = lambda: True,
    ) -> None:
        self._on_attempt = on_attempt
        self.may_send = may_send
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_attempts = max_attempts
        self._queues: dict[str, _ReceiverQueue] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()

    def submit(self, notification: Notification) -> None:
        """Queue a notification; returns at once."""
        name = notification.receiver.name
        with self._cond:
            queue = self._queues.setdefault(name, _ReceiverQueue())
            old = queue.slots.get(notification.group_key)
            if old is not None:
                self._record(old, "superseded", 0, "a newer notification replaced it")
            queue.slots[notification.group_key] = _Pending(notification)
            if queue.thread is None:
                queue.thread = threading.Thread(
                    target=self._run,
                    args=(queue, notification.receiver),
                    name=f"alert-send-{name}",
                    daemon=True,
                )
                queue.thread.start()
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return sum(len(q.slots) for q in self._queues.values())

    def discard(self) -> int:
        """Forget every waiting notification without a word: this process stopped leading,
        and the leader resends what the record shows pending. Returns how many."""
        with self._cond:
            count = sum(len(q.slots) for q in self._queues.values())
            for queue in self._queues.values():
                queue.slots.clear()
            return count

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            threads = [q.thread for q in self._queues.values() if q.thread is not None]
        for thread in threads:
            thread.join(timeout)

    def _run(self, queue: _ReceiverQueue, receiver: Receiver) -> None:
        with client_for(receiver) as client:
            while not self._stop.is_set():
                item = self._next(queue)
                if item is not None:
                    self._send(client, queue, item)

    def _next(self, queue: _ReceiverQueue) -> _Pending | None:
        with self._cond:
            if not queue.slots:
                self._cond.wait(1.0)
                return None
            key, item = min(queue.slots.items(), key=lambda kv: kv[1].not_before)
            delay = item.not_before - time.time()
            if delay > 0:
                self._cond.wait(min(delay, 1.0))
                return None
            del queue.slots[key]
            return item

    def _send(self, client: httpx.Client, queue: _ReceiverQueue, item: _Pending) -> None:
        receiver = item.notification.receiver
        if not self.may_send():
            log.warning(
                "not the leader: notification to %s left for the leader to send", receiver.name
            )
            return
        status, error = 0, ""
        try:
            response = client.post(
                receiver.url,
                content=item.notification.body,
                headers={
                    "Content-Type": "application/json",
                    "User-Agent": "sidetrace-alerter",
                    # The same for a resend of one decision, so a receiver can drop repeats.
                    "X-Sidetrace-Notification": item.notification.id,
                    **auth_headers(receiver),
                },
                timeout=receiver.timeout_s,
            )
            status = response.status_code
        except (httpx.HTTPError, CredentialsError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        if 200 <= status < 300:
            self._record(item, "sent", status, "")
            return
        error = error or f"HTTP {status}"
        retryable = status == 0 or status == 429 or status >= 500
        with self._cond:
            newer = item.notification.group_key in queue.slots
            if not retryable or item.attempt >= self.max_attempts:
                outcome = "failed"
            elif newer:
                outcome = "superseded"
            else:
                outcome = "retry"
                delay = min(self.backoff_s * 2 ** (item.attempt - 1), self.max_backoff_s)
                queue.slots[item.notification.group_key] = _Pending(
                    item.notification, item.attempt + 1, time.time() + delay
                )
        self._record(item, outcome, status, error)
        if outcome == "failed":
            log.warning(
                "notification to %s failed after %d attempt(s): %s",
                receiver.name,
                item.attempt,
                error,
            )

    def _record(self, item: _Pending, outcome: str, status: int, error: str) -> None:
        try:
            self._on_attempt(
                Attempt(time.time(), item.notification, item.attempt, outcome, status, error)
            )
        except Exception:
            log.exception("could not record a notification attempt")
