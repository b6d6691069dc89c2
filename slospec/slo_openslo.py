"""OpenSLO v1 ``SLO`` documents with a latency ``thresholdMetric`` or ``ratioMetric``.

The metric source must be ``type: sidetrace``; its ``spec`` names the spans
(``service``, ``operation``, ``route``, ``span_kind``, ``errors_count_as_bad``).

- ``thresholdMetric``: the objective's ``op`` (``lte``; ``lt`` is read as
  ``lte`` at bucket resolution) and ``value`` give the latency threshold, in the
  source's ``unit`` (default ``ms``).
- ``ratioMetric`` (``counter: true``): ``good`` carries ``threshold`` (a
  duration); ``total`` is all matching requests.

Not supported (refused by name): ``indicatorRef``, ``alertPolicies``,
``rawMetric``, calendar windows, ``Timeslices``/``RatioTimeslices`` budgeting,
several objectives or time windows, ``timeSliceTarget``/``timeSliceWindow``.
Alerts are the default page and ticket burn-rate alerts, delivered to the
receivers named (comma separated) in the annotation ``sidetrace.io/receivers``;
receivers are defined in a sidetrace document of the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slospec.slo_yaml import Path_

RECEIVERS_ANNOTATION = "sidetrace.io/receivers"
FILTER_FIELDS = ("service", "operation", "route", "span_kind", "errors_count_as_bad")


def openslo_to_native(
    data: dict[str, Any], fail: Callable[[Path_, str], None]
) -> tuple[dict[str, Any], Callable[[str], Path_]]:
    """A native SLO item from a schema-valid OpenSLO document, and where each field came from."""
    spec = data["spec"]
    indicator = spec["indicator"]["spec"]
    objective = spec["objectives"][0]
    objective_at: Path_ = ("spec", "objectives", 0)
    where: dict[str, Path_] = {
        "target": (*objective_at, "target" if "target" in objective else "targetPercent"),
        "alerts": ("metadata", "annotations"),
    }
    annotations = data["metadata"].get("annotations") or {}
    item: dict[str, Any] = {
        "name": data["metadata"]["name"],
        "description": spec.get("description") or data["metadata"].get("displayName", ""),
        "service": spec["service"],
        "receivers": split_names(annotations.get(RECEIVERS_ANNOTATION, "")),
    }
    if "timeWindow" in spec:
        item["window"] = spec["timeWindow"][0]["duration"]

    if "target" in objective:
        item["target"] = f"{objective['target'] * 100:.10g}%"
    elif "targetPercent" in objective:
        item["target"] = f"{objective['targetPercent']:.10g}%"
    else:
        fail(objective_at, "missing 'target' (a fraction, e.g. 0.99) or 'targetPercent'")
        item["target"] = "99%"

    indicator_at: Path_ = ("spec", "indicator", "spec")
    metrics = [name for name in ("thresholdMetric", "ratioMetric") if name in indicator]
    if len(metrics) != 1:
        fail(indicator_at, "needs exactly one of thresholdMetric or ratioMetric")
        item["threshold"] = "1s"
    elif metrics[0] == "thresholdMetric":
        source_at: Path_ = (*indicator_at, "thresholdMetric", "metricSource", "spec")
        source = indicator["thresholdMetric"]["metricSource"]["spec"]
        _take_filters(item, source, source_at, where, fail)
        if "threshold" in source:
            fail((*source_at, "threshold"), "thresholdMetric takes its threshold from objectives")
        if "value" not in objective:
            fail(objective_at, "missing 'value': the latency threshold of the thresholdMetric")
        unit = source.get("unit", "ms")
        item["threshold"] = _number(objective.get("value", 1)) + unit
        where["threshold"] = (*objective_at, "value")
    else:
        ratio_at: Path_ = (*indicator_at, "ratioMetric")
        good = indicator["ratioMetric"]["good"]["metricSource"]["spec"]
        total = indicator["ratioMetric"]["total"]["metricSource"]["spec"]
        good_at: Path_ = (*ratio_at, "good", "metricSource", "spec")
        total_at: Path_ = (*ratio_at, "total", "metricSource", "spec")
        _take_filters(item, total, total_at, where, fail)
        _take_filters(item, good, good_at, where, fail)
        if "threshold" in total:
            fail((*total_at, "threshold"), "total counts all requests: threshold belongs in good")
        if "threshold" not in good:
            fail(good_at, "missing 'threshold': the latency at or under which a request is good")
        item["threshold"] = good.get("threshold", "1s")
        where["threshold"] = (*good_at, "threshold")
    where.setdefault("service", ("spec", "service"))
    return item, lambda name: where.get(name, ())


def _take_filters(
    item: dict[str, Any],
    source: dict[str, Any],
    at: Path_,
    where: dict[str, Path_],
    fail: Callable[[Path_, str], None],
) -> None:
    """Copy span filters from a metric source; good and total must agree."""
    for name in FILTER_FIELDS:
        if name not in source:
            continue
        if name in where and item.get(name) != source[name]:
            fail((*at, name), f"{source[name]!r} differs from {item.get(name)!r} set elsewhere")
            continue
        item[name] = source[name]
        where[name] = (*at, name)


def _number(value: float) -> str:
    """A number as a duration prefix, never in exponent form."""
    return f"{value:.9f}".rstrip("0").rstrip(".")


def split_names(text: str) -> list[str]:
    """``"a, b"`` -> ``["a", "b"]``."""
    return [n.strip() for n in str(text).split(",") if n.strip()]
