"""The retention job for servers without TTL knows every table the migrations give a TTL.

Which family (and so how many days) a table keeps is read from its migration, so a
table added later is dropped on time on ClickHouse 18.16 too.
"""

from __future__ import annotations

import datetime as dt

from collector.retention import drop_expired
from tests.support.collector_helpers import fresh_native_url
from tracestore.example_queries import Example, Examples, example_traces, record_examples
from tracestore.migrate import Retention, migrate
from tracestore.slo_queries import keep_slots, last_slot_header
from tracestore.store import open_store

TODAY = dt.date(2026, 3, 20)


def _noon_s(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC).timestamp())


def test_tables_added_after_the_first_migrations_expire_without_ttl(clickhouse_server):
    store = open_store(fresh_native_url(clickhouse_server))
    migrate(store)
    old, recent = TODAY - dt.timedelta(days=40), TODAY - dt.timedelta(days=1)
    for day, trace_id in ((old, "a" * 32), (recent, "b" * 32)):
        example = Examples("checkout", slowest=Example(trace_id, 1.0, _noon_s(day) * 10**9))
        record_examples(store, "chart", [example], now_s=_noon_s(day))
    keep_slots(store, 1, _noon_s(old) * 10**9, [(60, 1, "old slot")], "{}")

    dropped = drop_expired(store, Retention(kept=30, rollups=30), TODAY)

    old_id = old.strftime("%Y%m%d")
    assert ("trace_examples", old_id) in dropped
    assert ("slo_slots", old_id) in dropped
    assert set(example_traces(store)) == {"b" * 32}
    assert last_slot_header(store) is None
