"""The delivery record on real ClickHouse: a new leader resumes where the old one stopped.

The first evaluator decides a notification and records it, then stops before
sending (as if killed between the record and the send); the second, starting on
the same store, sends that very notification (same id) and nothing else, and
later notifies the resolution of the episode it did not see begin.
"""

from __future__ import annotations

import time
from pathlib import Path

from dashboard.alert_delivery import Dispatcher
from dashboard.slo_evaluator import SloEvaluator
from slospec.slo_config import SloConfigSet
from tests.support.slo_spans import insert_spans
from tests.support.webhook_receiver import RecordingReceiver
from tracestore.store import Store

SLO_FILE = """\
slos:
  - name: payments-latency
    service: payments
    threshold: 200ms
    target: 99
    alerts:
      - severity: page
        receivers: [hook]
receivers:
  - name: hook
    url: {url}
"""


def evaluator(store: Store, path: Path, **options: object) -> SloEvaluator:
    config = SloConfigSet([str(path)])
    config.load(lambda: {"payments"})
    return SloEvaluator(store, config, "http://dash", **options)


def test_a_new_leader_sends_what_was_decided_but_not_sent(store: Store, tmp_path: Path) -> None:
    hook = RecordingReceiver()
    path = tmp_path / "slo.yaml"
    path.write_text(SLO_FILE.format(url=hook.url()))
    now = time.time()
    insert_spans(store, [(now - 60 + i * 0.2, 900, 0, "GET /pay") for i in range(200)])
    dying = evaluator(store, path, dispatcher=Dispatcher(lambda a: None, may_send=lambda: False))
    dying.evaluate_once(now)
    dying.close()
    [(decided, state)] = store.query("SELECT id, state FROM alert_deliveries WHERE id != ''")
    assert state == "pending"
    time.sleep(0.5)
    assert hook.bodies() == []  # killed between its record and its send

    second = evaluator(store, path)
    try:
        second.evaluate_once(now + 10)
        [body] = hook.wait_for(1)
        assert body["status"] == "firing"
        second.evaluate_once(now + 20)  # still firing: the group was told already
        time.sleep(1)
        assert len(hook.bodies()) == 1 and hook.ids == [decided]
        sent = store.query("SELECT state FROM alert_deliveries WHERE id = %(id)s", {"id": decided})
        assert sorted(r[0] for r in sent) == ["pending", "sent"]

        # The incident ends: 2,000 fast calls bring the 5-minute window under the burn rate.
        insert_spans(store, [(now + 30 + i * 0.01, 20, 0, "GET /pay") for i in range(2000)])
        second.evaluate_once(now + 60 + 3600)  # an hour on: the slow calls are out of every window
        bodies = hook.wait_for(2)
        assert [b["status"] for b in bodies] == ["firing", "resolved"]
    finally:
        second.close()
        hook.close()


def test_a_follower_records_and_sends_nothing(store: Store, tmp_path: Path) -> None:
    class Follower:
        job, term = "slo-evaluator", 0

        def check(self, confirm: bool = False) -> bool:
            return False

    hook = RecordingReceiver()
    path = tmp_path / "slo.yaml"
    path.write_text(SLO_FILE.format(url=hook.url()))
    now = time.time()
    insert_spans(store, [(now - 60 + i * 0.2, 900, 0, "GET /pay") for i in range(200)])
    follower = evaluator(store, path, leadership=Follower())
    try:
        snapshot = follower.evaluate_once(now)
        assert [v.state.state for v in snapshot.alerts] == ["firing"]  # its pages still show it
        time.sleep(1)
        assert hook.bodies() == []
        assert store.query("SELECT count() FROM alert_events")[0][0] == 0
        assert store.query("SELECT count() FROM alert_deliveries")[0][0] == 0
    finally:
        follower.close()
        hook.close()
