"""Retention tiering on a real clickhouse-server and chDB: decisions, the move, re-runs, drops."""

from __future__ import annotations

import time

import pytest

from collector import tiering
from collector.tiering import LatencyRule, TieringConfig
from tests.support import trace_generator as gen
from tests.support.polling import alive, eventually
from tests.support.tiering_traffic import (
    DAY_S,
    KILL_CONFIG,
    MS,
    NORMAL,
    Traffic,
    day_start_s,
    kept_tier_counts,
    kill_mid_move,
    plain_trace,
    tier_decisions,
)
from tracestore import tiering_queries as tq

RULES = (LatencyRule(service="checkout", threshold_ns=200 * MS, operation="Charge"),)


def _pin(store, trace_id: str) -> None:
    store.insert("trace_pins", {"trace_id": [trace_id], "pinned_at": [int(time.time())],
                                "note": ["test"]})  # fmt: skip


def test_decisions_and_reasons(store):
    day = day_start_s(1)
    traffic = Traffic(store, day)
    _pin(store, Traffic.tid(traffic.pinned))
    config = TieringConfig(rules=RULES, keep_baseline=0.05, buckets=4)
    run = tiering.run_tiering(store, config, now_s=day + DAY_S + 3600)
    assert run.complete and run.chunks == 4 and run.dropped_days == []
    decided = tier_decisions(store)
    assert len(decided) == NORMAL + 3
    assert "error" in decided[Traffic.tid(traffic.error)][1]
    assert "slo" in decided[Traffic.tid(traffic.slo)][1]
    slow = decided[Traffic.tid(traffic.slow)]
    assert "p99" in slow[1] and "slo" not in slow[1] and "error" not in slow[1]
    assert "pinned" in decided[Traffic.tid(traffic.pinned)][1]
    plain = [decided[Traffic.tid(t)] for t in traffic.normal if t is not traffic.pinned]
    baseline = [d for d in plain if d[0]]
    assert all(d[1] == ["baseline"] for d in baseline)
    assert all(d[1] == [tq.NOT_SELECTED] for d in plain if not d[0])
    assert 0.01 * NORMAL <= len(baseline) <= 0.10 * NORMAL
    kept = [t for t, d in decided.items() if d[0]]
    assert all(decided[t][2] == 1 for t in kept)  # every kept trace moved
    rows, distinct = kept_tier_counts(store)
    assert rows == distinct == 2 * len(kept)
    in_kept = {str(r[0]) for r in store.query("SELECT DISTINCT trace_id FROM spans_kept")}
    assert in_kept == set(kept)


def test_baseline_is_deterministic_and_bounded(store):
    day = day_start_s(1)
    traffic = Traffic(store, day)
    tiering.run_tiering(store, TieringConfig(keep_baseline=0.0, buckets=2), now_s=day + DAY_S)
    decided = tier_decisions(store)
    assert not any("baseline" in d[1] for d in decided.values())
    assert decided[Traffic.tid(traffic.normal[0])] == (0, [tq.NOT_SELECTED], 0)


def test_settling_traces_wait(store):
    day = day_start_s(0)
    base = (day + 60) * 10**9
    gen.insert(store, plain_trace(gen.Ids(3), base, status=2))
    config = TieringConfig(buckets=1, settle_s=600)
    tiering.run_tiering(store, config, now_s=day + 61 + 300)
    assert tier_decisions(store) == {}
    tiering.run_tiering(store, config, now_s=day + 61 + 900)
    assert [d[:1] for d in tier_decisions(store).values()] == [(1,)]


def test_rerun_after_interrupted_move_copies_each_span_once(store):
    day = day_start_s(1)
    Traffic(store, day)
    config = TieringConfig(rules=RULES, buckets=4)
    now_s = day + DAY_S + 3600
    # A run killed after copying chunks but before marking them moved (and one chunk
    # whose copy never finished), then the whole job again, twice.
    settled = int((now_s - config.settle_s) * 10**9)
    for bucket in range(3):
        tq.decide(store, day, bucket, config.selection, settled, time.time_ns())
        tq.move(store, day, bucket, config.buckets)
    first = kept_tier_counts(store)
    assert first[0] == first[1] > 0
    tiering.run_tiering(store, config, now_s=now_s)
    tiering.run_tiering(store, config, now_s=now_s)
    decided = tier_decisions(store)
    kept = [t for t, d in decided.items() if d[0]]
    rows, distinct = kept_tier_counts(store)
    assert rows == distinct == 2 * len(kept)
    assert all(decided[t][2] == 1 for t in kept)


