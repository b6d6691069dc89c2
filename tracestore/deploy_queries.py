"""Deploy markers: when a service started reporting a new ``service.version``.

Read from the spans' resource attributes in the range, one row per (service,
version) with its first and last second; a version first seen after the
service's earliest version in the range marks a deploy. A version already
running when the range starts is not one.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from tracestore.store import Store

VERSION_KEY = "service.version"


def deploys(
    store: Store, start_s: int, end_s: int, service: str | None = None
) -> list[dict[str, Any]]:
    """[{service, version, previous, at}] in time order; ``at`` is unix seconds."""
    params: dict[str, Any] = {"key": VERSION_KEY, "from_s": int(start_s), "to_s": int(end_s)}
    where = ""
    if service is not None:
        where = "AND service_name = %(service)s "
        params["service"] = service
    rows = store.query(
        "SELECT toString(service_name), version, toUInt32(min(ts)), toUInt32(max(ts)) FROM ("
        "SELECT service_name, ts, "
        "resource_attr_values[indexOf(resource_attr_keys, %(key)s)] AS version FROM spans "
        "WHERE ts >= toDateTime(%(from_s)s) AND ts < toDateTime(%(to_s)s) "
        f"{where}AND has(resource_attr_keys, %(key)s)) "
        "GROUP BY service_name, version",
        params,
    )
    return markers(rows)


def markers(rows: list[tuple]) -> list[dict[str, Any]]:
    """Pure: (service, version, first_s, last_s) rows to deploy markers."""
    per: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    for service, version, first, last in rows:
        per[str(service)].append((int(first), int(last), str(version)))
    out = []
    for service, seen in per.items():
        seen.sort()
        for (_, _, previous), (first, _, version) in zip(seen, seen[1:], strict=False):
            out.append({"service": service, "version": version, "previous": previous, "at": first})
    out.sort(key=lambda m: (m["at"], m["service"]))
    return out
