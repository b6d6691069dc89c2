"""The evaluator on real ClickHouse (server and chDB): counts, states, history, pages, API."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from dashboard.alert_silences import SilenceStore, new_silence, parse_matchers
from dashboard.slo_evaluator import SloEvaluator
from slospec.slo_config import SloConfigSet
from tests.support.polling import eventually
from tests.support.slo_spans import MS, SLO_FILE, insert_spans
from tests.support.webhook_receiver import RecordingReceiver
from tracestore.slo_math import bucket_cut
from tracestore.slo_queries import window_counts
from tracestore.store import Store


def test_window_counts_match_the_spans(store: Store) -> None:
    now = time.time()
    spans = []
    for i in range(600):  # one call every 3 s over the last 30 minutes
        duration = (50, 250, 400, 1200)[i % 4]
        spans.append(
            (now - 1 - i * 3, duration, 2 if i % 7 == 0 else 0, ("GET /a", "GET /b")[i % 2])
        )
    insert_spans(store, spans)
    cuts = {"payments": [bucket_cut(300 * MS), bucket_cut(1000 * MS)]}
    counts = window_counts(store, cuts, [300.0, 900.0, 100.5], now)

    def expected(start: float, ok: bool) -> tuple[int, int, int, int]:
        chosen = [s for s in spans if s[0] >= start and s[3] == "GET /a"]
        good = [s for s in chosen if not ok or s[2] != 2]
        return (
            len(chosen),
            sum(1 for s in chosen if s[2] == 2),
            sum(1 for s in good if s[1] <= 300),
            sum(1 for s in good if s[1] <= 1000),
        )

    for window in (300.0, 900.0):  # whole minutes: from the minute holding now - window
        start = math.floor((now - window) / 60) * 60
        c = counts[window][("payments", "GET /a", 2)]
        calls, errors, good300, good1000 = expected(start, ok=False)
        assert (c.calls, c.errors, c.good) == (calls, errors, (good300, good1000))
        assert c.ok_good == expected(start, ok=True)[2:]
    c = counts[100.5][("payments", "GET /a", 2)]  # not whole minutes: raw spans, exact
    assert (c.calls, c.errors, c.good, c.ok_good) == (
        *expected(now - 100.5, ok=False)[:2],
        expected(now - 100.5, ok=False)[2:],
        expected(now - 100.5, ok=True)[2:],
    )


def test_evaluator_states_history_silences_and_delivery(store: Store, tmp_path: Path) -> None:
    hook = RecordingReceiver()
    path = tmp_path / "slo.yaml"
    path.write_text(SLO_FILE.format(url=hook.url()))
    config = SloConfigSet([str(path)])
    clock = [time.time()]
    evaluator = SloEvaluator(store, config, "http://dash:16686", clock=lambda: clock[0])
    try:
        config.load(evaluator.known_services)
        t0 = clock[0]
        insert_spans(store, [(t0 - 30 + i * 0.1, 100, 0, "GET /pay") for i in range(200)])
        snapshot = evaluator.evaluate_once()
        (status,) = snapshot.slos
        assert (status.good, status.total, status.sli) == (200, 200, 1.0)
        assert status.budget_remaining == 1.0
        assert status.time_to_exhaustion_s is None
        assert {v.state.state for v in snapshot.alerts} == {"inactive"}

        # silence the ticket alert, then everything turns slow: 200 slow calls of 400
        silences = SilenceStore(store)
        silences.save(
            new_silence(
                parse_matchers('alertname="payments-latency", severity="ticket"'),
                t0 - 1,
                t0 + 3600,
                "test",
                "quiet",
            )
        )
        insert_spans(store, [(t0 - 20 + i * 0.1, 2000, 0, "GET /pay") for i in range(200)])
        snapshot = evaluator.evaluate_once()
        states = {
            v.alert.labels["alertname"] + "/" + v.alert.labels["severity"]: v
            for v in snapshot.alerts
        }
        assert states["payments-latency/page"].state.state == "pending"  # for: 2m
        assert states["payments-latency/ticket"].state.state == "firing"
        assert states["payments-latency/ticket"].silenced
        assert states["payments-p99/ticket"].state.state == "firing"
        (status,) = snapshot.slos
        assert (status.good, status.total) == (200, 400)
        assert status.burn_rates[0][1] == pytest.approx(50.0)  # 50% bad / 1% allowed
        assert status.budget_remaining == pytest.approx(1 - 200 / 4)

        clock[0] = t0 + 121
        evaluator.evaluate_once()
        assert states_of(evaluator)["payments-latency/page"] == "firing"

        bodies = hook.wait_for(2)
        time.sleep(0.5)
        names = sorted((b["commonLabels"]["alertname"], b["status"]) for b in hook.bodies())
        assert names == [("payments-latency", "firing"), ("payments-p99", "firing")]
        page = next(b for b in bodies if b["commonLabels"]["alertname"] == "payments-latency")
        assert page["commonLabels"]["severity"] == "page"  # the silenced ticket never went out

        history = store.query(
            "SELECT alertname, severity, from_state, to_state, silenced FROM alert_events "
            "ORDER BY at_ms, alertname, severity"
        )
        assert [tuple(r) for r in history] == [
            ("payments-latency", "page", "inactive", "pending", 0),
            ("payments-latency", "ticket", "inactive", "firing", 1),
            ("payments-p99", "ticket", "inactive", "firing", 0),
            ("payments-latency", "page", "pending", "firing", 0),
        ]
        outcomes = store.query("SELECT receiver, outcome, http_status FROM alert_notifications")
        assert sorted(tuple(r) for r in outcomes) == [("hook", "sent", 200)] * 2
    finally:
        evaluator.close()
        hook.close()


def states_of(evaluator: SloEvaluator) -> dict[str, str]:
    return {
        v.alert.labels["alertname"] + "/" + v.alert.labels["severity"]: v.state.state
        for v in evaluator.snapshot.alerts
    }


def test_restart_continues_a_firing_episode(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "slo.yaml"
    path.write_text(
        SLO_FILE.format(url="http://127.0.0.1:1/unused").replace(
            "receivers: [hook]\n", "receivers: []\n"
        )
    )
    now = time.time()
    insert_spans(store, [(now - 20 + i * 0.1, 2000, 0, "GET /pay") for i in range(100)])
    first = SloEvaluator(store, SloConfigSet([str(path)]), "http://dash")
    first.config.load(lambda: set())
    first.evaluate_once(now)
    first.close()
    second = SloEvaluator(store, SloConfigSet([str(path)]), "http://dash")
    second.config.load(lambda: set())
    snapshot = second.evaluate_once(now + 130)
    second.close()
    page = next(v for v in snapshot.alerts if v.alert.labels["severity"] == "page")
    assert page.state.state == "firing"  # pending since `now`, so for: 2m has passed
    assert page.state.active_at == pytest.approx(now, abs=0.002)


def test_pages_and_api(store: Store, tmp_path: Path) -> None:
    from dashboard.app import create_app
    from dashboard.context import DashboardContext

    path = tmp_path / "slo.yaml"
    path.write_text(SLO_FILE.format(url="http://127.0.0.1:1/unused"))
    now = time.time()
    insert_spans(store, [(now - 20 + i * 0.1, 2000, 0, "GET /pay") for i in range(100)])
    ctx = DashboardContext(store=store, slo_files=[str(path)], slo_interval=0.5)
    with TestClient(create_app(ctx)) as client:
        eventually(lambda: client.get("/api/v1/slos").json()["evaluatedAt"], 30, what="evaluated")
        slos = client.get("/api/v1/slos").json()
        (slo,) = slos["slos"]
        assert slo["name"] == "payments-latency"
        assert (slo["good"], slo["total"]) == (0, 100)
        assert slo["burnRates"]["1h"] == pytest.approx(100.0)
        assert slo["effectiveThresholdMs"] == pytest.approx(299.1409, abs=1e-3)

        page = client.get("/slos")
        assert page.status_code == 200
        assert "payments-latency" in page.text and "<polyline" in page.text

        created = client.post(
            "/api/v1/silences",
            json={"matchers": [{"name": "severity", "value": "page"}], "duration": "1h",
                  "createdBy": "tester", "comment": "maintenance"},
        )  # fmt: skip
        assert created.status_code == 201
        silence_id = created.json()["silenceID"]
        listed = client.get("/api/v1/silences").json()["silences"]
        assert [(s["id"], s["status"]["state"]) for s in listed] == [(silence_id, "active")]
        bad = client.post("/api/v1/silences", json={"matchers": "severity==page", "duration": "1h"})
        assert bad.status_code == 400
        assert "cannot read matcher" in bad.json()["error"]
        form = client.post(
            "/alerts/silences",
            data={"matchers": 'alertname="x"', "duration": "2h", "created_by": "a", "comment": "b"},
            follow_redirects=False,
        )
        assert form.status_code == 303
        assert (
            client.delete(f"/api/v1/silences/{silence_id}").json()["status"]["state"] == "expired"
        )
        assert client.delete("/api/v1/silences/nope").status_code == 404

        alerts_page = client.get("/alerts")
        assert alerts_page.status_code == 200
        assert "tester" in alerts_page.text and "maintenance" in alerts_page.text
        history = client.get("/api/v1/alerts/history?limit=10").json()["events"]
        assert {e["to"] for e in history} >= {"firing"}
        assert client.get("/api/v1/alerts/history?limit=x").status_code == 400
        assert "/api/v1/silences" in client.get("/api/v1/openapi.json").json()["paths"]


def test_cache_reads_incrementally_and_matches_fresh_queries(store: Store) -> None:
    from dashboard.slo_cache import RollupCache

    now = time.time()
    first = [
        (
            now - 5 - i * 4,
            (80, 350, 900)[i % 3],
            2 if i % 5 == 0 else 0,
            ("GET /a", "GET /b")[i % 2],
        )
        for i in range(300)
    ]  # the last 20 minutes
    insert_spans(store, first)
    cuts = {"payments": [bucket_cut(300 * MS), bucket_cut(1000 * MS)]}
    minute_windows = [300.0, 900.0, 3600.0]
    long_window = 5 * 86400.0  # beyond the minute horizon: hourly slots
    cache = RollupCache()

    def check(at: float, spans: list) -> None:
        got = cache.window_counts(store, cuts, [*minute_windows, long_window], at)
        fresh = window_counts(store, cuts, minute_windows, at)
        for window in minute_windows:
            assert got[window] == fresh[window], window
        totals = {}
        for _, _, _, name in spans:
            totals[name] = totals.get(name, 0) + 1
        assert {key[1]: c.calls for key, c in got[long_window].items()} == totals

    check(now, first)
    # late spans in the last minute, a new operation, and time moves on
    later = [(now - 30 + i * 0.5, 120, 0, ("GET /a", "GET /c")[i % 2]) for i in range(50)]
    insert_spans(store, later)
    check(now + 70, first + later)
    check(now + 200, first + later)


def test_raw_span_rows_equal_the_rollup_rows(store: Store) -> None:
    """The cold-start load reads minutes from raw spans: the numbers must be the rollup's."""
    from tracestore.latency_buckets import bucket_of, edge_ns
    from tracestore.slo_queries import SPANS, range_rows

    now = time.time()
    cuts = {"payments": [bucket_cut(300 * MS), bucket_cut(1000 * MS)], "search": [bucket_cut(MS)]}
    edges = [edge_ns(c) for cut in cuts.values() for c in cut]  # durations right at the cuts
    durations = [int(e) + d for e in edges for d in (-1, 0, 1)] + [0, 1, 5 * 10**9]
    rows = 2000
    spans = {
        "ts": [],
        "start_ns": [],
        "duration_ns": [],
        "service_name": [],
        "span_name": [],
        "span_kind": [],
        "status_code": [],
    }
    for i in range(rows):  # two hours, three services (one without an SLO), two kinds
        start = now - 7200 + i * 3.6
        spans["ts"].append(int(start))
        spans["start_ns"].append(int(start * 1e9))
        spans["duration_ns"].append(durations[i // 3 % len(durations)])
        spans["service_name"].append(("payments", "search", "other")[i % 3])
        spans["span_name"].append(("GET /a", "GET /b")[i % 2])
        spans["span_kind"].append((2, 3)[i % 5 == 0])
        spans["status_code"].append((0, 1, 2)[i % 4 % 3])
    spans["trace_id"] = [f"{i:032x}" for i in range(rows)]
    spans["span_id"] = [f"{i:016x}" for i in range(rows)]
    store.insert("spans", spans)
    start = math.floor((now - 7200) / 3600) * 3600
    end = math.floor(now / 60) * 60
    for step in (60, 3600):
        raw = range_rows(store, cuts, start, end, step, SPANS)
        assert raw == range_rows(store, cuts, start, end, step, "latency_minute"), step
    minutes = range_rows(store, cuts, start, end, 60, SPANS)
    assert sum(v[0] for v in minutes.values()) == 2 * rows // 3 + 1
    good = sum(v[2] for (key, _), v in minutes.items() if key[0] == "search")
    below = [
        d
        for i, d in enumerate(spans["duration_ns"])
        if spans["service_name"][i] == "search" and bucket_of(d) < cuts["search"][0]
    ]
    assert good == len(below) > 0


def test_ring_holds_many_series_and_forgets_old_slots() -> None:
    import numpy as np

    from dashboard.slo_cache import _Ring

    ring = _Ring(slots=4, step=60, cuts=2)
    for n in range(40):  # more series than the first allocation
        ring.add(("svc", f"op{n}", 2), 0, ring.widen([n, 0, 1, 1], 1))
    assert ring.total(0, 0)[("svc", "op39", 2)].tolist() == [39, 0, 1, 0, 1, 0]
    ring.put(("svc", "op0", 2), 240, np.array([5, 1, 4, 3, 2, 1]))  # same slot, 4 min later
    assert ring.total(0, 0)[("svc", "op1", 2)].tolist() == [0] * 6  # the old minute is gone
    assert ring.total(240, 240)[("svc", "op0", 2)].tolist() == [5, 1, 4, 3, 2, 1]


def test_dashboard_refuses_invalid_slo_files_at_start(store: Store, tmp_path: Path) -> None:
    from dashboard.app import create_app
    from dashboard.context import DashboardContext
    from slospec.slo_config import SloConfigError

    path = tmp_path / "slo.yaml"
    path.write_text(SLO_FILE.format(url="http://127.0.0.1:1/x").replace("target: 99", "target: 0"))
    ctx = DashboardContext(store=store, slo_files=[str(path)])
    with pytest.raises(SloConfigError) as info, TestClient(create_app(ctx)):
        pass
    assert info.value.errors == [
        f"{path}:6: slos[0].target: 0 is out of range: target is a percentage between 0 and "
        "100 (exclusive), e.g. 99.5"
    ]
