-- Notifications once: every notification the evaluator decides on is recorded
-- here before it is sent ('pending') and again after ('sent', 'failed',
-- 'superseded'; 'quiet' for a group decision with nothing to send). A process
-- that wins the evaluator's election reads it back: the last decision per group
-- (what each group was last told) and the notifications still pending, which it
-- sends. So every transition is delivered at least once; a duplicate needs a crash
-- between a send and its 'sent' row. `leader` and `term` say who decided.
CREATE TABLE IF NOT EXISTS alert_deliveries {{on_cluster}} (
    ts DateTime,
    at_ms UInt64,
    id String,
    decided_at_ms UInt64,
    receiver String,
    group_key String,
    state String,
    status String,
    fingerprints Array(String),
    firing Array(String),
    resolved Array(String),
    leader String,
    term UInt64,
    body String
) ENGINE = {{engine:MergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (receiver, group_key, at_ms)
{{ttl:alerts}}
{{settings}};
