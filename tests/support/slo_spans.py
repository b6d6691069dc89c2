"""Spans of one service (payments) written straight into the store, and the SLO file the
evaluator and alert tests share: the evaluator reads ClickHouse, so these are real rows."""

from __future__ import annotations

from tracestore.slo_math import bucket_cut
from tracestore.store import Store

MS = 1_000_000


def insert_spans(store: Store, spans: list[tuple[float, float, int, str]]) -> None:
    """(start seconds, duration ms, status code, span name) for service payments, server kind."""
    store.insert(
        "spans",
        {
            "ts": [int(s) for s, _, _, _ in spans],
            "start_ns": [int(s * 1e9) for s, _, _, _ in spans],
            "duration_ns": [int(d * MS) for _, d, _, _ in spans],
            "trace_id": [f"{i:032x}" for i in range(len(spans))],
            "span_id": [f"{i:016x}" for i in range(len(spans))],
            "service_name": ["payments"] * len(spans),
            "span_name": [name for _, _, _, name in spans],
            "span_kind": [2] * len(spans),
            "status_code": [code for _, _, code, _ in spans],
        },
    )


# The payments SLO's one latency cut (300 ms) and the windows its burn rates use.
CUTS = {"payments": [bucket_cut(300 * MS)]}
WINDOWS = [300.0, 3600.0, 6 * 3600.0, 86400.0, 3 * 86400.0]


def spans_over(now: float, hours: float, count: int, name: str = "GET /pay") -> list:
    """``count`` spans spread over the last ``hours``, alternately 80 ms and 900 ms."""
    step = hours * 3600 / count
    return [(now - 1 - i * step, (80, 900)[i % 2], 0, name) for i in range(count)]


SLO_FILE = """\
slos:
  - name: payments-latency
    service: payments
    span_kind: server
    threshold: 300ms
    target: 99
    errors_count_as_bad: true
    alerts:
      - severity: page
        for: 2m
        keep_firing_for: 1m
        receivers: [hook]
      - severity: ticket
        receivers: [hook]
threshold_alerts:
  - name: payments-p99
    service: payments
    threshold: 1s
    window: 5m
    receivers: [hook]
receivers:
  - name: hook
    url: {url}
"""