def test_pin_after_not_kept_decision_is_kept_while_hot(store):
    day = day_start_s(1)
    traffic = Traffic(store, day)
    config = TieringConfig(keep_baseline=0.0, buckets=2)
    tiering.run_tiering(store, config, now_s=day + DAY_S)
    target = Traffic.tid(traffic.normal[3])
    assert tier_decisions(store)[target][0] == 0
    _pin(store, target)
    tiering.run_tiering(store, config, now_s=day + DAY_S)
    assert tier_decisions(store)[target] == (1, ["pinned"], 1)
    assert store.query("SELECT count() FROM spans_kept WHERE trace_id = %(t)s", {"t": target}) == [
        (2,)
    ]


def test_hot_day_dropped_after_window_kept_tier_stays(store):
    day = day_start_s(3)
    traffic = Traffic(store, day)
    config = TieringConfig(keep_baseline=0.0, buckets=2)
    run = tiering.run_tiering(store, config, now_s=day + 2 * DAY_S + 60)
    assert run.dropped_days == [time.strftime("%Y-%m-%d", time.gmtime(day))]
    for table in ("spans", "spans_by_trace", "trace_index"):
        assert store.query(f"SELECT count() FROM {table}") == [(0,)]
    kept = {str(r[0]) for r in store.query("SELECT DISTINCT trace_id FROM spans_kept")}
    assert kept == {Traffic.tid(traffic.error), Traffic.tid(traffic.slow)}
    # Rollups are not hot data: analytics over the day are unchanged.
    calls = store.query("SELECT countMerge(calls) FROM latency_minute")
    assert calls == [(traffic.spans,)]


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="baseline"):
        TieringConfig(keep_baseline=1.5)
    with pytest.raises(ValueError, match="hot window"):
        TieringConfig(hot_retention_s=60, settle_s=300)


def test_collector_flags_make_the_tiering_config(tmp_path):
    from collector.command import config_from_args
    from sidetrace.cli import build_parser

    parse = build_parser().parse_args
    off = config_from_args(parse(["collector"]))
    assert off.tiering is None
    args = ["collector", "--tiering", "--keep-baseline", "10", "--kept-retention", "14"]
    on = config_from_args(parse([*args, "--slo", "schemas/examples/slo-demo.yaml"]))
    assert on.tiering.keep_baseline == pytest.approx(0.10)
    assert on.tiering.hot_retention_s == 24 * 3600 and on.retention.kept == 14
    assert on.tiering.rules == (
        LatencyRule(service="payments", threshold_ns=300 * MS, span_kind=gen.KIND_SERVER),
    )
    with pytest.raises(ValueError, match="--hot-retention"):
        config_from_args(parse(["collector", "--tiering", "--hot-retention", "200"]))
    bad = tmp_path / "bad.yaml"
    bad.write_text("slos:\n  - name: x\n")
    with pytest.raises(ValueError, match="bad.yaml"):
        config_from_args(parse(["collector", "--tiering", "--slo", str(bad)]))


def test_collector_runs_the_tiering_job(store, tmp_path):
    from collector.service import Collector, CollectorConfig

    start = time.time_ns() - 120 * 10**9
    error = plain_trace(gen.Ids(5), start, status=2)
    gen.insert(store, error)
    config = CollectorConfig(
        grpc_port=None,
        http_port=None,
        admin_port=None,
        spool_dir=str(tmp_path / "spool"),
        tiering=TieringConfig(settle_s=5, interval_s=0.5, buckets=2),
    )
    collector = Collector(store, config)
    collector.start()
    try:
        eventually(lambda: kept_tier_counts(store)[0], 60, 0.5, what="a span in the kept tier")
    finally:
        collector.stop(10)
    assert tier_decisions(store)[Traffic.tid(error)] == (1, ["error"], 1)
    assert kept_tier_counts(store) == (2, 2)


def test_trace_past_midnight_is_decided_once_with_its_first_day(store):
    day = day_start_s(3)
    start = (day + DAY_S - 1) * 10**9  # 23:59:59, its child ends past midnight
    ids = gen.Ids(9)
    trace = plain_trace(ids, start, root_ms=40_000, child_ms=30_000, status=2)
    late = gen.GenSpan(trace[0].trace_id, ids.span(), trace[0].span_id, "cart", "Get",
                       (day + DAY_S + 10) * 10**9, 5 * MS)  # fmt: skip
    gen.insert(store, [*trace, late])
    gen.insert(store, plain_trace(ids, (day + DAY_S + 3600) * 10**9))  # something of the next day
    config = TieringConfig(keep_baseline=0.0, buckets=1)
    run = tiering.run_tiering(store, config, now_s=day + 2 * DAY_S + 60)
    assert len(run.dropped_days) == 1  # the first day only; the next is still hot
    tiering.run_tiering(store, config, now_s=day + 2 * DAY_S + 120)
    days = store.query(
        "SELECT uniqExact(day) FROM trace_decisions WHERE trace_id = %(t)s",
        {"t": Traffic.tid(trace)},
    )
    assert days == [(1,)]
    assert kept_tier_counts(store) == (3, 3)


