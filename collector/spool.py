"""A durable, append-only disk spool between the receivers and the writer.

Layout of the spool directory:

* ``<start>.seg`` segment files, named by the global byte position of their first
  record (positions are contiguous across segments). A record is a 24-byte header
  (payload length, CRC32, kind, format, row count, receive time in ns) and the
  payload: the validated OTLP request bytes. The CRC covers the header fields, the
  payload and the record's position (format 1; format 0, written by earlier versions,
  leaves the position out and is read as before; an earlier version cannot read
  format 1, so a collector goes back to one only with its spool drained).
* ``spare-<n>.seg``: fully committed segments kept (at most ``SPARE_SEGMENTS``, and
  only those begun in format 1) to be written over as the next segments. Writing into
  a file's existing blocks and cached pages costs the kernel a third of filling new
  ones (no block allocation, no page allocation, and ``fdatasync`` has no metadata to
  write); a stale record left in a reused file cannot pass for a new one, because its
  CRC covers its old position.
* ``state.json``: the writer's progress, rewritten atomically (temp file, fsync,
  rename, directory fsync): ``committed`` (everything before it is in ClickHouse)
  and ``inflight`` (the exact ``[start, end)`` of the batch being inserted, or null).
* ``dead-letter.jsonl``: records ClickHouse refused for their content, set aside
  by the writer so the spool goes on (``DeadLetters``).

Durability (``fsync`` policy): ``always`` fsyncs before a request is
acknowledged, with group commit so concurrent requests share one fsync;
``interval`` fsyncs on an append that comes ``fsync_interval`` seconds or more
after the last fsync, and at close (a process crash, SIGKILL included, loses
nothing because written data is in the page cache; an OS crash may lose what
came since the last fsync); ``never`` leaves it to the OS.

Bounds: ``append`` raises ``SpoolFull`` when the bytes not yet committed would
exceed ``max_bytes``; disk use may exceed that by one segment until the writer
retires fully committed segments, and by the ``SPARE_SEGMENTS`` spares.

At open, a torn record at the end of the last segment (crash mid-write) is cut
off; the writer then resumes from ``committed`` and re-checks the ``inflight``
batch against ClickHouse before inserting it again (see ``collector.writer``).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from zlib_ng.zlib_ng import crc32  # zlib's CRC-32, ten times faster on a request

_HEADER = struct.Struct("<IIBB2xIQ")  # length, crc32, kind, format, rows, received_ns
_POSITION = struct.Struct("<Q")
UNPLACED, PLACED = 0, 1  # record formats: the CRC without, or ending with, the position
TRACES, METRICS = 1, 2
SPARE_SEGMENTS = 2
KIND_NAMES = {TRACES: "traces", METRICS: "metrics"}
RECENT_BYTES = 32 << 20  # payloads appended and not yet read, kept for the writer
STATE_FILE = "state.json"
DEAD_LETTER_FILE = "dead-letter.jsonl"
log = logging.getLogger(__name__)


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` not yet written to ClickHouse."""


@dataclass(frozen=True)
class Record:
    position: int
    end: int
    kind: int
    rows: int
    received_ns: int
    payload: bytes


def _crc(kind: int, rows: int, received_ns: int, payload: bytes) -> int:
    return crc32(payload, crc32(struct.pack("<BIQ", kind, rows, received_ns)))


def _placed(crc: int, position: int) -> int:
    """``crc`` continued over the record's position (computed apart, under the lock,
    from the payload's CRC computed before it)."""
    return crc32(_POSITION.pack(position), crc)


