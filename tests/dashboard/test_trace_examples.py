"""Example traces on both backends: a latency chart, an edge page and an SLO alert show
the slowest and the erroneous trace of their window, and those are kept past the hot
window with the reason "example", while an unreferenced ordinary trace is not.

Every trace has the same root duration (so none is a p99 outlier of its hour) and the
baseline is off, so an ordinary trace is kept only when something referenced it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from collector import tiering
from collector.tiering import TieringConfig
from dashboard.example_links import ERROR_ANNOTATION, SLOWEST_ANNOTATION
from dashboard.slo_evaluator import SloEvaluator
from slospec.slo_config import SloConfigSet
from tests.support.dashboard_client import live_dashboard
from tests.support.example_traffic import TRACES, ExampleTraffic
from tests.support.webhook_receiver import RecordingReceiver
from tracestore import example_queries as eq
from tracestore import tiering_queries as tq
from tracestore.store import Store

DAY_S = 86_400
NOT_KEPT = "not kept after the hot window (reason: baseline not selected)"


ALERT_FILE = """\
slos:
  - name: checkout-charge-latency
    service: checkout
    operation: Charge
    threshold: 3ms
    target: 99
    alerts:
      - severity: page
        receivers: [hook]
threshold_alerts:
  - name: checkout-charge-slow
    service: checkout
    operation: Charge
    quantile: 0.5
    threshold: 3ms
    window: 10m
    min_events: 10
    receivers: [hook]
receivers:
  - name: hook
    url: {url}
