"""The edge model: which calls are service-to-service edges, and the SQL that writes them.

An edge is a call from one service to another: a client (or producer) span whose
child is another service's server (or consumer) span. A client span with no such
child is a call to an uninstrumented peer, which becomes a virtual node named by
``peer.service``, else ``db.system`` (+ ``/db.name``), ``messaging.system``
(+ ``/messaging.destination.name``), ``server.address`` or ``net.peer.name``.

Pairing is a self-join of spans, and a child may arrive after its parent, so this is
not a materialized view: a periodic job (``collector/edge_rollup.py``) writes every
edge of a minute with the run's version (``write_edge_minutes``), then rebuilds the
hours holding those minutes (``write_edge_hours``). Readers keep only the highest
version per minute or hour (``latest_rows_sql``), so repeated, overlapping and
concurrent runs count every call exactly once.
"""

from __future__ import annotations

from tracestore.store import Store

# Server/consumer children may start a little before their parent (clock skew)
# and well after it (long calls); this bounds how far the child scan reaches.
CHILD_SKEW_S = 60
CHILD_REACH_S = 600


def _attr(name: str, keys: str = "attr_keys", values: str = "attr_values") -> str:
    return f"{values}[indexOf({keys}, '{name}')]"


_NAMESPACE = _attr("k8s.namespace.name", "resource_attr_keys", "resource_attr_values")

_PEER_KIND = (
    f"multiIf({_attr('db.system')} != '', 'database', "
    f"{_attr('messaging.system')} != '', 'messaging', 'external')"
)


def _with_suffix(base: str, suffix: str) -> str:
    return f"concat({base}, if({suffix} != '', concat('/', {suffix}), ''))"


_PEER_NAME = (
    f"multiIf({_attr('peer.service')} != '', {_attr('peer.service')}, "
    f"{_attr('db.system')} != '', {_with_suffix(_attr('db.system'), _attr('db.name'))}, "
    f"{_attr('messaging.system')} != '', "
    f"{_with_suffix(_attr('messaging.system'), _attr('messaging.destination.name'))}, "
    f"{_attr('server.address')} != '', {_attr('server.address')}, "
    f"{_attr('net.peer.name')})"
)


def call_pairs_sql(
    start_s: int, end_s: int, parent_where: str = "1", child_where: str = "1"
) -> str:
    """Calls made in [start_s, end_s): client/producer spans with their server/consumer child.

    Columns ``trace_id``, ``p_ts``, ``p_start``, ``p_service``, ``p_duration``,
    ``p_status``, ``p_namespace``, ``p_peer``, ``p_peer_kind``, and from the child
    (empty/zero when it has not arrived or was never recorded) ``c_service``,
    ``c_status``, ``c_namespace``. Parents are deduplicated (a spool replay may
    repeat a span); ``ANY`` join picks one child per parent. ``parent_where`` and
    ``child_where`` are extra conditions on either side with ``%(name)s`` parameters.
    """
    start_s, end_s = int(start_s), int(end_s)
    return f"""(
    SELECT * FROM (
        SELECT
            trace_id,
            span_id AS pair_id,
            ts AS p_ts,
            start_ns AS p_start,
            toString(service_name) AS p_service,
            duration_ns AS p_duration,
            status_code AS p_status,
            {_NAMESPACE} AS p_namespace,
            {_PEER_NAME} AS p_peer,
            {_PEER_KIND} AS p_peer_kind
        FROM spans
        WHERE ts >= toDateTime({start_s}) AND ts < toDateTime({end_s}) AND span_kind IN (3, 4)
            AND ({parent_where})
        LIMIT 1 BY trace_id, span_id
    ) AS p ANY LEFT JOIN (
        SELECT
            trace_id,
            parent_span_id AS pair_id,
            toString(service_name) AS c_service,
            status_code AS c_status,
            {_NAMESPACE} AS c_namespace
        FROM spans
        WHERE ts >= toDateTime({start_s - CHILD_SKEW_S})
            AND ts < toDateTime({end_s + CHILD_REACH_S})
            AND span_kind IN (2, 5) AND parent_span_id != '' AND ({child_where})
    ) AS c USING (trace_id, pair_id)
)"""


