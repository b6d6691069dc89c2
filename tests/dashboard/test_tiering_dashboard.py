"""Both tiers read as one, the honest not-kept answer and pins, over real HTTP on both backends."""

from __future__ import annotations

import time

import httpx

from collector import tiering
from collector.tiering import TieringConfig
from tests.support.dashboard_client import live_dashboard
from tests.support.tiering_traffic import DAY_S, Traffic, day_start_s, tier_decisions

NOT_KEPT = "not kept after the hot window (reason: baseline not selected)"


def test_kept_traces_read_after_the_hot_window_and_the_rest_answer_why(store):
    day = day_start_s(3)
    traffic = Traffic(store, day)
    run = tiering.run_tiering(store, TieringConfig(keep_baseline=0.0, buckets=2), day + 2 * DAY_S)
    assert run.dropped_days  # the hot tier holds nothing of that day any more
    error, plain = Traffic.tid(traffic.error), Traffic.tid(traffic.normal[0])
    window = {"start": str(day * 1000), "end": str((day + DAY_S) * 1000)}
    with live_dashboard(store) as url:
        trace = httpx.get(f"{url}/api/v1/traces/{error}", timeout=30)
        assert trace.status_code == 200, trace.text
        assert len(trace.json()["spans"]) == 2
        assert httpx.get(f"{url}/trace/{error}", timeout=30).status_code == 200
        found = httpx.get(
            f"{url}/api/v1/search", params={**window, "service": "checkout", "errors": "1"}
        ).json()["traces"]
        assert [t["traceId"] for t in found] == [error]
        assert found[0]["spanCount"] == 2 and found[0]["rootService"] == "frontend"
        jaeger = httpx.get(f"{url}/api/traces/{error}", timeout=30).json()
        assert len(jaeger["data"][0]["spans"]) == 2

        gone = httpx.get(f"{url}/api/v1/traces/{plain}", timeout=30)
        assert gone.status_code == 410 and NOT_KEPT in gone.json()["error"]
        page = httpx.get(f"{url}/trace/{plain}", timeout=30)
        assert page.status_code == 410 and NOT_KEPT in page.text
        jaeger = httpx.get(f"{url}/api/traces/{plain}", timeout=30)
        assert jaeger.status_code == 404 and NOT_KEPT in jaeger.json()["errors"][0]["msg"]
        v3 = httpx.get(f"{url}/api/v3/traces/{plain}", timeout=30)
        assert v3.status_code == 404 and NOT_KEPT in v3.json()["error"]["message"]
        pin = httpx.post(f"{url}/api/v1/traces/{plain}/pin", json={}, timeout=30)
        assert pin.status_code == 404 and NOT_KEPT in pin.json()["error"]
        unknown = httpx.get(f"{url}/api/v1/traces/{'ab' * 16}", timeout=30)
        assert unknown.status_code == 404 and "not found" in unknown.json()["error"]


def test_pin_keeps_a_trace_the_baseline_would_drop(store):
    day = day_start_s(1)
    traffic = Traffic(store, day)
    target = Traffic.tid(traffic.normal[5])
    with live_dashboard(store) as url:
        pin_url = f"{url}/api/v1/traces/{target}/pin"
        state = httpx.get(pin_url, timeout=30).json()
        assert state == {"traceID": target, "pinned": False, "decision": None}
        bad = httpx.post(pin_url, content=b"{", headers={"Content-Type": "application/json"})
        assert bad.status_code == 400
        bad = httpx.post(pin_url, json={"note": 7}, timeout=30)
        assert bad.status_code == 400 and "note" in bad.json()["error"]
        plain_text = httpx.post(pin_url, content=b"{}", headers={"Content-Type": "text/plain"})
        assert plain_text.status_code == 415
        pinned = httpx.post(pin_url, json={"note": "incident 42"}, timeout=30)
        assert pinned.status_code == 200 and pinned.json()["pinned"] is True
        assert httpx.get(pin_url, timeout=30).json()["pinned"] is True
        missing = httpx.post(f"{url}/api/v1/traces/{'cd' * 16}/pin", json={}, timeout=30)
        assert missing.status_code == 404
    tiering.run_tiering(store, TieringConfig(keep_baseline=0.0, buckets=2), now_s=day + DAY_S)
    assert tier_decisions(store)[target] == (1, ["pinned"], 1)
    with live_dashboard(store) as url:
        state = httpx.get(f"{url}/api/v1/traces/{target}/pin", timeout=30).json()
        assert state["decision"] == {"kept": True, "reasons": ["pinned"]}


def test_examples_api_hands_out_and_records_examples(store):
    from tests.support.example_traffic import ExampleTraffic
    from tracestore.example_queries import example_traces

    t0 = int(time.time()) // 60 * 60 - 600
    traffic = ExampleTraffic(store, t0)
    window = {"start": str(t0 * 1000), "end": str((t0 + 100) * 1000)}
    with live_dashboard(store) as url:
        api = f"{url}/api/v1/examples"
        chart = httpx.get(api, params={"service": "checkout", "operation": "Charge", **window})
        assert chart.status_code == 200, chart.text
        (found,) = chart.json()["examples"]
        assert found["operation"] == "Charge" and found["slowest"]["traceID"] == traffic.chart
        assert found["error"]["url"] == f"/trace/{traffic.chart_error}"
        edge_window = {"start": str((t0 + 100) * 1000), "end": str((t0 + 200) * 1000)}
        edge = httpx.get(api, params={"parent": "frontend", "child": "checkout", **edge_window})
        (found,) = edge.json()["examples"]
        assert found["slowest"]["traceID"] == traffic.edge and found["error"] is None
        for bad in ({}, {"parent": "frontend"}, {"parent": "a", "child": "b", "kind": "x"},
                    {"service": "checkout", "start": "yesterday-ish"}):  # fmt: skip
            answer = httpx.get(api, params=bad, timeout=30)
            assert answer.status_code == 400 and answer.json()["error"], bad
    recorded = example_traces(store)
    assert recorded[traffic.chart] == ("chart",) and recorded[traffic.edge] == ("edge",)
    assert traffic.plain not in recorded
