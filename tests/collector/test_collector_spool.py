"""The disk spool on its own, and the writer's replay against real ClickHouse."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from collector import spool as spool_module
from collector.spool import TRACES, Spool, SpoolFull
from collector.stats import Stats
from collector.writer import Writer, WriterConfig
from tests.support.collector_helpers import count_spans, span_ids, span_request
from tests.support.polling import eventually
from tracestore.otlp_columns import Limits, TraceColumns


def _fill(spool: Spool, count: int, size: int = 100) -> list[bytes]:
    payloads = [bytes([i % 256]) * size for i in range(count)]
    for payload in payloads:
        spool.append(TRACES, 1, payload, 123)
    return payloads


def test_records_read_back_in_order_and_commit_survives_reopening(tmp_path):
    spool = Spool(tmp_path)
    payloads = _fill(spool, 5)
    records = spool.read(0, max_rows=3)
    assert [r.payload for r in records] == payloads[:3]
    assert [r.position for r in records[1:]] == [r.end for r in records[:-1]]
    assert {(r.kind, r.rows, r.received_ns) for r in records} == {(TRACES, 1, 123)}
    spool.mark_inflight(records[0].position, records[-1].end)
    spool.commit(records[-1].end)
    spool.close()
    reopened = Spool(tmp_path)
    assert reopened.committed == records[-1].end and reopened.inflight is None
    assert [r.payload for r in reopened.read(reopened.committed, 100)] == payloads[3:]


def test_recent_records_come_from_memory_and_the_rest_from_disk_alike(tmp_path, monkeypatch):
    """The writer reads what this process appended from memory, up to ``RECENT_BYTES``;
    past that, and for a range read again, from the segment: the same records."""
    monkeypatch.setattr(spool_module, "RECENT_BYTES", 1_000)
    spool = Spool(tmp_path)
    payloads = _fill(spool, 20, size=150)  # the first six fit in memory
    records = spool.read(0, max_rows=100)
    assert [r.payload for r in records] == payloads
    again = spool.read(0, max_rows=100)  # already read: from the file
    assert again == records
    spool.close()
    assert Spool(tmp_path).read(0, max_rows=100) == records


def test_inflight_batch_is_remembered_across_a_crash(tmp_path):
    spool = Spool(tmp_path)
    _fill(spool, 3)
    spool.mark_inflight(0, spool.end)
    end = spool.end
    del spool  # no close: a crash
    assert Spool(tmp_path).inflight == (0, end)


@pytest.mark.parametrize("damage", ["torn", "crc"])
def test_a_torn_or_corrupt_tail_is_cut_off_at_open(tmp_path, damage):
    spool = Spool(tmp_path)
    payloads = _fill(spool, 3)
    spool.close()
    (segment,) = tmp_path.glob("[0-9]*.seg")
    data = segment.read_bytes()
    if damage == "torn":
        segment.write_bytes(data[:-10])
    else:
        segment.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    reopened = Spool(tmp_path)
    assert [r.payload for r in reopened.read(0, 100)] == payloads[:2]
    reopened.append(TRACES, 1, b"next", 1)
    assert [r.payload for r in reopened.read(0, 100)] == [*payloads[:2], b"next"]


def test_full_spool_refuses_until_the_writer_commits(tmp_path):
    spool = Spool(tmp_path, max_bytes=1000)
    _fill(spool, 7)
    with pytest.raises(SpoolFull):
        spool.append(TRACES, 1, b"x" * 200, 1)
    spool.commit(spool.end)
    spool.append(TRACES, 1, b"x" * 200, 1)


def _segments(directory) -> list[int]:
    return sorted(int(p.stem) for p in directory.glob("[0-9]*.seg"))


def _spares(directory) -> list:
    return sorted(directory.glob("spare-*.seg"))


def test_segments_rotate_and_committed_ones_are_retired(tmp_path):
    """Committed segments go: ``SPARE_SEGMENTS`` of them kept as spares, the rest deleted."""
    spool = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=1 << 16)
    payloads = _fill(spool, 40, size=10_000)
    assert len(_segments(tmp_path)) >= 5
    records = spool.read(0, 100)
    assert [r.payload for r in records] == payloads
    spool.commit(records[30].position)
    remaining = _segments(tmp_path)
    assert remaining[0] <= records[30].position and len(remaining) <= 3
    assert len(_spares(tmp_path)) == spool_module.SPARE_SEGMENTS
    files = sum(p.stat().st_size for p in tmp_path.glob("*.seg"))
    assert spool.disk_bytes == files
    spool.close()
    reopened = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=1 << 16)
    assert [r.payload for r in reopened.read(reopened.committed, 100)] == payloads[30:]


def test_spare_segments_are_written_over_and_their_stale_records_never_come_back(tmp_path):
    """Records of one size line up with a reused file's old records, so a crash right
    after a record leaves a stale record where the next would start, whole and with the
    CRC it had: it must not be read as new (its CRC covers its old position)."""
    size = 10_000
    spool = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=1 << 16)
    written = _fill(spool, 14, size=size)  # two segments of 7 records
    first, second = _segments(tmp_path)
    spool.commit(second)
    (spare,) = _spares(tmp_path)
    inode = spare.stat().st_ino
    fresh = [(b"new-%d" % i).ljust(size, b"\0") for i in range(2)]
    for payload in fresh:  # the first starts a third segment: the spare, renamed
        spool.append(TRACES, 1, payload, 123)
    third = _segments(tmp_path)[-1]
    assert _spares(tmp_path) == [] and third > second
    assert (tmp_path / f"{third:020d}.seg").stat().st_ino == inode
    del spool  # a crash: no close; the file still holds five old records after the new
    reopened = Spool(tmp_path, max_bytes=10 << 20, segment_bytes=1 << 16)
    assert [r.payload for r in reopened.read(second, 100)] == written[7:] + fresh
    reopened.append(TRACES, 1, b"after", 1)
    assert [r.payload for r in reopened.read(second, 100)] == [*written[7:], *fresh, b"after"]


def test_records_of_the_earlier_format_are_read_and_appended_to(tmp_path):
    """A spool written before records carried their position (format 0) opens as it was;
    the records appended after it are placed, and a format 0 record after them is not."""
    payloads = [b"old-%d" % i for i in range(3)]

    def crc(payload: bytes) -> int:  # as the earlier versions computed it: stdlib zlib
        return zlib.crc32(payload, zlib.crc32(struct.pack("<BIQ", TRACES, 1, 5)))

    old = b"".join(
        spool_module._HEADER.pack(len(p), crc(p), TRACES, spool_module.UNPLACED, 1, 5) + p
        for p in payloads
    )
    segment = tmp_path / f"{0:020d}.seg"
    segment.write_bytes(old)
    spool = Spool(tmp_path)
    assert [r.payload for r in spool.read(0, 100)] == payloads
    spool.append(TRACES, 1, b"new", 6)
    spool.close()
    assert [r.payload for r in Spool(tmp_path).read(0, 100)] == [*payloads, b"new"]
    with segment.open("ab") as fh:  # an unplaced record after a placed one: not valid
        fh.write(old[: len(old) // 3])
    spool = Spool(tmp_path, segment_bytes=1 << 16)
    assert [r.payload for r in spool.read(0, 100)] == [*payloads, b"new"]
    # Committed, the segment is deleted, not kept to be reused: its unplaced records
    # would pass for new ones if a crash came before the first new record was on disk.
    spool.append(TRACES, 1, bytes(70_000), 7)  # the segment passes its size ...
    spool.append(TRACES, 1, b"next", 8)  # ... and this one starts the next
    first, second = _segments(tmp_path)
    spool.commit(second)
    assert _segments(tmp_path) == [second] and _spares(tmp_path) == []
    spool.append(TRACES, 1, bytes(70_000), 9)
    spool.append(TRACES, 1, b"third", 10)
    spool.commit(_segments(tmp_path)[-1])
    assert len(_spares(tmp_path)) == 1  # one written placed from its start is kept


def test_fsync_policy_is_checked(tmp_path):
    with pytest.raises(ValueError):
        Spool(tmp_path, fsync="sometimes")


@pytest.mark.parametrize(
    ("batch_rows", "batch_bytes", "records"),
    [(100, 350, 3), (2, 1 << 20, 2), (100, 10, 1), (100, 1 << 20, 10)],
)
def test_a_batch_ends_at_its_rows_or_its_bytes(tmp_path, batch_rows, batch_bytes, records):
    """Rows or spooled bytes, whichever comes first (one record past the bytes at most:
    a record larger than ``batch_bytes`` is a batch of its own)."""
    spool = Spool(tmp_path)
    _fill(spool, 10)  # 124 spooled bytes a record, 1 row each
    config = WriterConfig(batch_rows=batch_rows, batch_bytes=batch_bytes)
    writer = Writer(None, spool, Limits(), Stats(), config)  # never started: no store needed
    writer._draining.set()  # take what is there, without waiting for more
    assert len(writer._gather()) == records


# -- replay against ClickHouse ---------------------------------------------------


def _spool_requests(spool: Spool, count: int, rng: random.Random) -> list[list[str]]:
    ids = []
    for _ in range(count):
        request = span_request(20, rng=rng)
        spool.append(TRACES, 20, request.SerializeToString(), request_time(request))
        ids.append(span_ids(request))
    return ids


def request_time(request) -> int:
    return request.resource_spans[0].scope_spans[0].spans[0].start_time_unix_nano


def _write_directly(store, records) -> None:
    """What a writer killed after its INSERT (before its commit) left behind."""
    builder = TraceColumns(Limits())
    for record in records:
        builder.add(record.payload, record.received_ns)
    store.insert("spans", builder.columns)


def _replay(store, tmp_path) -> Stats:
    stats = Stats()
    writer = Writer(
        store,
        Spool(tmp_path),
        Limits(),
        stats,
        WriterConfig(batch_seconds=0.1, orphan_insert_wait=5),
    )
    writer.start()
    assert writer.stop(60)
    return stats


@pytest.mark.parametrize("written", ["all", "none", "some"])
def test_replayed_inflight_batch_is_not_inserted_twice(store, tmp_path, written):
    rng = random.Random(7)
    spool = Spool(tmp_path)
    batches = _spool_requests(spool, 3, rng)
    records = spool.read(0, 10**9)
    spool.mark_inflight(records[0].position, records[-1].end)
    if written == "all":
        _write_directly(store, records)
    elif written == "some":  # e.g. a client re-sent one request that an earlier batch wrote
        _write_directly(store, records[:1])
    later = _spool_requests(spool, 1, rng)
    spool.close()
    stats = _replay(store, tmp_path)
    expected = [i for batch in batches + later for i in batch]
    eventually(lambda: count_spans(store) >= len(expected), timeout=30)
    assert count_spans(store) == len(expected)
    assert count_spans(store, "span_id IN %(ids)s", {"ids": tuple(expected)}) == len(expected)
    skipped = {"all": 60, "none": 0, "some": 20}[written]
    assert stats.get("replay_skipped_rows_total") == skipped
    assert stats.get("written_spans_total") == len(expected) - skipped


def test_concurrent_appends_across_segment_rotations_all_succeed(tmp_path):
    """An append's fsync runs after the lock that rotates segments is released: a rotation
    in between closes (and may reuse) the file descriptor it was about to fsync. Every
    append must still succeed, and every record read back."""
    import threading

    spool = Spool(tmp_path, segment_bytes=1 << 16)  # the smallest segment: many rotations
    errors: list[BaseException] = []
    appended: list[bytes] = []

    def client(n: int) -> None:
        try:
            for i in range(500):
                payload = f"{n}:{i}:".encode() * 40
                spool.append(TRACES, 1, payload, 123)
                appended.append(payload)
        except BaseException as exc:  # noqa: BLE001 - the failure under test
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [], errors[:3]
    assert len(spool._starts) > 5  # rotations happened while others were appending
    read = [r.payload for r in spool.read(0, max_rows=10_000, limit=1 << 30)]
    assert sorted(read) == sorted(appended)
    spool.close()
