"""Fault tests: ClickHouse down mid-stream, the collector SIGKILLed mid-stream, SIGTERM.

Every acknowledged span must arrive, and none may be stored twice (the raw
``spans`` table is checked, not a deduplicating read).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import random
import signal
import subprocess
import threading
import time

import grpc
import pytest

from collector.retention import drop_expired
from collector.writer import WriterConfig
from runtime.loopback_ports import free_port
from tests.support.clickhouse_server import ClickHouseServer
from tests.support.collector_helpers import (
    collector_process,
    count_spans,
    fresh_native_url,
    grpc_export,
    running_collector,
    span_ids,
    span_request,
)
from tests.support.polling import eventually
from tracestore.migrate import Retention, migrate
from tracestore.store import open_store


class Sender(threading.Thread):
    """Sends small span requests in a loop; remembers which ones were acknowledged."""

    def __init__(self, port: int, spans_per_request: int = 20) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.spans_per_request = spans_per_request
        self.acknowledged: list[str] = []
        self.failures = 0
        self.halt = threading.Event()
        self.rng = random.Random()

    def run(self) -> None:
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
            export = grpc_export(channel)
            while not self.halt.is_set():
                request = span_request(self.spans_per_request, rng=self.rng)
                try:
                    export(request.SerializeToString(), timeout=5, wait_for_ready=False)
                    self.acknowledged += span_ids(request)
                except grpc.RpcError:
                    self.failures += 1
                    time.sleep(0.1)
                time.sleep(0.02)

    def finish(self) -> list[str]:
        self.halt.set()
        self.join(30)
        return self.acknowledged


def _assert_exactly_once(store, acknowledged: list[str]) -> None:
    expected = set(acknowledged)

    def all_there() -> bool:
        return expected <= {row[0] for row in store.query("SELECT span_id FROM spans")}

    eventually(all_there, timeout=120, interval=0.5)
    total, distinct = store.query("SELECT count(), uniqExact(span_id) FROM spans")[0]
    assert total == distinct, f"{total - distinct} spans stored twice"


@pytest.mark.slow
def test_clickhouse_down_for_20_seconds_loses_nothing(tmp_path):
    server = ClickHouseServer(root=tmp_path / "clickhouse")
    server.start()
    try:
        store = open_store(server.url(database="faults"))
        with running_collector(
            store, tmp_path / "spool", writer=WriterConfig(batch_seconds=0.3, max_backoff=2)
        ) as collector:
            sender = Sender(collector.grpc.port)
            sender.start()
            time.sleep(3)
            server.stop()
            time.sleep(20)
            assert collector.spool.pending_bytes > 0  # acknowledged while ClickHouse was down
            server.start()
            time.sleep(3)
            acknowledged = sender.finish()
            _assert_exactly_once(store, acknowledged)
            assert collector.stats.get("insert_retries_total") > 0
            assert sender.failures == 0
    finally:
        server.remove()


def _ports() -> dict[str, int]:
    return {"grpc": free_port(), "http": free_port(), "admin": free_port()}


def _wait_until_inserting(spool_dir) -> None:
    """Return while a batch is in flight (marked, not yet committed): the worst moment.
    Returns after 10 s at the latest, in flight or not."""
    with contextlib.suppress(AssertionError):
        eventually(
            lambda: json.loads((spool_dir / "state.json").read_text()).get("inflight"),
            10,
            0.005,
            what="a batch in flight",
            ignoring=(FileNotFoundError, json.JSONDecodeError),
        )


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(30)


@pytest.mark.slow
def test_sigkill_mid_stream_then_restart_keeps_every_acknowledged_span_once(
    clickhouse_server, tmp_path
):
    url = fresh_native_url(clickhouse_server)
    store = open_store(url)
    migrate(store)
    ports = _ports()
    flags = ("--batch-seconds", "0.1", "--spool-fsync", "interval")
    process = collector_process(url, tmp_path / "spool", ports, *flags)
    sender = Sender(ports["grpc"], spans_per_request=200)
    sender.start()
    try:
        for _ in range(2):
            time.sleep(3)
            _wait_until_inserting(tmp_path / "spool")
            process.send_signal(signal.SIGKILL)
            process.wait(30)
            acknowledged_at_kill = len(sender.acknowledged)
            process = collector_process(url, tmp_path / "spool", ports, *flags)
        time.sleep(3)
        acknowledged = sender.finish()
        assert len(acknowledged) > acknowledged_at_kill > 0
        _assert_exactly_once(store, acknowledged)
    finally:
        sender.halt.set()
        _stop(process)


@pytest.mark.slow
def test_sigterm_flushes_and_exits_zero(clickhouse_server, tmp_path):
    url = fresh_native_url(clickhouse_server)
    ports = _ports()
    process = collector_process(url, tmp_path / "spool", ports, "--batch-seconds", "600")
    try:
        request = span_request(100)
        with grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}") as channel:
            grpc_export(channel)(request.SerializeToString(), timeout=10)
        store = open_store(url)
        assert count_spans(store) == 0  # still in the spool: the batch is not due
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0
        assert count_spans(store, "span_id IN %(ids)s", {"ids": tuple(span_ids(request))}) == 100
    finally:
        _stop(process)


def test_retention_drops_old_day_partitions_without_ttl(clickhouse_server):
    store = open_store(fresh_native_url(clickhouse_server))
    migrate(store)
    today = dt.date(2026, 3, 20)
    days = [today - dt.timedelta(days=n) for n in (0, 7, 8, 40)]
    seconds = [
        int(dt.datetime(d.year, d.month, d.day, 12, tzinfo=dt.UTC).timestamp()) for d in days
    ]
    store.insert(
        "spans",
        {
            "ts": seconds,
            "start_ns": [s * 10**9 for s in seconds],
            "trace_id": [f"{n:032x}" for n in range(4)],
            "span_id": [f"{n:016x}" for n in range(4)],
        },
    )
    store.insert(
        "metric_points",
        {"ts": seconds, "time_ns": [s * 10**9 for s in seconds], "metric_name": ["m"] * 4},
    )
    dropped = drop_expired(store, Retention(spans=7, metrics=30), today)
    assert ("spans", days[2].strftime("%Y%m%d")) in dropped
    assert ("metric_points", days[3].strftime("%Y%m%d")) in dropped
    assert count_spans(store) == 2
    left = store.query("SELECT count() FROM spans_by_trace")[0][0]
    assert left == 2
    assert store.query("SELECT count() FROM metric_points")[0][0] == 3
