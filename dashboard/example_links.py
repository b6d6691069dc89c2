"""Example traces where the dashboard and the alerter show them, recorded so they are kept.

A latency chart, a service map edge page and an SLO alert notification link to the
slowest and the erroneous trace of their window (``tracestore.example_queries``).
Every example shown or sent is recorded in the same step, so retention tiering keeps
it (reason ``example``) and the link still opens after the hot window. A failed
record is logged and the page still shows its examples: a page never fails for it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dashboard.alert_payloads import EXAMPLE_ANNOTATIONS
from slospec.slo_config import Filters
from tracestore import example_queries as eq
from tracestore.store import Store, StoreError

log = logging.getLogger(__name__)

SLOWEST_ANNOTATION, ERROR_ANNOTATION = EXAMPLE_ANNOTATIONS


def _record(store: Store, source: str, examples: Iterable[eq.Examples]) -> None:
    try:
        eq.record_examples(store, source, examples)
    except StoreError as exc:
        log.warning("could not record %s example traces (they may not be kept): %s", source, exc)


def chart_examples(store: Store, service: str, start_s: int, end_s: int) -> list[eq.Examples]:
    """The service chart's examples, then each operation's; recorded as shown."""
    found = eq.chart_examples(store, service, start_s, end_s)
    _record(store, "chart", found)
    return found


def edge_examples(
    store: Store, parent: str, child: str, kind: str, start_s: int, end_s: int
) -> eq.Examples:
    """An edge page's examples; recorded as shown."""
    found = eq.edge_examples(store, parent, child, kind, start_s, end_s)
    _record(store, "edge", [found])
    return found


def alert_annotations(
    store: Store, external_url: str, scope: str, filters: Filters, start_s: float, end_s: float
) -> dict[str, str]:
    """Links to an alert's examples over its window, as notification annotations; recorded."""
    spans = eq.SpanFilter(filters.service, filters.operation, filters.route, filters.span_kind)
    try:
        found = eq.filter_examples(store, scope, spans, int(start_s), int(end_s) + 1)
    except StoreError as exc:
        log.warning("could not pick example traces for %s: %s", scope, exc)
        return {}
    _record(store, "alert", [found])
    base = external_url.rstrip("/")
    links = {}
    if found.slowest is not None:
        links[SLOWEST_ANNOTATION] = f"{base}/trace/{found.slowest.trace_id}"
    if found.error is not None:
        links[ERROR_ANNOTATION] = f"{base}/trace/{found.error.trace_id}"
    return links
