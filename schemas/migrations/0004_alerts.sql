-- Alerting state kept in ClickHouse: every alert state change (the alert history
-- page), silences, and every notification attempt (delivery log). Written by the
-- SLO evaluator (dashboard process or `sidetrace alerter`), read by the dashboard.
-- Times are UInt64 milliseconds; `ts` is the second, for partitions and retention.
CREATE TABLE IF NOT EXISTS alert_events {{on_cluster}} (
    ts DateTime,
    at_ms UInt64,
    fingerprint String,
    alertname String,
    severity String,
    kind String,
    from_state String,
    to_state String,
    value String,
    silenced UInt8,
    starts_at_ms UInt64,
    ends_at_ms UInt64,
    label_keys Array(String),
    label_values Array(String),
    annotation_keys Array(String),
    annotation_values Array(String)
) ENGINE = {{engine:MergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (ts, fingerprint)
{{ttl:alerts}}
{{settings}};

-- Silences are versioned rows: expiring one inserts a newer version with an earlier
-- end; readers take the latest version per id (argMax by version).
CREATE TABLE IF NOT EXISTS alert_silences {{on_cluster}} (
    id String,
    version UInt64,
    created_at_ms UInt64,
    starts_at_ms UInt64,
    ends_at_ms UInt64,
    created_by String,
    comment String,
    matcher_names Array(String),
    matcher_ops Array(String),
    matcher_values Array(String)
) ENGINE = {{engine:ReplacingMergeTree(version)}}
ORDER BY id
{{settings}};

CREATE TABLE IF NOT EXISTS alert_notifications {{on_cluster}} (
    ts DateTime,
    at_ms UInt64,
    receiver String,
    group_key String,
    status String,
    fingerprints Array(String),
    attempt UInt16,
    outcome String,
    http_status UInt16,
    error String
) ENGINE = {{engine:MergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (ts, receiver)
{{ttl:alerts}}
{{settings}};
