"""Slow-cohort analysis in ClickHouse (tracestore/cohort_queries.py) on both backends."""

from __future__ import annotations

import pytest

from tests.support import trace_generator as gen
from tests.support.cohort_traffic import BAD_NODE, MS, SLOW_EXTRA_MS, traffic
from tests.support.dashboard_client import dashboard_client
from tracestore import cohort_queries as cq
from tracestore.cohort_queries import CohortQuery, analyze_cohorts
from tracestore.store import substitute


@pytest.fixture
def loaded(store):
    start = (gen.now_ns() // 10**9 - 400) * 10**9
    spans, slow_ids = traffic(start)
    gen.insert(store, spans)
    gen.insert(store, spans[:40])  # a spool replay repeats some spans: counted once
    return store, start // 10**9, slow_ids


def query(loaded, **kw) -> dict:
    store, start_s, _ = loaded
    q = {"service": "frontend", "operation": "GET /checkout", "from_s": start_s - 60,
         "to_s": start_s + 400, **kw}  # fmt: skip
    return analyze_cohorts(store, CohortQuery(**q))


@pytest.mark.parametrize(
    "kw",
    [{}, {"percentile": 0.9}, {"threshold_ns": 150 * MS}, {"per_cohort": 15}],
    ids=["default-p90", "p90", "threshold", "sampled"],
)
def test_slowed_downstream_operation_ranked_first(loaded, kw):
    result = query(loaded, **kw)
    assert result["slow"]["traces"] == 20
    assert result["rest"]["traces"] == 180
    first = result["attribution"][0]
    assert (first["service"], first["operation"]) == ("payments", "Charge")
    assert first["delta_ms"] == pytest.approx(SLOW_EXTRA_MS, rel=0.1)
    assert first["share_of_gap"] == pytest.approx(1.0, abs=0.1)
    others = result["attribution"][1:]
    assert all(abs(r["delta_ms"]) < 10 for r in others)
    # deltas add up to the gap between the cohorts' mean durations
    gap = result["slow"]["mean_ms"] - result["rest"]["mean_ms"]
    total = sum(r["delta_ms"] for r in result["attribution"])
    assert total == pytest.approx(gap, rel=0.05)


@pytest.mark.parametrize("per_cohort", [1000, 15])
def test_attribute_only_on_slow_traces_ranked_first_by_lift(loaded, per_cohort):
    result = query(loaded, per_cohort=per_cohort)
    first = result["attributes"][0]
    assert (first["service"], first["key"], first["value"]) == (
        "payments",
        "k8s.node.name",
        BAD_NODE,
    )
    assert first["slow_share"] == 1.0 and first["rest_share"] == 0.0
    assert first["lift"] == pytest.approx(10.0)
    assert first["slow_traces"] == min(20, per_cohort)
    # everything listed is over-represented, best first
    lifts = [a["lift"] for a in result["attributes"]]
    assert lifts == sorted(lifts, reverse=True) and all(x > 1 for x in lifts)
    # values on every trace (the route, the version) are not over-represented
    assert not any(a["key"] in ("http.route", "service.version") for a in result["attributes"])
    # nor are values on a trace or two that happened to be slow (user ids)
    assert not any(a["key"] == "user.id" for a in result["attributes"])


def test_error_share_per_cohort(loaded):
    result = query(loaded)
    slow, rest = result["slow"], result["rest"]
    assert slow["error_share"] == slow["errors"] / 20
    assert slow["error_share"] > 0.2 and rest["error_share"] < 0.1


def test_downstream_operation_as_target(loaded):
    """Targeting checkout's server span: only spans inside it are attributed."""
    result = query(loaded, service="checkout", operation="POST /checkout")
    assert result["slow"]["traces"] == 20
    names = [(r["service"], r["operation"]) for r in result["attribution"]]
    assert names[0] == ("payments", "Charge")
    assert not any(service == "frontend" for service, _ in names)


def test_empty_cohorts(loaded):
    nothing = query(loaded, operation="no such operation")
    assert nothing["slow"]["traces"] == nothing["rest"]["traces"] == 0
    assert nothing["attribution"] == nothing["attributes"] == []
    all_slow = query(loaded, threshold_ns=1)
    assert all_slow["rest"]["traces"] == 0 and "note" in all_slow


@pytest.mark.parametrize(
    ("query_string", "needle"),
    [
        ("operation=x", "service is required"),
        ("service=frontend", "operation is required"),
        ("service=a&operation=b&percentile=p150", "percentile"),
        ("service=a&operation=b&percentile=abc", "percentile"),
        ("service=a&operation=b&threshold=fast", "duration"),
        ("service=a&operation=b&sample=1", "sample"),
        ("service=a&operation=b&lookback=-1h", "duration"),
    ],
)
def test_api_rejects_bad_parameters(store, query_string, needle):
    with dashboard_client(store) as client:
        response = client.get(f"/api/v1/cohort?{query_string}")
        assert response.status_code == 400
        assert needle in response.json()["error"]
        page = client.get(f"/cohort?{query_string}")
        assert page.status_code == 400 and needle in page.text


def test_api_and_page(loaded):
    store, start_s, _ = loaded
    rng = f"start={(start_s - 60) * 1000}&end={(start_s + 400) * 1000}"
    with dashboard_client(store) as client:
        url = f"/api/v1/cohort?service=frontend&operation=GET+%2Fcheckout&percentile=p90&{rng}"
        body = client.get(url).json()
        assert body["attribution"][0]["operation"] == "Charge"
        assert body["attributes"][0]["value"] == BAD_NODE
        page = client.get(f"/cohort?service=frontend&operation=GET+%2Fcheckout&{rng}")
        assert page.status_code == 200
        assert BAD_NODE in page.text and 'id="attribution"' in page.text
        assert client.get("/cohort").status_code == 200


def test_largest_sample_fits_in_one_query():
    """The sample travels as literals: the longest query stays under max_query_size."""
    n = 2 * cq.MAX_PER_COHORT
    ids = [f"{i:032x}" for i in range(n)]
    ns = [1_796_082_120_123_456_789] * n
    literal = {"id_set": tuple(ids), "ids": ids, "places": list(range(1, n + 1)),
               "starts": ns, "ends": ns, "slows": [1] * n}  # fmt: skip
    q = CohortQuery("s" * 256, "o" * 256, 0, 1)
    for sql in (cq.ATTRIBUTION_SQL, cq.ATTRIBUTES_SQL):
        assert len(substitute(sql, {**q.params(1, 3), **literal})) < cq.MAX_QUERY_SIZE