"""


def _decisions(store: Store) -> dict[str, tuple[int, list[str]]]:
    rows = store.query(f"SELECT trace_id, d_kept, d_reasons FROM {tq.latest_decisions_sql('1')}")
    return {str(r[0]): (int(r[1]), sorted(r[2])) for r in rows}


def _window(start_s: int, end_s: int) -> dict[str, str]:
    return {"start": str(start_s * 1000), "end": str(end_s * 1000)}


def test_examples_on_charts_edges_and_alerts_are_kept(store: Store, tmp_path: Path) -> None:
    t0 = int(time.time()) // 60 * 60 - 600
    traffic = ExampleTraffic(store, t0)
    with live_dashboard(store) as url:
        page = httpx.get(f"{url}/services/checkout", params=_window(t0, t0 + 100), timeout=60)
        assert page.status_code == 200, page.text
        assert f'href="/trace/{traffic.chart}"' in page.text
        assert f'href="/trace/{traffic.chart_error}"' in page.text
        assert 'id="chart-examples"' in page.text and "Charge:" in page.text
        edge = httpx.get(
            f"{url}/services/edge",
            params={"parent": "frontend", "child": "checkout", **_window(t0 + 100, t0 + 200)},
            timeout=60,
        )
        assert edge.status_code == 200, edge.text
        examples = edge.text.split('id="edge-examples"')[1].split("</div>")[0]
        assert f'href="/trace/{traffic.edge}"' in examples and "no errors" in examples

    hook = RecordingReceiver()
    path = tmp_path / "alerts.yaml"
    path.write_text(ALERT_FILE.format(url=hook.url()))
    now = t0 + TRACES + 1
    evaluator = SloEvaluator(store, SloConfigSet([str(path)]), "http://dash", clock=lambda: now)
    try:
        evaluator.config.load(evaluator.known_services)
        evaluator.evaluate_once()
        bodies = hook.wait_for(2)
    finally:
        evaluator.close()
        hook.close()
    alerts = {b["commonLabels"]["alertname"]: b["alerts"] for b in bodies}
    assert set(alerts) == {"checkout-charge-latency", "checkout-charge-slow"}  # SLO, threshold
    for (alert,) in alerts.values():
        assert alert["status"] == "firing"
        assert alert["annotations"][SLOWEST_ANNOTATION] == f"http://dash/trace/{traffic.alert}"
        assert alert["annotations"][ERROR_ANNOTATION] == f"http://dash/trace/{traffic.alert_error}"

    sources = eq.example_traces(store)
    assert sources[traffic.chart] == ("chart",) and sources[traffic.edge] == ("edge",)
    assert sources[traffic.alert] == ("alert",) and traffic.plain not in sources

    # Past the hot window: the hot days are dropped, the examples stay, with their reason.
    config = TieringConfig(keep_baseline=0.0, buckets=2)
    run = tiering.run_tiering(store, config, now_s=time.time() + 2 * DAY_S)
    assert run.dropped_days
    decided = _decisions(store)
    for trace_id in (traffic.chart, traffic.edge, traffic.alert):
        assert decided[trace_id] == (1, ["example"]), trace_id
    for trace_id in (traffic.chart_error, traffic.alert_error):
        assert decided[trace_id] == (1, ["error", "example"]), trace_id
    assert decided[traffic.plain] == (0, [tq.NOT_SELECTED])
    kept = {str(r[0]) for r in store.query("SELECT DISTINCT trace_id FROM spans_kept")}
    assert {traffic.chart, traffic.chart_error, traffic.edge, traffic.alert,
            traffic.alert_error} <= kept and traffic.plain not in kept  # fmt: skip
    with live_dashboard(store) as url:
        for trace_id in (traffic.chart, traffic.edge, traffic.alert):
            trace = httpx.get(f"{url}/api/v1/traces/{trace_id}", timeout=30)
            assert trace.status_code == 200 and len(trace.json()["spans"]) == 3
        gone = httpx.get(f"{url}/api/v1/traces/{traffic.plain}", timeout=30)
        assert gone.status_code == 410 and NOT_KEPT in gone.json()["error"]
        # A chart over the old window still links its examples, now from the kept tier.
        page = httpx.get(f"{url}/services/checkout", params=_window(t0, t0 + 100), timeout=60)
        assert f'href="/trace/{traffic.chart}"' in page.text


def test_example_referenced_after_a_not_kept_decision_is_kept_while_hot(store: Store) -> None:
    """A settled day is only re-read for pins and examples; a new example still counts."""
    t0 = (int(time.time()) // DAY_S - 1) * DAY_S + 3600
    traffic = ExampleTraffic(store, t0)
    config = TieringConfig(keep_baseline=0.0, buckets=2)
    settled: set[int] = set()
    now_s = t0 + DAY_S + 3600
    tiering.run_tiering(store, config, now_s=now_s, settled_days=settled)
    assert _decisions(store)[traffic.chart] == (0, [tq.NOT_SELECTED]) and settled
    shown = eq.chart_examples(store, "checkout", t0, t0 + 100)
    assert shown[0].slowest and shown[0].slowest.trace_id == traffic.chart
    assert eq.record_examples(store, "chart", shown) == 4  # service and Charge: 2 traces each
    tiering.run_tiering(store, config, now_s=now_s, settled_days=settled)
    assert _decisions(store)[traffic.chart] == (1, ["example"])
    assert _decisions(store)[traffic.plain] == (0, [tq.NOT_SELECTED])


def test_slack_notifications_link_the_examples() -> None:
    from dashboard.alert_payloads import OutgoingAlert, slack_payload

    links = {SLOWEST_ANNOTATION: "http://dash/trace/aa", ERROR_ANNOTATION: "http://dash/trace/bb"}
    alert = OutgoingAlert("firing", {"alertname": "slow"}, {"summary": "slow", **links}, 1.0,
                          None, "http://dash/alerts", "f1")  # fmt: skip
    text = slack_payload("hook", {}, [alert], "http://dash")["attachments"][0]["text"]
    assert "<http://dash/trace/aa|slowest trace> <http://dash/trace/bb|erroneous trace>" in text
    plain = OutgoingAlert("firing", {"alertname": "slow"}, {"summary": "slow"}, 1.0, None, "", "f2")
    assert "examples" not in slack_payload("hook", {}, [plain], "")["attachments"][0]["text"]
