-- Example traces (issue 21): the slowest and erroneous traces a latency chart, a service
-- map edge page or an SLO alert notification linked to. The tiering job keeps every
-- trace listed here with the reason "example" (tracestore/tiering_queries.py), so a
-- link once shown or sent still opens after the hot window. `source` is chart, edge or
-- alert; `scope` says which (a service and operation, an edge, an alert). A trace
-- referenced again folds into one row; the rows last for the kept window.
CREATE TABLE IF NOT EXISTS trace_examples {{on_cluster}} (
    trace_id String,
    ts DateTime,
    source String,
    scope String
) ENGINE = {{engine:ReplacingMergeTree()}}
PARTITION BY toDate(ts)
ORDER BY trace_id
{{ttl:kept}}
{{settings:1024}};
