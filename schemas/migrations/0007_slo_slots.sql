-- The SLO evaluator's minute and hour counts (dashboard/slo_cache.py), kept so that a
-- new leader starts from plain integers instead of finalizing three days of sumMap
-- states in the rollups. Rows with step 60 or 3600 hold one slot: zlib'd little-endian
-- int64 [series, field] counts (base64); a row with step 0 is a header (JSON: cuts,
-- series keys, which hours have minute slots, how far the minutes were read). Each
-- full load starts an `epoch`; a reader takes the newest header and, per slot, the
-- newest row of that epoch not newer than the header, and loads from the rollups
-- instead if one is not the version the header lists (not arrived yet on a cluster).
CREATE TABLE IF NOT EXISTS slo_slots {{on_cluster}} (
    ts DateTime,
    epoch UInt64,
    version UInt64,
    step UInt32,
    slot UInt32,
    body String
) ENGINE = {{engine:MergeTree()}}
PARTITION BY toDate(ts)
ORDER BY (epoch, step, slot, version)
{{ttl:rollups}}
{{settings}};
