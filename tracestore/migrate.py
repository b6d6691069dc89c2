"""Ordered schema migrations, rendered for the server they run on.

Migrations live in ``schemas/migrations/NNNN_name.sql``. Features newer than
ClickHouse 18.16 (TTL, codecs, skip indexes, native LowCardinality) are
switched on by the server's version through ``{{placeholders}}``, so one file
means the same thing on every supported server.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from tracestore.store import Store, StoreError, check_identifier

MIGRATIONS_TABLE = "schema_migrations"
_TTL_COLUMNS = {
    "ttl": "ts",
    "ttl_day": "day",
    "ttl_minute": "minute",
    "ttl_decided": "decided_at",
    "ttl_pinned": "pinned_at",
}
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_0-9]+)(?::([^}]*))?\s*\}\}")


@dataclass(frozen=True)
class Retention:
    """Days of data kept per family of tables."""

    spans: int = 7
    metrics: int = 30
    rollups: int = 90
    alerts: int = 365
    kept: int = 30  # the kept tier of retention tiering (collector/tiering.py)

    def days(self, family: str) -> int:
        if family not in ("spans", "metrics", "rollups", "alerts", "kept"):
            raise StoreError(f"unknown retention family {family!r}")
        return int(getattr(self, family))


@dataclass(frozen=True)
class Features:
    """What the server supports, from its version."""

    low_cardinality: bool
    codecs: bool
    ttl: bool
    skip_indexes: bool
    ttl_only_drop_parts: bool

    @classmethod
    def for_version(cls, version: tuple[int, int]) -> Features:
        return cls(
            low_cardinality=version >= (19, 9),
            codecs=version >= (19, 11),
            ttl=version >= (19, 6),
            skip_indexes=version >= (20, 1),
            ttl_only_drop_parts=version >= (20, 5),
        )


def render(sql: str, features: Features, retention: Retention, cluster: str | None = None) -> str:
    """Fill the placeholders of one migration for the given server."""

    def fill(match: re.Match[str]) -> str:
        name, arg = match.group(1), (match.group(2) or "").strip()
        if name == "on_cluster":
            return f"ON CLUSTER {check_identifier(cluster)}" if cluster else ""
        if name == "lc_string":
            return "LowCardinality(String)" if features.low_cardinality else "String"
        if name == "codec_delta":
            return "CODEC(Delta, ZSTD(1))" if features.codecs else ""
        if name == "codec_t64":
            return "CODEC(T64, ZSTD(1))" if features.codecs else ""
        if name == "skip_index_trace_id":
            if not features.skip_indexes:
                return ""
            return ", INDEX idx_trace_id trace_id TYPE bloom_filter(0.01) GRANULARITY 4"
        if name == "engine":
            return arg
        if name in _TTL_COLUMNS:
            if not features.ttl:
                return ""
            column = _TTL_COLUMNS[name]
            return f"TTL {column} + INTERVAL {retention.days(arg)} DAY"
        if name == "settings":
            # Tables read by point lookups (a trace by id) take a finer granule as arg.
            granularity = int(arg or 8192)
            if features.ttl_only_drop_parts:
                return f"SETTINGS index_granularity = {granularity}, ttl_only_drop_parts = 1"
            return f"SETTINGS index_granularity = {granularity}"
        raise StoreError(f"unknown migration placeholder {{{{{name}}}}}")

    return _PLACEHOLDER.sub(fill, sql)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self) -> list[str]:
        """Split on semicolons at line ends; comments are dropped."""
        lines = [ln for ln in self.sql.splitlines() if not ln.strip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";\n") if s.strip().rstrip(";")]


def load_migrations() -> list[Migration]:
    """All migrations shipped in ``schemas/migrations``, in version order."""
    folder = resources.files("schemas") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = re.match(r"^(\d{4})_([a-z0-9_]+)\.sql$", entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise StoreError(f"duplicate migration versions in {versions}")
    return found


def applied_versions(store: Store) -> set[int]:
    rows = store.query(f"SELECT DISTINCT version FROM {MIGRATIONS_TABLE}")
    return {int(r[0]) for r in rows}


def migrate(
    store: Store, retention: Retention | None = None, cluster: str | None = None
) -> list[str]:
    """Apply pending migrations in order; returns the names applied (empty if none).

    With ``cluster`` every statement runs ``ON CLUSTER`` in its sharded form
    (see ``cluster_form``), and the migrations table is replicated to every node
    so any node knows what has been applied.
    """
    retention = retention or Retention()
    features = Features.for_version(store.server_version)
    if cluster:
        database = check_identifier(store.database)
        on_cluster = f"ON CLUSTER {check_identifier(cluster)}"
        store.execute(f"CREATE DATABASE IF NOT EXISTS {database} {on_cluster}")
        table = f"{database}.{MIGRATIONS_TABLE}"
        path = f"/clickhouse/tables/all/{table}"
        engine = f"ReplicatedMergeTree('{path}', '{{shard}}-{{replica}}')"
    else:
        on_cluster, table, engine = "", MIGRATIONS_TABLE, "MergeTree()"
    store.execute(
        f"CREATE TABLE IF NOT EXISTS {table} {on_cluster} "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        f"ENGINE = {engine} ORDER BY version"
    )
    done = applied_versions(store)
    applied = []
    for migration in load_migrations():
        if migration.version in done:
            continue
        for statement in migration.statements():
            rendered = render(statement, features, retention, cluster)
            for sql in cluster_form(rendered, cluster, store.database) if cluster else [rendered]:
                store.execute(sql)
        store.insert(MIGRATIONS_TABLE, {"version": [migration.version], "name": [migration.name]})
        applied.append(f"{migration.version:04d}_{migration.name}")
    return applied


_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+) (ON CLUSTER \w+)\s*(.*)$", re.S)
_CREATE_VIEW = re.compile(
    r"^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) (ON CLUSTER \w+)\s+TO (\w+)\s+(.*)$", re.S
)
_ENGINE = re.compile(r"ENGINE = (\w*MergeTree)\(([^)]*)\)")
_CLONE = re.compile(r"^AS (\w+)\b")
_FROM = re.compile(r"\bFROM (\w+)\b")
LOCAL_SUFFIX = "_local"


def _sharding_key(statement: str) -> str:
    if "trace_id" in statement:
        return "cityHash64(trace_id)"
    if re.search(r"\bminute DateTime\b", statement):
        return "cityHash64(minute)"
    return "rand()"


def cluster_form(statement: str, cluster: str, database: str) -> list[str]:
    """One rendered statement in its sharded, replicated form.

    A table ``t`` becomes ``t_local`` (``Replicated*MergeTree``, one ZooKeeper
    path per shard) plus ``t`` as a ``Distributed`` table over it, so readers and
    writers keep the logical names. Tables with trace ids are sharded by
    ``cityHash64(trace_id)`` so a trace lives on one shard, per-minute rollups by
    ``cityHash64(minute)`` so a minute's rows (all versions) live on one shard;
    materialized views read and write the local tables of their own shard. That
    makes every JOIN and IN of the read queries shard-local, which the cluster's
    profile setting ``distributed_product_mode = 'local'`` relies on.
    """
    database = check_identifier(database)
    table = _CREATE_TABLE.match(statement)
    if table:
        name, on_cluster, rest = table.groups()
        local = f"{database}.{name}{LOCAL_SUFFIX}"
        rest = _CLONE.sub(lambda m: f"AS {database}.{m.group(1)}{LOCAL_SUFFIX}", rest)

        def replicated(match: re.Match[str]) -> str:
            path = f"'/clickhouse/tables/{{shard}}/{local}', '{{replica}}'"
            args = f"{path}, {match.group(2)}" if match.group(2).strip() else path
            return f"ENGINE = Replicated{match.group(1)}({args})"

        rest = _ENGINE.sub(replicated, rest)
        key = _sharding_key(statement)
        target = f"{database}, {name}{LOCAL_SUFFIX}"
        engine = f"Distributed({check_identifier(cluster)}, {target}, {key})"
        return [
            f"CREATE TABLE IF NOT EXISTS {local} {on_cluster} {rest}",
            f"CREATE TABLE IF NOT EXISTS {database}.{name} {on_cluster} AS {local} "
            f"ENGINE = {engine}",
        ]
    view = _CREATE_VIEW.match(statement)
    if view:
        name, on_cluster, target, rest = view.groups()
        rest = _FROM.sub(lambda m: f"FROM {database}.{m.group(1)}{LOCAL_SUFFIX}", rest, count=1)
        return [
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{name} {on_cluster} "
            f"TO {database}.{target}{LOCAL_SUFFIX} {rest}"
        ]
    return [statement]
