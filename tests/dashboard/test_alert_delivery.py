"""Delivery: Alertmanager/Slack payloads, group dedupe, repeat, silences, retries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from dashboard.alert_delivery import (
    Attempt,
    Dispatcher,
    GroupEntry,
    Notification,
    Notifier,
    needs_update,
)
from dashboard.alert_payloads import rfc3339
from dashboard.alert_rules import FIRING, RESOLVED, Alert, AlertState
from slospec.slo_config import Receiver
from tests.support.polling import eventually
from tests.support.webhook_receiver import RecordingReceiver

EXTERNAL = "http://dash.example:16686"


@pytest.fixture
def hook() -> Iterator[RecordingReceiver]:
    receiver = RecordingReceiver()
    yield receiver
    receiver.close()


def make_alert(name: str = "payments-latency", severity: str = "page", **labels: str) -> Alert:
    return Alert(
        {"alertname": name, "severity": severity, "service": "payments", **labels},
        {"summary": f"{name} burning", "description": "too slow"},
        0,
        0,
        ("oncall",),
        "slo",
    )


def receivers(url: str = "http://127.0.0.1:1/x", **options: object) -> dict[str, Receiver]:
    return {"oncall": Receiver("oncall", url, **options)}  # type: ignore[arg-type]


FIRING_AT = AlertState(FIRING, 1_700_000_000.25, 1_700_000_100.0, None)
RESOLVED_AT = AlertState(RESOLVED, 1_700_000_000.25, 1_700_000_100.0, 1_700_000_200.5)


@pytest.mark.parametrize(
    ("entry", "firing", "resolved", "now", "expected"),
    [
        (None, {"a"}, set(), 0, True),  # first firing
        (None, set(), {"a"}, 0, False),  # never notified: resolved is news to nobody
        (GroupEntry(frozenset("a"), frozenset(), 0), {"a"}, set(), 10, False),  # same, too soon
        (GroupEntry(frozenset("a"), frozenset(), 0), {"a"}, set(), 100, True),  # repeat
        (GroupEntry(frozenset("a"), frozenset(), 0), {"a", "b"}, set(), 10, True),  # new alert
        (GroupEntry(frozenset("ab"), frozenset(), 0), {"a"}, {"b"}, 10, True),  # b resolved
        (GroupEntry(frozenset("a"), frozenset(), 0), set(), {"a"}, 10, True),  # all resolved
        (GroupEntry(frozenset(), frozenset("a"), 0), set(), set(), 10, False),  # told already
    ],
)  # fmt: skip
def test_dedupe_table(
    entry: GroupEntry | None, firing: set, resolved: set, now: float, expected: bool
) -> None:
    assert needs_update(entry, frozenset(firing), frozenset(resolved), now, 100, True) is expected


def test_alertmanager_payload_is_exact() -> None:
    sent: list[Notification] = []
    notifier = Notifier(sent.append, EXTERNAL + "/")
    alert = make_alert()
    notifier.notify([(alert, FIRING_AT)], set(), receivers(), 1_700_000_100.0)
    (notification,) = sent
    assert json.loads(notification.body) == {
        "version": "4",
        "groupKey": '{}:{alertname="payments-latency", severity="page"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "oncall",
        "groupLabels": {"alertname": "payments-latency", "severity": "page"},
        "commonLabels": {
            "alertname": "payments-latency",
            "service": "payments",
            "severity": "page",
        },
        "commonAnnotations": {"description": "too slow", "summary": "payments-latency burning"},
        "externalURL": EXTERNAL,
        "alerts": [
            {
                "status": "firing",
                "labels": {
                    "alertname": "payments-latency",
                    "service": "payments",
                    "severity": "page",
                },
                "annotations": {"description": "too slow", "summary": "payments-latency burning"},
                "startsAt": "2023-11-14T22:13:20.250Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": f"{EXTERNAL}/alerts?fingerprint={alert.fingerprint}",
                "fingerprint": alert.fingerprint,
            }
        ],
    }
    # resolved: one more notification, with endsAt, then nothing
    notifier.notify([(alert, RESOLVED_AT)], set(), receivers(), 1_700_000_200.5)
    body = json.loads(sent[1].body)
    assert body["status"] == "resolved"
    assert body["alerts"][0]["status"] == "resolved"
    assert body["alerts"][0]["endsAt"] == "2023-11-14T22:16:40.500Z"
    notifier.notify([(alert, RESOLVED_AT)], set(), receivers(), 1_700_000_300.0)
    assert len(sent) == 2


def test_one_notification_per_change_and_repeat_interval() -> None:
    sent: list[Notification] = []
    notifier = Notifier(sent.append, EXTERNAL)
    config = receivers(repeat_interval_s=60)
    alert = make_alert()
    for now in (100.0, 110.0, 120.0, 159.0):
        notifier.notify([(alert, FIRING_AT)], set(), config, now)
    assert len(sent) == 1
    notifier.notify([(alert, FIRING_AT)], set(), config, 160.0)  # repeat_interval elapsed
    assert len(sent) == 2
    # a second alert joining the group is a change: sent at once, both alerts in it
    other = make_alert(instance="b")
    notifier.notify([(alert, FIRING_AT), (other, FIRING_AT)], set(), config, 161.0)
    assert len(sent) == 3
    body = json.loads(sent[2].body)
    assert len(body["alerts"]) == 2
    assert "instance" not in body["commonLabels"]


def test_groups_are_separate_and_slack_format() -> None:
    sent: list[Notification] = []
    notifier = Notifier(sent.append, EXTERNAL)
    page, ticket = make_alert(), make_alert(severity="ticket")
    notifier.notify(
        [(page, FIRING_AT), (ticket, FIRING_AT)], set(), receivers(format="slack"), 100.0
    )
    assert [n.group_key for n in sent] == [
        '{}:{alertname="payments-latency", severity="page"}',
        '{}:{alertname="payments-latency", severity="ticket"}',
    ]
    assert json.loads(sent[0].body) == {
        "text": "[FIRING:1] payments-latency page",
        "attachments": [
            {
                "color": "danger",
                "title": "[FIRING:1] payments-latency page",
                "title_link": f"{EXTERNAL}/alerts",
                "text": "*FIRING* payments-latency burning (since 2023-11-14T22:13:20.250Z)",
                "fallback": "[FIRING:1] payments-latency page",
            }
        ],
    }


def test_silenced_alerts_are_not_delivered() -> None:
    sent: list[Notification] = []
    notifier = Notifier(sent.append, EXTERNAL)
    alert = make_alert()
    notifier.notify([(alert, FIRING_AT)], {alert.fingerprint}, receivers(), 100.0)
    notifier.notify([(alert, RESOLVED_AT)], {alert.fingerprint}, receivers(), 110.0)
    assert sent == []  # silenced while firing and while resolving: nothing at all
    # silence lifted while firing: the alert is news now
    notifier.notify([(alert, FIRING_AT)], set(), receivers(), 120.0)
    assert [json.loads(n.body)["status"] for n in sent] == ["firing"]


def test_send_resolved_false() -> None:
    sent: list[Notification] = []
    notifier = Notifier(sent.append, EXTERNAL)
    alert = make_alert()
    notifier.notify([(alert, FIRING_AT)], set(), receivers(send_resolved=False), 100.0)
    notifier.notify([(alert, RESOLVED_AT)], set(), receivers(send_resolved=False), 110.0)
    assert len(sent) == 1


def notification_for(url: str, name: str = "r") -> Notification:
    return Notification(Receiver(name, url, timeout_s=5), "g", "firing", ("f",), b'{"n": 1}')


def test_receiver_returning_500_is_retried_with_backoff() -> None:
    hook = RecordingReceiver(statuses=[500, 503, 200])
    attempts: list[Attempt] = []
    dispatcher = Dispatcher(attempts.append, backoff_s=0.2)
    try:
        dispatcher.submit(notification_for(hook.url()))
        assert hook.wait_for(3) == [{"n": 1}] * 3
        times = [t for _, _, t in hook.requests]
        assert times[1] - times[0] >= 0.15 and times[2] - times[1] >= 0.35  # 0.2 s, then 0.4 s
        eventually(lambda: len(attempts) >= 3, 5, 0.02, what="three attempts recorded")
        assert [(a.attempt, a.outcome, a.http_status) for a in attempts] == [
            (1, "retry", 500),
            (2, "retry", 503),
            (3, "sent", 200),
        ]
    finally:
        dispatcher.stop()
        hook.close()


def test_client_errors_are_not_retried_and_attempts_are_bounded() -> None:
    bad_request = RecordingReceiver(statuses=[400])
    always_down = RecordingReceiver(statuses=[500] * 10)
    attempts: list[Attempt] = []
    dispatcher = Dispatcher(attempts.append, backoff_s=0.05, max_attempts=3)
    try:
        dispatcher.submit(notification_for(bad_request.url(), "bad-request"))
        dispatcher.submit(notification_for(always_down.url(), "always-down"))
        always_down.wait_for(3)
        time.sleep(0.5)
        assert len(bad_request.bodies()) == 1
        assert len(always_down.bodies()) == 3
        outcomes = sorted((a.notification.receiver.url, a.outcome) for a in attempts)
        assert outcomes.count((bad_request.url(), "failed")) == 1
        assert outcomes.count((always_down.url(), "failed")) == 1
    finally:
        dispatcher.stop()
        bad_request.close()
        always_down.close()


def test_a_hanging_receiver_blocks_neither_evaluation_nor_other_receivers() -> None:
    slow = RecordingReceiver(delay_s=3.0)
    fast = RecordingReceiver()
    dispatcher = Dispatcher(lambda attempt: None)
    try:
        started = time.monotonic()
        dispatcher.submit(
            Notification(Receiver("slow", slow.url(), timeout_s=10), "g", "firing", (), b"{}")
        )
        dispatcher.submit(
            Notification(Receiver("fast", fast.url(), timeout_s=10), "g", "firing", (), b"{}")
        )
        assert time.monotonic() - started < 0.5  # submit never waits for a send
        fast.wait_for(1, timeout=2.5)  # delivered while the slow one still hangs
        assert slow.bodies() == []
    finally:
        dispatcher.stop(timeout=5)
        slow.close()
        fast.close()


def test_newer_notification_supersedes_a_pending_retry() -> None:
    hook = RecordingReceiver(statuses=[500])
    attempts: list[Attempt] = []
    dispatcher = Dispatcher(attempts.append, backoff_s=1.0)
    try:
        first = notification_for(hook.url())
        dispatcher.submit(first)
        hook.wait_for(1)
        time.sleep(0.2)  # first is now waiting for its retry
        newer = Notification(first.receiver, "g", "resolved", ("f",), b'{"n": 2}')
        dispatcher.submit(newer)
        assert hook.wait_for(2) == [{"n": 1}, {"n": 2}]
        time.sleep(1.5)
        assert len(hook.bodies()) == 2  # the old one was not retried after all
        assert "superseded" in [a.outcome for a in attempts]
    finally:
        dispatcher.stop()
        hook.close()


def test_rfc3339() -> None:
    assert rfc3339(0.0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(None) == "0001-01-01T00:00:00Z"
