-- Latency rollups per (service, operation, span kind, minute), fed from spans by a
-- materialized view. Buckets are tracestore/latency_buckets.py's fixed log-scale
-- buckets (64 per doubling of nanoseconds): percentiles within 0.55%, and
-- "fraction of calls at or under T" exact at bucket edges. `ok_buckets` counts only
-- spans without error status, for SLOs where errors count as bad.
CREATE TABLE IF NOT EXISTS latency_minute {{on_cluster}} (
    minute DateTime,
    service_name {{lc_string}},
    span_name {{lc_string}},
    span_kind UInt8,
    calls AggregateFunction(count),
    errors AggregateFunction(sum, UInt64),
    duration_sum AggregateFunction(sum, UInt64),
    buckets AggregateFunction(sumMap, Array(UInt16), Array(UInt64)),
    ok_buckets AggregateFunction(sumMap, Array(UInt16), Array(UInt64)),
    digest AggregateFunction(quantilesTDigest(0.5, 0.9, 0.95, 0.99), UInt64)
) ENGINE = {{engine:AggregatingMergeTree()}}
PARTITION BY toDate(minute)
ORDER BY (service_name, span_name, span_kind, minute)
{{ttl_minute:rollups}}
{{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS latency_minute_mv {{on_cluster}} TO latency_minute
AS SELECT
    toStartOfMinute(ts) AS minute,
    service_name,
    span_name,
    span_kind,
    countState() AS calls,
    sumState(toUInt64(status_code = 2)) AS errors,
    sumState(duration_ns) AS duration_sum,
    sumMapState([toUInt16(floor(log2(greatest(duration_ns, 1)) * 64))], [toUInt64(1)]) AS buckets,
    sumMapState([toUInt16(floor(log2(greatest(duration_ns, 1)) * 64))], [toUInt64(status_code != 2)]) AS ok_buckets,
    quantilesTDigestState(0.5, 0.9, 0.95, 0.99)(duration_ns) AS digest
FROM spans
GROUP BY minute, service_name, span_name, span_kind;