def _begins_placed(path: Path) -> bool:
    """Whether the segment's first record is placed, so all of them are. One an earlier
    version began holds unplaced records, whose CRCs hold anywhere: reused, a crash
    before its first new record reached the disk would bring them back as new."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(_HEADER.size)
    except FileNotFoundError:
        return False
    return len(header) == _HEADER.size and _HEADER.unpack(header)[3] == PLACED


def _write_all(fd: int, header: bytes, payload: bytes) -> None:
    """Both parts, whole (without joining them: no copy of the payload)."""
    written = os.writev(fd, (header, payload))
    rest = memoryview(header + payload)[written:] if written < len(header) + len(payload) else b""
    while rest:
        rest = rest[os.write(fd, rest) :]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Segments on disk, one appending side (receivers) and one reading side (writer)."""

    def __init__(
        self,
        directory: str | Path,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 64 << 20,
        fsync: str = "always",
        fsync_interval: float = 0.2,
    ) -> None:
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"fsync policy must be always, interval or never, not {fsync!r}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = max(1 << 16, min(segment_bytes, max_bytes // 4 or 1))
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()  # the reader file: the writer's two threads
        self._sync_lock = threading.Lock()
        self._data = threading.Condition(self._lock)
        self._wake_at = 0  # appends wake the reader once the end reaches this
        # records appended by this process and not yet read (position → record, in order):
        # the writer takes them from memory instead of reading the file back
        self._recent: dict[int, Record] = {}
        self._recent_bytes = 0
        self._fd = -1
        self._segment_start = 0
        self._end = 0
        self._synced = 0
        self._last_sync = 0.0
        self._reader: tuple[int, object] | None = None  # (segment start, open file)
        self._starts: list[int] = []  # segment starts, oldest first
        self.directory.mkdir(parents=True, exist_ok=True)
        self._spares = sorted(self.directory.glob("spare-*.seg"))
        self._spare_bytes = sum(p.stat().st_size for p in self._spares)
        state = self._read_state()
        self.committed: int = state.get("committed", 0)
        inflight = state.get("inflight")
        self.inflight: tuple[int, int] | None = tuple(inflight) if inflight else None
        self._recover()

    # -- opening ---------------------------------------------------------------

    def _scan_segments(self) -> list[int]:
        return sorted(int(p.stem) for p in self.directory.glob("*.seg") if p.stem.isdigit())

    def _path(self, start: int) -> Path:
        return self.directory / f"{start:020d}.seg"

    def _read_state(self) -> dict:
        try:
            return json.loads((self.directory / STATE_FILE).read_text())
        except FileNotFoundError:
            return {}

    def _recover(self) -> None:
        """Cut a torn tail, drop committed segments, and open the last one for appends."""
        segments = self._scan_segments()
        self._starts = segments
        if not segments:
            self._open_segment(self.committed)
            return
        last = segments[-1]
        good = self._scan_valid_length(last)
        with open(self._path(last), "r+b") as fh:
            fh.truncate(good)
        self._end = last + good
        self._synced = self._end
        self.committed = min(max(self.committed, segments[0]), self._end)
        if self.inflight and self.inflight[1] > self._end:
            self.inflight = None  # the batch was never durable; nothing to re-check
        self._delete_committed()
        self._segment_start = last
        self._fd = os.open(self._path(last), os.O_WRONLY)
        os.lseek(self._fd, good, os.SEEK_SET)

    def _scan_valid_length(self, start: int) -> int:
        """The length of the segment's valid records: up to a torn or corrupt record,
        a stale one (a reused file's: its CRC covers another position), or an
        unplaced record after placed ones (formats only go forward within a file)."""
        good = 0
        placed = False
        with open(self._path(start), "rb") as fh:
            while True:
                header = fh.read(_HEADER.size)
                if len(header) < _HEADER.size:
                    return good
                length, crc, kind, form, rows, received = _HEADER.unpack(header)
                payload = fh.read(length)
                if len(payload) < length:
                    return good
                expected = _crc(kind, rows, received, payload)
                if form == PLACED:
                    expected = _placed(expected, start + good)
                    placed = True
                elif form != UNPLACED or placed:
                    return good
                if expected != crc:
                    return good
                good += _HEADER.size + length

    def _open_segment(self, start: int) -> None:
        """Start the segment at ``start``: a spare written over, or a new file."""
        path = self._path(start)
        if self._spares:
            spare = self._spares.pop(0)
            self._spare_bytes -= spare.stat().st_size
            os.replace(spare, path)
            self._fd = os.open(path, os.O_WRONLY)
        else:
            self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._segment_start = start
        if not self._starts or self._starts[-1] != start:
            self._starts = [*self._starts, start]
        self._end = max(self._end, start)
        self._synced = self._end
        _fsync_dir(self.directory)

    # -- appending (receivers) -------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes appended but not yet committed to ClickHouse."""
        return self._end - self.committed

    @property
    def disk_bytes(self) -> int:
        starts = self._starts
        return (self._end - starts[0] if starts else 0) + self._spare_bytes

    @property
    def end(self) -> int:
        return self._end

    def is_full(self, extra: int = 0) -> bool:
        return self.pending_bytes + extra > self.max_bytes

    def append(self, kind: int, rows: int, payload: bytes, received_ns: int) -> int:
        """Append one record and make it as durable as the policy says; returns its end."""
        crc = _crc(kind, rows, received_ns, payload)
        with self._lock:
            if self.is_full(_HEADER.size + len(payload)):
                raise SpoolFull(
                    f"{self.pending_bytes} bytes not yet written (limit {self.max_bytes})"
                )
            if self._end - self._segment_start >= self.segment_bytes:
                # Under the sync lock: no append's fsync may meet this descriptor closed
                # (or reused); the rotation's fsync covers every write before it.
                with self._sync_lock:
                    os.fdatasync(self._fd)
                    os.close(self._fd)
                    self._open_segment(self._end)
            position = self._end
            header = _HEADER.pack(
                len(payload), _placed(crc, position), kind, PLACED, rows, received_ns
            )
            _write_all(self._fd, header, payload)
            self._end += _HEADER.size + len(payload)
            end = self._end
            if self._recent_bytes + len(payload) <= RECENT_BYTES:
                self._recent[position] = Record(position, end, kind, rows, received_ns, payload)
                self._recent_bytes += len(payload)
            fd = self._fd
            if end >= self._wake_at:
                self._data.notify_all()
        self._sync(fd, end)
        return end

    def _sync(self, fd: int, end: int) -> None:
        if self.fsync == "never":
            return
        if self.fsync == "interval" and time.monotonic() - self._last_sync < self.fsync_interval:
            return
        with self._sync_lock:  # group commit: one fsync covers every write before it
            if self._synced >= end:  # also when the segment rotated: its close fsynced it
                return
            target = self._end  # no rotation can come while we hold the lock
            os.fdatasync(fd)  # the size, if it grew, is data: no other metadata matters
            self._synced = max(self._synced, target)
            self._last_sync = time.monotonic()

    # -- reading (the writer) --------------------------------------------------

    def wait(self, position: int, timeout: float, until: int = 0) -> bool:
        """Wait until there is data after ``position``; True if there is.

        With ``until``, wait (at most ``timeout``) for the end to reach it instead: the
        writer filling a batch is woken once, not at every append. One reader waits."""
        with self._data:
            self._wake_at = max(position + 1, until)
            try:
                if self._end < self._wake_at:
                    self._data.wait(timeout)
            finally:
                self._wake_at = 0
            return self._end > position

    def read(self, position: int, max_rows: int, limit: int | None = None) -> list[Record]:
        """Records from ``position`` on, up to ``max_rows`` rows (at least one record)
        and never past ``limit`` (default: the current end)."""
        with self._lock:
            end = self._end if limit is None else min(limit, self._end)
        with self._read_lock:
            return self._read(position, end, max_rows)

    def _recent_at(self, position: int) -> Record | None:
        """The record at ``position`` if still in memory (those before it are dropped:
        the writer reads forward, so it will not ask for them)."""
        with self._lock:
            while self._recent:
                first = next(iter(self._recent))
                if first >= position:
                    break
                self._recent_bytes -= len(self._recent.pop(first).payload)
            record = self._recent.pop(position, None)
            if record is not None:
                self._recent_bytes -= len(record.payload)
            return record

    def _read(self, position: int, end: int, max_rows: int) -> list[Record]:
        records: list[Record] = []
        rows = 0
        while position < end and (rows < max_rows or not records):
            recent = self._recent_at(position)
            if recent is not None:
                records.append(recent)
                rows += recent.rows
                position = recent.end
                continue
            fh = self._reader_at(position)
            header = fh.read(_HEADER.size)
            if len(header) < _HEADER.size:
                raise OSError(f"spool segment truncated at position {position}")
            length, _crc_value, kind, _form, count, received = _HEADER.unpack(header)
            payload = fh.read(length)
            record_end = position + _HEADER.size + length
            records.append(Record(position, record_end, kind, count, received, payload))
            rows += count
            position = record_end
        return records

    def _reader_at(self, position: int):
        start = max(s for s in self._starts if s <= position)
        if self._reader is None or self._reader[0] != start:
            if self._reader is not None:
                self._reader[1].close()
            self._reader = (start, open(self._path(start), "rb"))  # noqa: SIM115
        fh = self._reader[1]
        if fh.tell() != position - start:
            fh.seek(position - start)
        return fh

    def mark_inflight(self, start: int, end: int) -> None:
        """Remember the exact batch being inserted, before inserting it."""
        self.inflight = (start, end)
        self._write_state()

    def commit(self, end: int) -> None:
        """Everything before ``end`` is in ClickHouse: record it, delete old segments."""
        with self._lock:
            self.committed = end
            self.inflight = None
        self._write_state()
        self._delete_committed()

    def _write_state(self) -> None:
        state = {"committed": self.committed, "inflight": self.inflight}
        temporary = self.directory / (STATE_FILE + ".tmp")
        with open(temporary, "w") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, self.directory / STATE_FILE)
        _fsync_dir(self.directory)

    def _delete_committed(self) -> None:
        """Retire segments whose successor starts at or before ``committed``: kept as
        spares while there are fewer than ``SPARE_SEGMENTS``, deleted beyond."""
        starts = self._starts
        done = [
            s
            for s, following in zip(starts, starts[1:], strict=False)
            if following <= self.committed
        ]
        if not done:
            return
        with self._lock:
            self._starts = [s for s in self._starts if s not in done]
        for start in done:
            with self._read_lock:
                if self._reader is not None and self._reader[0] == start:
                    self._reader[1].close()
                    self._reader = None
            self._retire(self._path(start))

    def _retire(self, path: Path) -> None:
        if len(self._spares) >= SPARE_SEGMENTS or not _begins_placed(path):
            path.unlink(missing_ok=True)
            return
        spare = self.directory / f"spare-{path.name}"
        try:
            size = path.stat().st_size
            os.replace(path, spare)
        except FileNotFoundError:
            return
        with self._lock:  # appends take spares under it
            self._spares.append(spare)
            self._spare_bytes += size

    def close(self) -> None:
        with self._lock, self._sync_lock:
            if self._fd >= 0:
                if self.fsync != "never":
                    os.fsync(self._fd)
                os.close(self._fd)
                self._fd = -1
                self._synced = self._end
            if self._reader is not None:
                self._reader[1].close()
                self._reader = None


