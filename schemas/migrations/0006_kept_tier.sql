-- Retention tiers (issue 21): every span stays in the hot tables for the hot window;
-- the traces worth keeping are copied into `spans_kept` by the tiering job
-- (collector/tiering.py) and stay there for the kept window.
-- The kept tier has the columns of spans_by_trace and the same order (trace id), so a
-- kept trace loads by primary key. ReplacingMergeTree folds a span copied twice
-- (a move re-run after a crash); reads still deduplicate with LIMIT 1 BY span_id.
CREATE TABLE IF NOT EXISTS spans_kept {{on_cluster}} AS spans_by_trace
ENGINE = {{engine:ReplacingMergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (trace_id, span_id)
{{ttl:kept}}
{{settings:1024}};

-- One decision per settled trace: kept or not, and why. `day` is the hot day the trace
-- started on (the chunk that decided it); `moved` turns to 1 (a newer `version`) once
-- the trace's spans are in `spans_kept`. Readers take the highest version per trace.
CREATE TABLE IF NOT EXISTS trace_decisions {{on_cluster}} (
    trace_id String,
    day Date,
    decided_at DateTime,
    kept UInt8,
    reasons Array(String),
    moved UInt8,
    version UInt64
) ENGINE = {{engine:ReplacingMergeTree(version)}}
PARTITION BY toDate(decided_at)
ORDER BY trace_id
{{ttl_decided:kept}}
{{settings:1024}};

-- Traces a user asked to keep ("keep this trace"), read by the next decision.
CREATE TABLE IF NOT EXISTS trace_pins {{on_cluster}} (
    trace_id String,
    pinned_at DateTime,
    note String
) ENGINE = {{engine:ReplacingMergeTree()}}
PARTITION BY toDate(pinned_at)
ORDER BY trace_id
{{ttl_pinned:kept}}
{{settings:1024}};