# Which calls are edges, and the node each one goes to: another service (a call
# within one service is not an edge), else the uninstrumented peer.
EDGE_CONDITION = "(c_service != '' AND c_service != p_service) OR (c_service = '' AND p_peer != '')"
EDGE_CHILD = "if(c_service != '', c_service, p_peer)"
EDGE_CHILD_KIND = "if(c_service != '', 'service', p_peer_kind)"


def edges_sql(start_s: int, end_s: int, version: int) -> str:
    """INSERT … SELECT writing every edge of the minutes in [start_s, end_s) with ``version``.

    Only integers are formatted into the text.
    """
    return f"""
INSERT INTO edges_minute (minute, parent_service, child_service, child_kind,
    parent_namespace, child_namespace, calls, errors, duration_sum,
    bucket_keys, bucket_counts, version)
SELECT e_minute, e_parent, e_child, e_kind, e_parent_ns, e_child_ns, e_calls, e_errors,
    e_duration, tupleElement(e_buckets, 1), tupleElement(e_buckets, 2), {int(version)}
FROM (
    SELECT
        toStartOfMinute(p_ts) AS e_minute,
        p_service AS e_parent,
        {EDGE_CHILD} AS e_child,
        {EDGE_CHILD_KIND} AS e_kind,
        any(p_namespace) AS e_parent_ns,
        any(c_namespace) AS e_child_ns,
        count() AS e_calls,
        sum(toUInt64(p_status = 2 OR c_status = 2)) AS e_errors,
        sum(p_duration) AS e_duration,
        sumMap([toUInt16(floor(log2(greatest(p_duration, 1)) * 64))], [toUInt64(1)])
            AS e_buckets
    FROM {call_pairs_sql(start_s, end_s)}
    WHERE {EDGE_CONDITION}
    GROUP BY e_minute, e_parent, e_child, e_kind
)
"""


def latest_rows_sql(table: str, start_s: int, end_s: int, columns: str = "*") -> str:
    """Rows of ``edges_minute`` or ``edges_hour`` in [start_s, end_s), latest run per period."""
    within = f"minute >= toDateTime({int(start_s)}) AND minute < toDateTime({int(end_s)})"
    return (
        f"(SELECT {columns} FROM {table} WHERE {within} AND (minute, version) IN "
        f"(SELECT minute, max(version) FROM {table} WHERE {within} GROUP BY minute))"
    )


def hours_sql(start_s: int, end_s: int, version: int) -> str:
    """INSERT … SELECT rebuilding the hours in [start_s, end_s) from the latest minute rows.

    Totals and buckets are summed apart (buckets through ARRAY JOIN, which is fast,
    unlike merging maps) and joined back per edge.
    """
    rows = latest_rows_sql("edges_minute", start_s, end_s)
    key = "toStartOfHour(minute) AS h, parent_service AS p, child_service AS ch, child_kind AS kind"
    return f"""
INSERT INTO edges_hour (minute, parent_service, child_service, child_kind,
    parent_namespace, child_namespace, calls, errors, duration_sum,
    bucket_keys, bucket_counts, version)
SELECT h, p, ch, kind, pns, cns, n, errs, dur, ks, cs, {int(version)}
FROM (
    SELECT {key}, any(parent_namespace) AS pns, any(child_namespace) AS cns,
        sum(calls) AS n, sum(errors) AS errs, sum(duration_sum) AS dur
    FROM {rows}
    GROUP BY h, p, ch, kind
) AS totals ANY INNER JOIN (
    SELECT h, p, ch, kind, groupArray(k) AS ks, groupArray(c) AS cs
    FROM (
        SELECT {key}, k, sum(c0) AS c
        FROM {rows} ARRAY JOIN bucket_keys AS k, bucket_counts AS c0
        GROUP BY h, p, ch, kind, k
    )
    GROUP BY h, p, ch, kind
) AS buckets USING (h, p, ch, kind)
"""


def write_edge_minutes(store: Store, start_s: int, end_s: int, version: int) -> None:
    """Write every edge of the minutes in [start_s, end_s) with ``version``."""
    store.execute(edges_sql(start_s, end_s, version))


def write_edge_hours(store: Store, start_s: int, end_s: int, version: int) -> None:
    """Rebuild the hours in [start_s, end_s) from the latest minute rows, as ``version``."""
    store.execute(hours_sql(start_s, end_s, version))