def test_sigkill_mid_move_then_rerun_copies_each_span_once(clickhouse_server):
    """A tiering process killed with SIGKILL while it works; the next run finishes the job."""
    import os

    from tracestore.migrate import migrate
    from tracestore.store import open_store

    url = clickhouse_server.url(database=f"sigkill_{os.getpid()}_{time.time_ns()}")
    store = open_store(url)
    migrate(store)
    day = day_start_s(1)
    Traffic(store, day)
    now_s = day + DAY_S + 3600
    kill_mid_move(url, store, now_s)
    tiering.run_tiering(store, TieringConfig(**KILL_CONFIG), now_s=now_s)
    decided = tier_decisions(store)
    kept = [t for t, d in decided.items() if d[0]]
    assert len(decided) == NORMAL + 3 and len(kept) > NORMAL // 4
    assert all(decided[t][2] == 1 for t in kept)
    assert kept_tier_counts(store) == (2 * len(kept), 2 * len(kept))


def test_a_settled_day_is_not_scanned_again_but_new_pins_count(store):
    day = day_start_s(1)
    traffic = Traffic(store, day)
    config = TieringConfig(keep_baseline=0.0, buckets=2)
    settled: set[int] = set()
    now_s = day + DAY_S + 2 * 3600
    tiering.run_tiering(store, config, now_s=now_s, settled_days=settled)
    assert settled == {day}
    target = Traffic.tid(traffic.normal[9])
    _pin(store, target)
    late = plain_trace(gen.Ids(99), (day + 3600) * 10**9, status=2)  # arrived after the day settled
    gen.insert(store, late)
    tiering.run_tiering(store, config, now_s=now_s, settled_days=settled)
    decided = tier_decisions(store)
    assert decided[target] == (1, ["pinned"], 1)
    assert Traffic.tid(late) not in decided  # the settled day was not scanned again
    tiering.run_tiering(store, config, now_s=now_s)  # without the job's memory: a full pass
    assert tier_decisions(store)[Traffic.tid(late)][0] == 1


CHDB_KILLED = """\
import pathlib, sys
from collector import tiering
from tests.support.tiering_traffic import KILL_CONFIG, Traffic
from tracestore.migrate import migrate
from tracestore.store import open_store
store = open_store(sys.argv[1])
migrate(store)
day, now_s, flag = int(sys.argv[2]), float(sys.argv[3]), pathlib.Path(sys.argv[4])
Traffic(store, day)
config = tiering.TieringConfig(**KILL_CONFIG)
while True:  # chunk by chunk until killed; says so once something was copied
    for bucket in range(config.buckets):
        tiering.run_chunk(store, day, bucket, config, now_s)
        if store.query("SELECT count() FROM spans_kept")[0][0]:
            flag.touch()
"""
CHDB_RERUN = """\
import json, sys
from collector import tiering
from tests.support.tiering_traffic import KILL_CONFIG, kept_tier_counts, tier_decisions
from tracestore.store import open_store
store = open_store(sys.argv[1])
tiering.run_tiering(store, tiering.TieringConfig(**KILL_CONFIG), now_s=float(sys.argv[2]))
print(json.dumps({"decided": tier_decisions(store), "kept_spans": kept_tier_counts(store)}))
"""


def test_sigkill_mid_move_then_rerun_on_chdb(tmp_path):
    """The same on chDB. A chDB path belongs to one process (and this one holds the
    tests' path), so one process works and is killed, and a second one finishes."""
    import json
    import os
    import signal
    import subprocess
    import sys

    url = f"chdb:{tmp_path / 'store'}?database=killed"
    day = day_start_s(1)
    now_s = day + DAY_S + 3600
    flag = tmp_path / "copied"
    args = [url, str(day), str(now_s), str(flag)]
    child = subprocess.Popen([sys.executable, "-c", CHDB_KILLED, *args])
    try:
        eventually(
            lambda: alive(child, "the tiering job") or flag.exists(),
            300,
            0.05,
            what="something copied",
        )
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    rerun = subprocess.run(
        [sys.executable, "-c", CHDB_RERUN, url, str(now_s)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    done = json.loads(rerun.stdout.strip().splitlines()[-1])
    decided = done["decided"]
    kept = [t for t, d in decided.items() if d[0]]
    assert len(decided) == NORMAL + 3 and len(kept) > NORMAL // 4
    assert all(decided[t][2] == 1 for t in kept)
    assert done["kept_spans"] == [2 * len(kept), 2 * len(kept)]
