"""Day partitions: which exist, and dropping one (retention on servers without TTL, and
the hot tier leaving after its window).

Every table is partitioned by day, so a day's partition id is ``YYYYMMDD``; ids are
checked against that pattern, and table names against the identifier pattern, before
they go into ``ALTER TABLE … DROP PARTITION ID``.
"""

from __future__ import annotations

import functools
import re

from tracestore.migrate import load_migrations
from tracestore.store import Store, StoreError, check_identifier

DAY_ID = re.compile(r"^\d{8}$")
_TABLE_TTL = re.compile(
    r"^CREATE TABLE IF NOT EXISTS (\w+)\b.*?\{\{\s*ttl\w*:\s*(\w+)\s*\}\}", re.S
)


@functools.cache
def retention_families() -> dict[str, str]:
    """Table → retention family (``Retention`` field), as the table's migration names it in
    its TTL placeholder: written once, so a new table is dropped on time without TTL too."""
    return {
        found.group(1): found.group(2)
        for migration in load_migrations()
        for statement in migration.statements()
        if (found := _TABLE_TTL.match(statement))
    }


_DISTRIBUTED = re.compile(r"ENGINE = Distributed\('?(\w+)'?, '?(\w+)'?, '?(\w+)'?")


def active_partitions(store: Store) -> list[tuple[str, str]]:
    """(table, partition id) of every active part in the store's database."""
    rows = store.query(
        "SELECT DISTINCT table, partition_id FROM system.parts WHERE database = %(db)s AND active",
        {"db": store.database},
    )
    return [(str(table), str(partition_id)) for table, partition_id in rows]


def partitioned_table(store: Store, table: str) -> str:
    """What ``ALTER … DROP PARTITION`` takes for ``table``: itself, or for a Distributed
    table (the cluster form) its local table on every shard, ``db.t_local ON CLUSTER c``."""
    table = check_identifier(table)
    [(create,)] = store.query(f"SHOW CREATE TABLE {table}")
    found = _DISTRIBUTED.search(str(create))
    if found is None:
        return table
    cluster, database, local = (check_identifier(name) for name in found.groups())
    return f"{database}.{local} ON CLUSTER {cluster}"


def drop_partition(store: Store, table: str, partition_id: str) -> None:
    """Drop one day partition (``YYYYMMDD``) of ``table``; a no-op where it is absent."""
    if not DAY_ID.match(partition_id):
        raise StoreError(f"not a day partition id: {partition_id!r}")
    store.execute(
        f"ALTER TABLE {partitioned_table(store, table)} DROP PARTITION ID '{partition_id}'"
    )
