"""The writer: drains the spool in batches, one INSERT per table per batch.

One thread converts the next batch to columns while another inserts the last
one (so the core keeps working while ClickHouse writes); at most two batches
exist at once, and they are inserted and committed in spool order.

A batch closes when it holds ``batch_rows`` rows or its first record is
``batch_seconds`` old. Before inserting, the writer records the batch's exact
spool range as *in flight*; after every table is written it commits the range.
While ClickHouse is down it retries with exponential backoff (the spool keeps
growing behind it, up to its byte limit); nothing is dropped.

No duplicates after a crash or a failed insert. An INSERT of one block is
all-or-nothing on the server, but the client may not learn which (killed after
sending, or the connection lost before the answer). So whenever a batch may
already be written (it is the in-flight batch found at start, or an attempt
failed), the writer first asks ClickHouse:

1. At start, it waits (bounded) until no INSERT that began before this process
   is still running on the server, so a dead collector's last insert has landed.
2. It looks up a sample of the batch's keys by primary key
   (``(trace_id, span_id)`` in ``spans_by_trace``; ``(service, metric, time,
   attributes)`` in ``metric_points``). None found: insert everything. All found:
   the batch is written, skip it. Some found (the client itself sent a span twice,
   or a block split by the server): look up every key and insert only the missing.

Reads stay exact even if a copy slips through: ``spans_by_trace`` is a
ReplacingMergeTree and readers use ``LIMIT 1 BY span_id``.

A batch ClickHouse refuses for its content (``StoreRefused``: a value a column
cannot hold, which sending again cannot fix) never blocks the spool: the writer
inserts the batch's records one by one, moves each one refused again to the
dead-letter file (``collector.spool.DeadLetters``, counted on /metrics), and goes
on. A record that no longer decodes goes there too. Unreachable or busy
ClickHouse is retried as before.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from collector.config import WriterConfig
from collector.spool import METRICS, TRACES, DeadLetters, Record, Spool
from collector.stats import Stats
from tracestore.compiled_columns import (
    ColumnRefused,
    EncodedColumn,
    NativeTraceColumns,
    trace_columns,
)
from tracestore.otlp_columns import DecodeError, Limits, MetricColumns, TraceColumns
from tracestore.span_writes import (
    insert_metric_points,
    insert_spans,
    present_metric_points,
    present_spans,
    running_inserts,
    span_column_codes,
)
from tracestore.store import Store, StoreError, StoreRefused

log = logging.getLogger(__name__)
SAMPLE_KEYS = 32


class Stopped(Exception):
    """The writer was told to give up before the batch was written."""


Key = tuple
Columns = dict[str, list]


def _span_keys(columns: Columns) -> list[Key]:
    return list(zip(columns["trace_id"], columns["span_id"], strict=True))


def _metric_keys(columns: Columns) -> list[Key]:
    return [
        (s, m, t, tuple(v))
        for s, m, t, v in zip(
            columns["service_name"],
            columns["metric_name"],
            columns["time_ns"],
            columns["attr_values"],
            strict=True,
        )
    ]


@dataclass(frozen=True)
class Table:
    """How to write one table and how to tell which of its rows are already there."""

    name: str
    stat: str
    insert: Callable[[Store, Columns], None]
    keys: Callable[[Columns], list[Key]]
    present: Callable[[Store, Sequence[Key]], set[Key]]
    required: tuple[str, ...]


SPANS = Table(
    "spans",
    "written_spans_total",
    insert_spans,
    _span_keys,
    present_spans,
    ("ts", "trace_id", "span_id"),
)
METRIC_POINTS = Table(
    "metric_points",
    "written_metric_points_total",
    insert_metric_points,
    _metric_keys,
    present_metric_points,
    ("ts", "time_ns", "metric_name"),
)


def _encoded(columns: Columns) -> bool:
    return type(next(iter(columns.values()))) is EncodedColumn


def without_defaults(columns: Columns, keep: Sequence[str]) -> Columns:
    """Leave out columns holding only default values (0, '', []): ClickHouse fills
    them in, and the driver's per-row work for empty arrays is most of an insert (for
    encoded columns: their bytes, a fifth of a batch without events or links)."""
    return {
        name: values
        for name, values in columns.items()
        if name in keep
        or (not values.only_defaults if type(values) is EncodedColumn else any(values))
    }


def missing_rows(store: Store, table: Table, columns: Columns) -> Columns:
    """The rows of ``columns`` not yet in ClickHouse (see the module docstring)."""
    keys = table.keys(columns)
    if not keys:
        return columns
    step = max(1, len(keys) // SAMPLE_KEYS)
    sample = keys[::step][:SAMPLE_KEYS] + [keys[-1]]
    present = table.present(store, sample)
    if not present:
        return columns
    if present == set(sample):
        return {name: [] for name in columns}
    present = table.present(store, keys)
    keep = [k not in present for k in keys]
    return {
        name: [v for v, ok in zip(values, keep, strict=True) if ok]
        for name, values in columns.items()
    }


@dataclass
class Batch:
    """One spool range converted to columns, ready to insert."""

    start: int
    end: int
    traces: TraceColumns | NativeTraceColumns
    metrics: MetricColumns
    maybe_written: bool


class Writer:
    """Two threads: one converts the next batch while the other inserts the last.

    At most ``BATCHES_ALIVE`` converted batches exist at a time, which bounds memory;
    batches are inserted and committed strictly in spool order."""

    BATCHES_ALIVE = 2

    def __init__(
        self, store: Store, spool: Spool, limits: Limits, stats: Stats, config: WriterConfig
    ) -> None:
        self.store = store
        self.spool = spool
        self.limits = limits
        self.stats = stats
        self.config = config
        self.dead_letters = DeadLetters(spool.directory, config.dead_letter_max_bytes)
        self.position = spool.committed  # everything before it is in ClickHouse
        self._read_position = spool.committed
        self._draining = threading.Event()
        self._give_up = threading.Event()
        self._slots = threading.Semaphore(self.BATCHES_ALIVE)
        self._batches: queue.Queue[Batch | None] = queue.Queue()
        self._threads = [
            threading.Thread(target=self._convert_loop, name="collector-convert", daemon=True),
            threading.Thread(target=self._insert_loop, name="collector-insert", daemon=True),
        ]
        self._started = time.monotonic()
        self._span_codes: tuple[int, ...] | None = None
        self._span_codes_known = False

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float) -> bool:
        """Write everything spooled so far, for at most ``timeout`` seconds.

        Returns True if the spool was drained; what is left is replayed next start."""
        self._draining.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if any(thread.is_alive() for thread in self._threads):
            self._give_up.set()
            for thread in self._threads:
                thread.join(5)
        return self.position >= self.spool.end

    # -- converting ----------------------------------------------------------------

    def _convert_loop(self) -> None:
        try:
            if self.spool.inflight and self.spool.inflight[0] == self._read_position:
                self._wait_for_orphan_inserts()
                start, end = self.spool.inflight
                log.info("replaying the in-flight batch %d..%d of the last run", start, end)
                self._take_slot()
                self._batches.put(self._convert(self.spool.read(start, 1 << 62, limit=end), True))
                self._read_position = end
            while not (self._draining.is_set() and self._read_position >= self.spool.end):
                self._take_slot()
                records = self._gather()
                if not records:
                    self._slots.release()
                    continue
                self._read_position = records[-1].end
                self._batches.put(self._convert(records, False))
                records = []  # free the payloads while the next batch gathers
        except Stopped:
            pass
        finally:
            self._batches.put(None)

    def _take_slot(self) -> None:
        while not self._slots.acquire(timeout=0.25):
            if self._give_up.is_set():
                raise Stopped()

    def _gather(self) -> list[Record]:
        """Records for one batch: up to ``batch_rows`` rows and about ``batch_bytes``
        spooled bytes (one record more at most), or whatever came in ``batch_seconds``
        after the first record (at once when draining)."""
        config = self.config
        records: list[Record] = []
        rows = 0
        first = 0.0
        position = start = self._read_position
        full = start + config.batch_bytes  # where the batch is full by its bytes
        while rows < config.batch_rows and position < full:
            until = 0
            if self._draining.is_set():
                wait = 0.0
            elif records:
                wait = first + config.batch_seconds - time.monotonic()
                if wait <= 0:
                    break
                # where the batch would be full, at the bytes a row so far
                by_rows = position + (config.batch_rows - rows) * (position - start) // max(rows, 1)
                until = min(full, by_rows)
            else:
                wait = 0.25
            if not self.spool.wait(position, min(wait, 0.25), until):  # short: notice draining
                if self._draining.is_set() or self._give_up.is_set():
                    break
                continue
            new = self.spool.read(position, config.batch_rows - rows, limit=full)
            if not records:
                first = time.monotonic()
            records += new
            rows += sum(r.rows for r in new)
            position = new[-1].end
        return records

    def _native_codes(self) -> tuple[int, ...] | None:
        """The spans table's column types for Native batches, once the server told them
        (lists until then, and for good where the store takes lists only)."""
        if not self._span_codes_known and self.config.compiled_decoder:
            try:
                self._span_codes = span_column_codes(self.store)
                self._span_codes_known = True
            except StoreError as exc:
                log.info("spans as lists for now (cannot read the column types: %s)", exc)
        return self._span_codes

    def _convert(
        self, records: list[Record], maybe_written: bool, again: bool = False, native: bool = True
    ) -> Batch:
        """Records → columns (``records`` is emptied as they are read, so the batch is
        not held twice). ``again``: converted before, so counted and quarantined then.
        ``native``: spans as Native bytes where the store takes them (a batch that may
        be written already needs lists, to look its keys up)."""
        codes = self._native_codes() if native and not maybe_written else None
        batch = Batch(
            records[0].position,
            records[-1].end,
            trace_columns(self.limits, self.config.compiled_decoder, codes),
            MetricColumns(self.limits),
            maybe_written,
        )
        records.reverse()  # taken from the end: each payload goes once it is decoded
        while records:
            record = records.pop()
            builder = {TRACES: batch.traces, METRICS: batch.metrics}.get(record.kind)
            if builder is None:
                log.error("skipping spool record of unknown kind %d", record.kind)
                continue
            try:
                builder.add(record.payload, record.received_ns)
            except DecodeError as exc:  # CRC-checked and validated before; never loop on it
                if not again:
                    self._quarantine(record, f"does not decode: {exc}", "undecodable")
            except ColumnRefused as exc:  # what ClickHouse would refuse the batch for
                if not again:
                    self._quarantine(
                        record, f"refused by the table's types: {exc}", "store_refused"
                    )
        if not again:
            for builder in (batch.traces, batch.metrics):
                self.stats.add("truncated_attributes_total", builder.stats.truncated_attributes)
                self.stats.add("clamped_timestamps_total", builder.stats.clamped_timestamps)
        return batch

    def _quarantine(self, record: Record, reason: str, label: str) -> None:
        if self.dead_letters.add(record, reason):
            self.stats.add("dead_letter_records_total", label=label)
        else:
            self.stats.add("dead_letter_dropped_records_total")

    # -- inserting -----------------------------------------------------------------

    def _insert_loop(self) -> None:
        try:
            while True:
                batch = self._batches.get()
                if batch is None:
                    return
                self._write(batch)
                batch = None  # free the columns before waiting for the next batch
                self._slots.release()
        except Stopped:
            log.warning("writer stopped with %d spooled bytes unwritten", self.spool.pending_bytes)
            self._give_up.set()

    def _write(self, batch: Batch) -> None:
        """Insert one batch (retrying until done or told to give up), then commit it."""
        self.spool.mark_inflight(batch.start, batch.end)
        maybe_written = batch.maybe_written
        while True:
            try:
                try:
                    self._insert_batch(batch, maybe_written)
                except StoreRefused as exc:
                    log.warning(
                        "ClickHouse refused the batch %d..%d: %s", batch.start, batch.end, exc
                    )
                    self._write_records_apart(batch)
                break
            except Stopped:
                raise
            except Exception:  # a bug must not silently stop the pipeline
                log.exception("writing a batch failed; retrying it")
                maybe_written = True
                if self._give_up.wait(self.config.max_backoff):
                    raise Stopped() from None
        self.spool.commit(batch.end)
        self.position = batch.end

    def _insert_batch(self, batch: Batch, maybe_written: bool) -> None:
        if len(batch.traces):
            self._insert(SPANS, batch.traces.columns, maybe_written, lambda: self._as_lists(batch))
        if len(batch.metrics):
            self._insert(METRIC_POINTS, batch.metrics.columns, maybe_written)

    def _write_records_apart(self, batch: Batch) -> None:
        """Insert a refused batch record by record; quarantine the records refused again.

        Rows may have landed before the refusal (a table, not its views), so each
        record is inserted as maybe written: only its missing rows go in."""
        for record in self.spool.read(batch.start, 1 << 62, limit=batch.end):
            one = self._convert([record], True, again=True, native=False)
            try:
                self._insert_batch(one, maybe_written=True)
            except StoreRefused as exc:
                self._quarantine(record, f"ClickHouse refused it: {exc}", "store_refused")

    def _as_lists(self, batch: Batch) -> Columns:
        """A Native batch's spans again, as lists (whose keys can be looked up)."""
        records = self.spool.read(batch.start, 1 << 62, limit=batch.end)
        return self._convert(records, True, again=True, native=False).traces.columns

    def _insert(
        self,
        table: Table,
        columns: Columns,
        maybe_written: bool,
        as_lists: Callable[[], Columns] | None = None,
    ) -> None:
        """Insert with retries; after any doubt, insert only the rows not there yet
        (``as_lists`` gives encoded columns again as lists, to find those rows)."""
        backoff = self.config.first_backoff
        total = len(next(iter(columns.values())))
        while True:
            try:
                if maybe_written and as_lists and _encoded(columns):
                    columns = as_lists()
                rows = missing_rows(self.store, table, columns) if maybe_written else columns
                count = len(rows[next(iter(rows))])
                if count:
                    began = time.monotonic()
                    table.insert(self.store, without_defaults(rows, table.required))
                    self.stats.observe_insert(time.monotonic() - began)
                self.stats.add(table.stat, count)
                if count < total:
                    log.info("%d of %d rows were already in %s", total - count, total, table.name)
                    self.stats.add("replay_skipped_rows_total", total - count)
                return
            except StoreRefused:
                raise  # the same rows would be refused again: the caller sets them apart
            except StoreError as exc:
                maybe_written = True
                self.stats.add("insert_retries_total")
                log.warning(
                    "insert into %s failed, retrying in %.2fs: %s", table.name, backoff, exc
                )
                if self._give_up.wait(backoff):
                    raise Stopped() from None
                backoff = min(backoff * 2, self.config.max_backoff)

    def _wait_for_orphan_inserts(self) -> None:
        """Let an INSERT started by a previous (killed) collector finish on the server."""
        deadline = time.monotonic() + self.config.orphan_insert_wait
        while time.monotonic() < deadline and not self._give_up.is_set():
            try:
                if running_inserts(self.store, time.monotonic() - self._started) == 0:
                    return
            except StoreError as exc:
                log.warning("cannot check running inserts yet: %s", exc)
            time.sleep(0.5)
