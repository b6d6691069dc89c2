-- Analytics rollups: hourly latency, service-to-service edges, service namespaces.

-- Hourly latency with the same columns as latency_minute (`minute` holds the start of
-- the hour, so one query serves both tables), for long ranges. It is fed
-- straight from spans (ClickHouse 18.16 does not cascade a view off latency_minute's
-- view), with the same expressions, so merged hours equal merged minutes exactly for
-- calls, errors, sums and buckets. Kept as long as the other rollups (far longer than spans).
CREATE TABLE IF NOT EXISTS latency_hour {{on_cluster}} (
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

CREATE MATERIALIZED VIEW IF NOT EXISTS latency_hour_mv {{on_cluster}} TO latency_hour
AS SELECT
    toStartOfHour(ts) AS minute,
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

-- Per-service latency buckets as plain rows, one per (service, entry or not, minute,
-- bucket): ClickHouse 18.16 merges sumMap states element by element through generic
-- values, far too slowly for a day of data, while summing plain columns is fast.
-- `entry` marks server and consumer spans (what a service's own rate and latency
-- count). SummingMergeTree adds calls, errors and duration_sum of equal keys.
CREATE TABLE IF NOT EXISTS service_buckets_minute {{on_cluster}} (
    minute DateTime,
    service_name {{lc_string}},
    entry UInt8,
    bucket UInt16,
    calls UInt64,
    errors UInt64,
    duration_sum UInt64
) ENGINE = {{engine:SummingMergeTree()}}
PARTITION BY toDate(minute)
ORDER BY (service_name, entry, minute, bucket)
{{ttl_minute:rollups}}
{{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS service_buckets_minute_mv {{on_cluster}} TO service_buckets_minute
AS SELECT
    toStartOfMinute(ts) AS minute,
    service_name,
    toUInt8(span_kind IN (2, 5)) AS entry,
    toUInt16(floor(log2(greatest(duration_ns, 1)) * 64)) AS bucket,
    count() AS calls,
    sum(toUInt64(status_code = 2)) AS errors,
    sum(duration_ns) AS duration_sum
FROM spans
GROUP BY minute, service_name, entry, bucket;

-- The same per hour (`minute` holds the start of the hour), for long ranges.
CREATE TABLE IF NOT EXISTS service_buckets_hour {{on_cluster}} (
    minute DateTime,
    service_name {{lc_string}},
    entry UInt8,
    bucket UInt16,
    calls UInt64,
    errors UInt64,
    duration_sum UInt64
) ENGINE = {{engine:SummingMergeTree()}}
PARTITION BY toDate(minute)
ORDER BY (service_name, entry, minute, bucket)
{{ttl_minute:rollups}}
{{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS service_buckets_hour_mv {{on_cluster}} TO service_buckets_hour
AS SELECT
    toStartOfHour(ts) AS minute,
    service_name,
    toUInt8(span_kind IN (2, 5)) AS entry,
    toUInt16(floor(log2(greatest(duration_ns, 1)) * 64)) AS bucket,
    count() AS calls,
    sum(toUInt64(status_code = 2)) AS errors,
    sum(duration_ns) AS duration_sum
FROM spans
GROUP BY minute, service_name, entry, bucket;

-- Calls per (parent service, child service, minute of the calling span), written by
-- collector/edge_rollup.py over closed windows (never a view: pairing a client span
-- with its server child is a self-join, and the child may arrive later).
-- Every run writes the complete set of edges of each minute it covers, all rows with
-- the run's `version`; readers keep, per minute, only the rows of the highest version,
-- so repeated, late and concurrent runs (several collectors) count each call once.
-- ReplacingMergeTree folds superseded rows away during merges.
-- child_kind: 'service', or for uninstrumented peers 'database', 'messaging', 'external'.
-- Buckets are tracestore/latency_buckets.py's, of the calling span's duration.
CREATE TABLE IF NOT EXISTS edges_minute {{on_cluster}} (
    minute DateTime,
    parent_service String,
    child_service String,
    child_kind String,
    parent_namespace String,
    child_namespace String,
    calls UInt64,
    errors UInt64,
    duration_sum UInt64,
    bucket_keys Array(UInt16),
    bucket_counts Array(UInt64),
    version UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toDate(minute)
ORDER BY (minute, parent_service, child_service, child_kind)
{{ttl_minute:rollups}}
{{settings}};

-- The same per hour (`minute` holds the start of the hour), recomputed by the job from
-- the latest minute rows after it writes them, with the same version rule.
CREATE TABLE IF NOT EXISTS edges_hour {{on_cluster}} (
    minute DateTime,
    parent_service String,
    child_service String,
    child_kind String,
    parent_namespace String,
    child_namespace String,
    calls UInt64,
    errors UInt64,
    duration_sum UInt64,
    bucket_keys Array(UInt16),
    bucket_counts Array(UInt64),
    version UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toDate(minute)
ORDER BY (minute, parent_service, child_service, child_kind)
{{ttl_minute:rollups}}
{{settings}};

-- The Kubernetes namespace each service reported per day (resource attribute
-- k8s.namespace.name), for the service map's namespace filter.
CREATE TABLE IF NOT EXISTS service_namespaces {{on_cluster}} (
    day Date,
    service_name String,
    namespace String
) ENGINE = {{engine:ReplacingMergeTree()}}
PARTITION BY toYYYYMM(day)
ORDER BY (service_name, namespace, day)
{{ttl_day:rollups}}
{{settings}};

CREATE MATERIALIZED VIEW IF NOT EXISTS service_namespaces_mv {{on_cluster}} TO service_namespaces
AS SELECT
    toDate(ts) AS day,
    service_name,
    resource_attr_values[indexOf(resource_attr_keys, 'k8s.namespace.name')] AS namespace
FROM spans
GROUP BY day, service_name, namespace;
