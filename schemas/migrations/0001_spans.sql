-- Spans for search and analytics, ordered for (service, operation, time) scans.
-- Timestamps are UInt64 nanoseconds as OTLP carries them; `ts` is the start second,
-- used for partitioning by day and for time-range pruning.
-- Attributes are parallel key / type / value arrays (see tracestore/otlp_columns.py
-- for the type codes); arrays and kvlists are kept as JSON text.
CREATE TABLE IF NOT EXISTS spans {{on_cluster}} (
    ts DateTime,
    start_ns UInt64 {{codec_delta}},
    duration_ns UInt64 {{codec_t64}},
    trace_id String,
    span_id String,
    parent_span_id String,
    trace_state String,
    flags UInt32,
    service_name {{lc_string}},
    span_name {{lc_string}},
    span_kind UInt8,
    status_code UInt8,
    status_message String,
    scope_name {{lc_string}},
    scope_version {{lc_string}},
    attr_keys Array({{lc_string}}),
    attr_types Array(UInt8),
    attr_values Array(String),
    resource_attr_keys Array({{lc_string}}),
    resource_attr_types Array(UInt8),
    resource_attr_values Array(String),
    event_times_ns Array(UInt64),
    event_names Array(String),
    event_attrs Array(String),
    event_dropped_attributes_counts Array(UInt32),
    link_trace_ids Array(String),
    link_span_ids Array(String),
    link_trace_states Array(String),
    link_attrs Array(String),
    link_dropped_attributes_counts Array(UInt32),
    link_flags Array(UInt32),
    dropped_attributes_count UInt32,
    dropped_events_count UInt32,
    dropped_links_count UInt32,
    resource_dropped_attributes_count UInt32,
    scope_attrs String,
    resource_schema_url String,
    scope_schema_url String
    {{skip_index_trace_id}}
) ENGINE = {{engine:MergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (service_name, span_name, ts)
{{ttl:spans}}
{{settings}};

-- The same spans ordered by trace id, so a trace loads by primary key.
-- ReplacingMergeTree folds replayed copies of a span during merges; reads still
-- deduplicate with LIMIT 1 BY span_id.
CREATE TABLE IF NOT EXISTS spans_by_trace {{on_cluster}} AS spans
ENGINE = {{engine:ReplacingMergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (trace_id, span_id)
{{ttl:spans}}
{{settings:1024}};

CREATE MATERIALIZED VIEW IF NOT EXISTS spans_by_trace_mv {{on_cluster}} TO spans_by_trace
AS SELECT * FROM spans;

-- One row per trace (per day it touches): start, end, span count, root, errors.
-- uniqExact over span ids keeps counts right when a spool replay repeats spans.
CREATE TABLE IF NOT EXISTS trace_index {{on_cluster}} (
    day Date,
    trace_id String,
    trace_start_ns AggregateFunction(min, UInt64),
    trace_end_ns AggregateFunction(max, UInt64),
    span_count AggregateFunction(uniqExact, String),
    error_count AggregateFunction(uniqExactIf, String, UInt8),
    services AggregateFunction(groupUniqArray, String),
    root_service AggregateFunction(anyIf, String, UInt8),
    root_name AggregateFunction(anyIf, String, UInt8),
    first_service AggregateFunction(argMin, String, UInt64),
    first_name AggregateFunction(argMin, String, UInt64)
) ENGINE = {{engine:AggregatingMergeTree()}}
PARTITION BY day
ORDER BY trace_id
{{ttl_day:spans}}
{{settings:1024}};

CREATE MATERIALIZED VIEW IF NOT EXISTS trace_index_mv {{on_cluster}} TO trace_index
AS SELECT
    toDate(ts) AS day,
    trace_id AS trace_id,
    minState(start_ns) AS trace_start_ns,
    maxState(start_ns + duration_ns) AS trace_end_ns,
    uniqExactState(span_id) AS span_count,
    uniqExactIfState(span_id, toUInt8(status_code = 2)) AS error_count,
    groupUniqArrayState(toString(service_name)) AS services,
    anyIfState(toString(service_name), toUInt8(parent_span_id = '')) AS root_service,
    anyIfState(toString(span_name), toUInt8(parent_span_id = '')) AS root_name,
    argMinState(toString(service_name), start_ns) AS first_service,
    argMinState(toString(span_name), start_ns) AS first_name
FROM spans
GROUP BY day, trace_id;

-- Metric points from the sidecars: sums, gauges and histograms.
CREATE TABLE IF NOT EXISTS metric_points {{on_cluster}} (
    ts DateTime,
    time_ns UInt64 {{codec_delta}},
    start_time_ns UInt64,
    service_name {{lc_string}},
    metric_name {{lc_string}},
    metric_type UInt8,
    unit {{lc_string}},
    temporality UInt8,
    is_monotonic UInt8,
    attr_keys Array({{lc_string}}),
    attr_values Array(String),
    resource_attr_keys Array({{lc_string}}),
    resource_attr_values Array(String),
    value Float64,
    count UInt64,
    sum Float64,
    bucket_bounds Array(Float64),
    bucket_counts Array(UInt64),
    scope_name {{lc_string}}
) ENGINE = {{engine:MergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (service_name, metric_name, ts)
{{ttl:metrics}}
{{settings}};
