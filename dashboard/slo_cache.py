"""Minute and hour counts kept between evaluations, so an evaluation reads only new minutes.

ClickHouse 18.16 reads the rollup's sumMap states slowly (several microseconds a
row), so reading every window of 100 SLOs afresh each interval would scan the
whole budget window every time. Instead the windows are loaded once (at start,
and again when the set of thresholds or the longest window changes); after
that each evaluation re-reads only the minutes since its last read plus
``LATE_MINUTES`` before them, and replaces them.

A window up to ``MINUTE_HORIZON_S`` (3 days: every alert window of the SRE
workbook) runs from the minute holding ``now - window`` to the current one: it
is the minutes of its first hour from that minute on, the whole hours between,
and the minutes of the current hour. So the cache holds every hour (from the
hourly rollup ``latency_hour``) but minutes only of the hours a window starts in
and of the current hour (from ``latency_minute``), loading an hour's minutes when
a window's start moves into it; such an hour's slot is the sum of its minutes.
A start reads a few hours of minute rows and the hour rows, never raw spans, so a
new leader's first evaluation is quick. Longer windows (the 30-day budget) are
summed from hours, from the hour holding ``now - window``, so they cover up to
one hour more than asked.

Kept slots: the leader writes the slots that changed (every ``KEEP_EVERY_S``, and
right after a load) to ``slo_slots`` as plain integers, with a header naming the
cuts, series and how far the minutes were read. A new leader (or a restarted one)
starts from the newest header that fits its cuts and is recent: it reads those
slots, not the rollups' sumMap states, which ClickHouse 18.16 finalizes slowly,
then refreshes as below, checking for late spans a day back from the keep.

Late spans: before each refresh the calls per hour of the last
``LATE_HORIZON_S`` are read from ``latency_hour`` (counts only, cheap); an hour
with more calls than its slot gained late spans and is read again.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from tracestore.slo_queries import (
    HOURS,
    MINUTES,
    Counts,
    SeriesKey,
    hour_calls,
    keep_slots,
    kept_slots,
    last_slot_header,
    range_rows,
    step_rows,
)
from tracestore.store import Store, StoreError

log = logging.getLogger(__name__)

MINUTE_HORIZON_S = 3 * 86400
LATE_MINUTES = 2
# Spans may arrive this late (the collector's default --max-past-seconds); each
# evaluation compares the hourly calls this far back with its slots.
LATE_HORIZON_S = 86400
# The leader writes the slots that changed at most this often; a new leader resumes
# from the last write when it is at most KEEP_MAX_AGE_S old (and re-reads what came
# after, as any refresh does), else it loads from the rollups.
KEEP_EVERY_S = 300
KEEP_MAX_AGE_S = 3600  # older, re-reading what came after costs about as much as a load


class _Ring:
    """Slots of one resolution for every series, each slot labelled with the time it holds.

    One array ``[series, slot, field]``, so a window is one masked sum. Fields are
    ``calls, errors, good per cut..., ok good per cut...`` with room for ``cuts``
    cuts (a service with fewer leaves the rest 0).
    """

    def __init__(self, slots: int, step: int, cuts: int) -> None:
        self.step = step
        self.cuts = cuts
        self.labels = np.full(slots, -1, dtype=np.int64)
        self.rows: dict[SeriesKey, int] = {}
        self.data = np.zeros((16, slots, 2 + 2 * cuts), np.int64)
        self.dirty: set[int] = set()  # times whose slots changed since they were kept

    def _row(self, key: SeriesKey) -> int:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = len(self.rows)
            self._reserve(row + 1)
        return row

    def _reserve(self, series: int) -> None:
        """Room for ``series`` series, grown at least twofold in one copy."""
        if series > len(self.data):
            extra = max(series, 2 * len(self.data)) - len(self.data)
            grown = np.zeros((extra, *self.data.shape[1:]), np.int64)
            self.data = np.concatenate([self.data, grown])

    def claim(self, when: int) -> int:
        """The slot for time ``when``, emptied if it held an older time."""
        index = (when // self.step) % len(self.labels)
        self.dirty.add(when)  # every change of a slot claims it first
        if self.labels[index] != when:
            self.labels[index] = when
            self.data[:, index] = 0
        return index

    def holds(self, when: int) -> bool:
        return bool(self.labels[(when // self.step) % len(self.labels)] == when)

    def packed(self, when: int) -> str | None:
        """The slot of ``when`` for every series, as kept in ``slo_slots``; None if the
        slot now holds another time."""
        if not self.holds(when):
            return None
        index = (when // self.step) % len(self.labels)
        block = np.ascontiguousarray(self.data[: len(self.rows), index], "<i8")
        return base64.b64encode(zlib.compress(block.tobytes(), 1)).decode()

    def unpack(self, when: int, body: str) -> None:
        """Set the slot of ``when`` from ``packed`` output (series in ``rows`` order)."""
        raw = np.frombuffer(zlib.decompress(base64.b64decode(body)), "<i8")
        block = raw.reshape(-1, self.data.shape[2])
        index = self.claim(when)
        self.data[: len(block), index] = block

    def put(self, key: SeriesKey, when: int, row: np.ndarray) -> np.ndarray:
        """Set the slot of ``when`` for one series; returns the change."""
        index, series = self.claim(when), self._row(key)
        delta = row - self.data[series, index]
        self.data[series, index] = row
        return delta

    def fill(self, table: _StepTable, whens: np.ndarray, accumulate: bool = False) -> None:
        """Store (or, with ``accumulate``, add) a whole query result at once: entry ``i``
        goes to the slot of time ``whens[i]``. Numpy in bulk, because a cold start
        stores hundreds of thousands of slots."""
        self._reserve(len(self.rows) + sum(key not in self.rows for key in table.keys))
        rows = np.array([self._row(key) for key in table.keys], np.int64)
        times = np.unique(whens)
        index = np.array([self.claim(int(when)) for when in times], np.int64)
        where = index[np.searchsorted(times, whens)]
        if accumulate:
            np.add.at(self.data, (rows[table.series], where), table.values)
        else:
            self.data[rows[table.series], where] = table.values

    def clear(self, when: int) -> None:
        """Empty the slot of time ``when`` (every series)."""
        self.claim(when)
        self.data[:, (when // self.step) % len(self.labels)] = 0

    def calls(self, when: int) -> int:
        """All series' calls in the slot of time ``when`` (0 if it holds another time)."""
        index = (when // self.step) % len(self.labels)
        if self.labels[index] != when:
            return 0
        return int(self.data[: len(self.rows), index, 0].sum())

    def add(self, key: SeriesKey, when: int, delta: np.ndarray) -> None:
        index, series = self.claim(when), self._row(key)  # _row may grow self.data
        self.data[series, index] += delta

    def total(self, start: int, end: int) -> dict[SeriesKey, np.ndarray]:
        mask = (self.labels >= start) & (self.labels <= end)
        sums = self.data[: len(self.rows), mask].sum(axis=1)
        return {key: sums[row] for key, row in self.rows.items()}

    def widen(self, values: Sequence[int], width: int) -> np.ndarray:
        """``[calls, errors, good * width, ok * width]`` in this ring's field layout."""
        row = np.zeros(2 + 2 * self.cuts, np.int64)
        row[:2] = values[:2]
        row[2 : 2 + width] = values[2 : 2 + width]
        row[2 + self.cuts : 2 + self.cuts + width] = values[2 + width :]
        return row

    def counts(self, row: np.ndarray, width: int) -> Counts:
        values = [int(v) for v in row]
        good = values[2 : 2 + width]
        ok_good = values[2 + self.cuts : 2 + self.cuts + width]
        return Counts(values[0], values[1], tuple(good), tuple(ok_good))


class _StepTable:
    """A range query's rows as arrays: entry ``i`` is series ``keys[series[i]]`` at step
    ``steps[i]`` with fields ``values[i]`` (calls, errors, ``cuts`` good, ``cuts`` ok good)."""

    def __init__(self, rows: Sequence[tuple], cuts: int) -> None:
        columns = list(zip(*rows, strict=True)) or [()] * 9
        numbers: dict[tuple, int] = {}
        series = [numbers.setdefault(key, len(numbers)) for key in zip(*columns[:3], strict=True)]
        self.keys: list[SeriesKey] = [(str(s), str(o), int(k)) for s, o, k in numbers]
        ci, calls, errors, good, ok_good = (np.array(c, np.int64) for c in columns[4:])
        pairs = np.array(series, np.int64) * (1 << 32) + np.array(columns[3], np.int64)
        unique, entry = np.unique(pairs, return_inverse=True)
        self.series, self.steps = unique >> 32, unique & 0xFFFFFFFF
        self.values = np.zeros((len(unique), 2 + 2 * cuts), np.int64)
        self.values[entry, 0], self.values[entry, 1] = calls, errors
        self.values[entry, 1 + ci] = good  # cut numbers start at 1
        self.values[entry, 1 + cuts + ci] = ok_good


class RollupCache:
    """Counts per series and window from the rollups, read incrementally."""

    def __init__(self) -> None:
        self._cuts: dict[str, tuple[int, ...]] = {}
        self._longest = 0.0
        self._minutes: _Ring | None = None
        self._hours: _Ring | None = None
        self._minute_hours: set[int] = set()  # hours whose minute slots are all loaded
        self._read_upto = 0
        self._epoch = 0  # the full load the slots continue (kept with them)
        self._kept_at = -math.inf
        self._versions: dict[tuple[int, int], int] = {}  # (step, slot) -> version last kept
        self.resumed = False  # whether the slots came from slo_slots rather than rollups

    def window_counts(
        self,
        store: Store,
        cuts: Mapping[str, Sequence[int]],
        windows: Sequence[float],
        now: float,
        keep: Callable[[], bool] | None = None,
    ) -> dict[float, dict[SeriesKey, Counts]]:
        """Like ``slo_queries.window_counts`` for windows of whole minutes.

        With ``keep`` (the leader passes it; it says whether this process may still
        write), the slots that changed are written to ``slo_slots`` now and then, so
        the next leader starts from them."""
        if not windows or not cuts:
            return {}
        frozen = {service: tuple(values) for service, values in cuts.items()}
        longest = max(windows)
        if self._minutes is None and self._try_resume(store, frozen, longest, now):
            pass
        elif frozen != self._cuts or longest > self._longest or self._minutes is None:
            self._load(store, frozen, longest, now)
        else:
            self._refresh(store, now)
        current = math.floor(now / 60) * 60
        starts = [*_minute_starts(windows, now), current, current - LATE_MINUTES * 60]
        self._load_minute_hours(store, {_hour(s) for s in starts})
        if keep is not None and now - self._kept_at >= KEEP_EVERY_S and keep():
            try:
                self._keep(store, now)
            except StoreError as exc:  # only the next leader's start is slower
                log.warning("SLO evaluator: could not keep its slots: %s", exc)
        minutes, hours = self._minutes, self._hours
        assert minutes is not None and hours is not None
        out: dict[float, dict[SeriesKey, Counts]] = {}
        for window in windows:
            if window <= MINUTE_HORIZON_S:
                start = math.floor((now - window) / 60) * 60
                first, last = _hour(start), _hour(current)
                if first == last:
                    parts = [minutes.total(start, current)]
                else:  # the minutes of the first and last hours, whole hours between
                    parts = [
                        minutes.total(start, first + 3599),
                        hours.total(first + 3600, last - 3600),
                        minutes.total(last, current),
                    ]
            else:
                parts = [hours.total(_hour(now - window), current)]
            summed: dict[SeriesKey, np.ndarray] = {}
            for part in parts:
                for key, row in part.items():
                    summed[key] = summed[key] + row if key in summed else row
            out[window] = {
                key: minutes.counts(row, len(frozen[key[0]])) for key, row in summed.items()
            }
        return out

    def _load(
        self, store: Store, cuts: dict[str, tuple[int, ...]], longest: float, now: float
    ) -> None:
        """Read every hour afresh from ``latency_hour``; ``window_counts`` then loads the
        minutes of the hours that windows start in and of the current one."""
        current = math.floor(now / 60) * 60
        _, oldest = self._empty(cuts, longest, now)
        self._read_upto, self._epoch, self._kept_at = current, time.time_ns(), -math.inf
        self._versions = {}
        self.resumed = False
        most = self._hours.cuts
        table = _StepTable(step_rows(store, cuts, oldest, _hour(current), 3600, HOURS), most)
        self._hours.fill(table, oldest + table.steps * 3600)

    def _empty(
        self, cuts: dict[str, tuple[int, ...]], longest: float, now: float
    ) -> tuple[int, int]:
        """Empty rings for these cuts and windows; returns the first hour with minute
        slots and the oldest hour slot."""
        most = max(len(values) for values in cuts.values())
        current = math.floor(now / 60) * 60
        first_hour = _hour(now - min(longest, MINUTE_HORIZON_S))
        oldest = _hour(now - max(longest, LATE_HORIZON_S))
        self._minutes = _Ring((current - first_hour) // 60 + LATE_MINUTES + 63, 60, most)
        self._hours = _Ring((_hour(current) - oldest) // 3600 + 3, 3600, most)
        self._cuts, self._longest = cuts, longest
        self._minute_hours = set()
        return first_hour, oldest

    def _try_resume(
        self, store: Store, cuts: dict[str, tuple[int, ...]], longest: float, now: float
    ) -> bool:
        try:
            return self._resume(store, cuts, longest, now)
        except StoreError as exc:
            log.warning("SLO evaluator: could not resume from kept slots: %s", exc)
            self._minutes = None
            return False

    def _resume(
        self, store: Store, cuts: dict[str, tuple[int, ...]], longest: float, now: float
    ) -> bool:
        """Start from the slots the last leader kept, if they fit these cuts and windows
        and are recent; then refresh as usual, checking for late spans a day back from
        when they were kept. False if there is nothing fit to resume from."""
        found = last_slot_header(store)
        if found is None:
            return False
        epoch, version, body = found
        head = json.loads(body)
        kept_cuts = {service: tuple(values) for service, values in head["cuts"].items()}
        read_upto = int(head["read_upto"])
        if (
            kept_cuts != cuts
            or head["longest"] < longest
            or not 0 <= now - read_upto <= KEEP_MAX_AGE_S
        ):
            return False
        first_hour, oldest = self._empty(cuts, float(head["longest"]), now)
        minutes, hours = self._minutes, self._hours
        assert minutes is not None and hours is not None
        for ring, keys in ((minutes, head["minute_keys"]), (hours, head["hour_keys"])):
            ring._reserve(len(keys))
            for service, name, kind in keys:
                ring._row((str(service), str(name), int(kind)))
        self._minute_hours = {int(h) for h in head["minute_hours"] if int(h) >= first_hour}

        def wanted(step: int, slot: int) -> bool:
            if step == 60:
                return _hour(slot) in self._minute_hours
            return step == 3600 and slot >= oldest

        # The header lists the version of each slot it counts on; a slot row missing or
        # of another version (not yet arrived on a cluster) means: load instead.
        versions = {(s, t): v for s, t, v in head["versions"] if wanted(s, t)}
        found_versions = {}
        for step, slot, row_version, packed in kept_slots(store, epoch, version):
            if wanted(step, slot):
                (minutes if step == 60 else hours).unpack(slot, packed)
                found_versions[(step, slot)] = row_version
        if found_versions != versions:
            log.warning("SLO evaluator: kept slots incomplete; loading from the rollups")
            self._minutes = None
            return False
        self._versions = versions
        minutes.dirty.clear()
        hours.dirty.clear()
        self._epoch, self._read_upto, self._kept_at = epoch, read_upto, now
        self.resumed = True
        self._refresh(store, now, late_from=_hour(read_upto - LATE_HORIZON_S))
        return True

    def _keep(self, store: Store, now: float) -> None:
        """Write the slots changed since the last keep, then a header naming them."""
        minutes, hours = self._minutes, self._hours
        assert minutes is not None and hours is not None
        version = time.time_ns()
        slots = []
        for ring in (minutes, hours):
            for when in sorted(ring.dirty):
                packed = ring.packed(when)
                if packed is not None:
                    slots.append((ring.step, when, packed))
                    self._versions[(ring.step, when)] = version
        self._versions = {
            (step, slot): v
            for (step, slot), v in self._versions.items()
            if (minutes if step == 60 else hours).holds(slot)
        }
        header = {
            "cuts": {service: list(values) for service, values in self._cuts.items()},
            "longest": self._longest,
            "minute_keys": [list(key) for key in minutes.rows],
            "hour_keys": [list(key) for key in hours.rows],
            "minute_hours": sorted(self._minute_hours),
            "read_upto": self._read_upto,
            "versions": [[step, slot, v] for (step, slot), v in sorted(self._versions.items())],
        }
        keep_slots(store, self._epoch, version, slots, json.dumps(header))
        minutes.dirty.clear()
        hours.dirty.clear()
        self._kept_at = now

    def _load_minute_hours(self, store: Store, wanted: set[int]) -> None:
        """Load the minutes of hours not loaded yet (one query for all); each such hour's
        slot then becomes the sum of its minutes, as refreshes keep it."""
        minutes, hours = self._minutes, self._hours
        assert minutes is not None and hours is not None
        missing = sorted(wanted - self._minute_hours)
        if not missing:
            return
        first, last = missing[0], missing[-1] + 3540
        rows = step_rows(store, self._cuts, first, last, 60, MINUTES, hours=missing)
        table = _StepTable(rows, minutes.cuts)
        for hour in missing:
            hours.clear(hour)
            for minute in range(hour, hour + 3600, 60):
                minutes.clear(minute)
        if len(table.steps):
            whens = first + table.steps * 60
            minutes.fill(table, whens)
            hours.fill(table, whens // 3600 * 3600, accumulate=True)
        self._minute_hours.update(missing)

    def _refresh(self, store: Store, now: float, late_from: int | None = None) -> None:
        """Re-read the minutes since the last read (and a few before) and apply the changes;
        then reload any hour the rollup holds more calls for than the slots (late spans),
        from ``late_from`` (default a day back)."""
        minutes = self._minutes
        assert minutes is not None
        current = math.floor(now / 60) * 60
        start = self._read_upto - LATE_MINUTES * 60
        late_from = _hour(now - LATE_HORIZON_S) if late_from is None else late_from
        # Read the hourly calls first: whatever arrives after only makes the slots larger.
        hourly = hour_calls(store, list(self._cuts), late_from, _hour(current))
        fresh = range_rows(store, self._cuts, start, current, 60)
        keys = set(minutes.rows) | {key for key, _ in fresh}
        empty = np.zeros(2 + 2 * minutes.cuts, np.int64)
        for minute in range(start, current + 1, 60):
            i = (minute - start) // 60
            for key in keys:
                values = fresh.get((key, i))
                row = empty if values is None else minutes.widen(values, len(self._cuts[key[0]]))
                self._put(key, minute, row)
        self._minute_hours.add(_hour(current))  # a new hour starts empty, filled minute by minute
        self._read_upto = current
        self._reload_late(store, hourly)

    def _put(self, key: SeriesKey, minute: int, row: np.ndarray) -> None:
        assert self._minutes is not None and self._hours is not None
        delta = self._minutes.put(key, minute, row)
        if delta.any():
            self._hours.add(key, _hour(minute), delta)

    def _reload_late(self, store: Store, hourly: dict[int, int]) -> None:
        """Hours with calls the slots lack: re-read their minutes (if loaded) or the hour."""
        hours = self._hours
        assert hours is not None
        stale = [hour for hour, calls in hourly.items() if hours.calls(hour) < calls]
        for hour in stale:
            if hour in self._minute_hours:
                fresh = range_rows(store, self._cuts, hour, hour + 3540, 60)
                minutes = self._minutes
                assert minutes is not None
                empty = np.zeros(2 + 2 * minutes.cuts, np.int64)
                keys = set(minutes.rows) | {key for key, _ in fresh}
                for i in range(60):
                    for key in keys:
                        values = fresh.get((key, i))
                        width = len(self._cuts[key[0]])
                        row = empty if values is None else minutes.widen(values, width)
                        self._put(key, hour + i * 60, row)
            else:
                table = _StepTable(
                    step_rows(store, self._cuts, hour, hour, 3600, HOURS), hours.cuts
                )
                hours.clear(hour)
                hours.fill(table, hour + table.steps * 3600)


def _hour(seconds: float) -> int:
    return math.floor(seconds / 3600) * 3600


def _minute_starts(windows: Sequence[float], now: float) -> list[int]:
    return [math.floor((now - w) / 60) * 60 for w in windows if w <= MINUTE_HORIZON_S]
