"""A new leader starts from the slots the last one kept in ``slo_slots`` (plain
integers), not from the rollups' sumMap states, and its counts are the same."""

from __future__ import annotations

import json
import time
from pathlib import Path

from dashboard.slo_cache import KEEP_MAX_AGE_S, RollupCache
from dashboard.slo_evaluator import SloEvaluator
from slospec.slo_config import SloConfigSet
from tests.support.slo_spans import CUTS, MS, WINDOWS, insert_spans, spans_over
from tracestore.slo_math import bucket_cut
from tracestore.slo_queries import keep_slots, last_slot_header, window_counts
from tracestore.store import Store


def leader_keeps(store: Store, now: float) -> None:
    RollupCache().window_counts(store, CUTS, WINDOWS, now, keep=lambda: True)


def test_new_leader_resumes_from_kept_slots(store: Store) -> None:
    now = time.time()
    insert_spans(store, spans_over(now, 30, 600))
    expected = window_counts(store, CUTS, WINDOWS, now)
    leader_keeps(store, now)
    # Without its hours the rollups could not give these counts: only the kept slots can.
    store.execute("TRUNCATE TABLE latency_hour")
    successor = RollupCache()
    assert successor.window_counts(store, CUTS, WINDOWS, now) == expected
    assert successor.resumed


def test_resumed_leader_counts_what_came_after_and_late_spans(store: Store) -> None:
    now = time.time()
    insert_spans(store, spans_over(now, 30, 300))
    leader_keeps(store, now)
    later = now + 900
    fresh = [(later - 1 - i * 20, (80, 900)[i % 2], 0, "GET /pay") for i in range(30)]
    # Late: 20 minutes, 3 hours and 20 hours before the keep (the collector accepts a day).
    late = [
        (now - age, 900, 0, "GET /pay") for age in (1200, 3 * 3600, 20 * 3600) for _ in range(7)
    ]
    insert_spans(store, fresh + late)
    successor = RollupCache()
    got = successor.window_counts(store, CUTS, WINDOWS, later)
    assert successor.resumed
    assert got == window_counts(store, CUTS, WINDOWS, later)


def test_nothing_fit_to_resume_loads_from_the_rollups(store: Store) -> None:
    now = time.time()
    insert_spans(store, spans_over(now, 30, 300))
    follower = RollupCache()  # a follower does not keep
    follower.window_counts(store, CUTS, WINDOWS, now, keep=lambda: False)
    assert not RollupCache()._try_resume(store, dict(follower._cuts), max(WINDOWS), now)
    leader_keeps(store, now)
    other_cuts = {"payments": [bucket_cut(500 * MS)]}
    for cuts, at in ((other_cuts, now), (CUTS, now + KEEP_MAX_AGE_S + 120)):
        cache = RollupCache()
        got = cache.window_counts(store, cuts, WINDOWS, at)
        assert not cache.resumed
        assert got == window_counts(store, cuts, WINDOWS, at)


SLO_FILE = """\
slos:
  - name: payments-latency
    service: payments
    threshold: 300ms
    target: 99
"""


class Follower:
    job, term = "slo-evaluator", 0

    def check(self, confirm: bool = False) -> bool:
        return False


def test_the_leading_evaluator_keeps_its_slots_and_a_follower_does_not(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(SLO_FILE)

    def evaluator(**options: object) -> SloEvaluator:
        config = SloConfigSet([str(path)])
        config.load(lambda: {"payments"})
        return SloEvaluator(store, config, "http://dash", **options)

    now = time.time()
    insert_spans(store, spans_over(now, 30, 300))
    kept = "SELECT count() FROM slo_slots"
    for options, count in (({"leadership": Follower()}, 0), ({}, 1)):
        acting = evaluator(**options)
        acting.evaluate_once(now)
        acting.close()
        assert min(store.query(kept)[0][0], 1) == count
    successor = evaluator(leadership=Follower())
    resumed = successor.evaluate_once(now + 60).slos
    successor.close()
    assert successor.cache.resumed
    store.execute("TRUNCATE TABLE slo_slots")
    cold = evaluator(leadership=Follower())
    assert cold.evaluate_once(now + 60).slos == resumed
    cold.close()
    assert not cold.cache.resumed


def test_a_header_whose_slots_have_not_all_arrived_is_not_resumed(store: Store) -> None:
    now = time.time()
    insert_spans(store, spans_over(now, 30, 300))
    leader_keeps(store, now)
    found = last_slot_header(store)
    assert found is not None
    epoch, version, body = found
    head = json.loads(body)
    head["versions"][0][2] = version + 1  # a slot row written later, not here yet
    keep_slots(store, epoch, version + 1, [], json.dumps(head))
    cache = RollupCache()
    got = cache.window_counts(store, CUTS, WINDOWS, now)
    assert not cache.resumed
    assert got == window_counts(store, CUTS, WINDOWS, now)