class DeadLetters:
    """Records ClickHouse refused for their content, moved aside so the spool goes on.

    One JSON object a line in ``dead-letter.jsonl`` beside the segments: why, when,
    the record's spool position, kind, rows and receive time, and its payload (the
    OTLP request protobuf, base64) so an operator can inspect or re-send it. The file
    stops growing at ``max_bytes``; records beyond are only logged."""

    def __init__(self, directory: str | Path, max_bytes: int) -> None:
        self.path = Path(directory) / DEAD_LETTER_FILE
        self.max_bytes = max_bytes
        self._lock = threading.Lock()

    def add(self, record: Record, reason: str) -> bool:
        """Append ``record`` durably; False when the file is at its limit."""
        line = json.dumps(
            {
                "quarantined_ns": time.time_ns(),
                "reason": reason,
                "position": record.position,
                "kind": KIND_NAMES.get(record.kind, record.kind),
                "rows": record.rows,
                "received_ns": record.received_ns,
                "payload_base64": base64.b64encode(record.payload).decode(),
            }
        ).encode()
        with self._lock:
            size = self.path.stat().st_size if self.path.exists() else 0
            if size + len(line) + 1 > self.max_bytes:
                log.error(
                    "dead-letter file %s is full: dropping the record at %d (%s)",
                    self.path,
                    record.position,
                    reason,
                )
                return False
            with open(self.path, "ab") as fh:
                fh.write(line + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
        log.error("record at spool position %d moved to %s: %s", record.position, self.path, reason)
        return True
