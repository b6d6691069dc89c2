"""Minute and hour counts kept between evaluations, so an evaluation reads only new minutes.

ClickHouse 18.16 reads the rollup's sumMap states slowly (several microseconds a
row), so reading every window of 100 SLOs afresh each interval would scan the
whole budget window every time. Instead the windows are loaded once (at start,
and again when the set of thresholds or the longest window changes); after
that each evaluation re-reads only the minutes since its last read plus
``LATE_MINUTES`` before them, where late spans land, and replaces them.

Windows up to ``MINUTE_HORIZON_S`` (3 days: every alert window of the SRE
workbook) are summed from per-minute slots, from the minute holding
``now - window`` to the current one; longer windows (the 30-day budget) from
per-hour slots, from the hour holding ``now - window``, so they cover up to
one hour more than asked. Hours before the minute horizon are loaded from the
hourly rollup ``latency_hour`` (same columns, fed from spans like
``latency_minute``), so a restart reads 3 days of minutes, not 30. Those minutes
are counted from raw spans (kept 7 days) rather than read from ``latency_minute``:
the numbers are the same, and a grouped scan of spans is much faster than
deserialising 3 days of sumMap states, which made the first evaluation take a minute.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from dashboard.slo_queries import SPANS, Counts, SeriesKey, range_rows, step_rows
from sidetrace.store import Store

MINUTE_HORIZON_S = 3 * 86400
LATE_MINUTES = 2


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

    def _row(self, key: SeriesKey) -> int:
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = len(self.rows)
            if row >= len(self.data):
                self.data = np.concatenate([self.data, np.zeros_like(self.data)])
        return row

    def claim(self, when: int) -> int:
        """The slot for time ``when``, emptied if it held an older time."""
        index = (when // self.step) % len(self.labels)
        if self.labels[index] != when:
            self.labels[index] = when
            self.data[:, index] = 0
        return index

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
        rows = np.array([self._row(key) for key in table.keys], np.int64)
        times = np.unique(whens)
        index = np.array([self.claim(int(when)) for when in times], np.int64)
        where = index[np.searchsorted(times, whens)]
        if accumulate:
            np.add.at(self.data, (rows[table.series], where), table.values)
        else:
            self.data[rows[table.series], where] = table.values

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
    """Counts per series and window from the minute rollup, read incrementally."""

    def __init__(self) -> None:
        self._cuts: dict[str, tuple[int, ...]] = {}
        self._longest = 0.0
        self._minutes: _Ring | None = None
        self._hours: _Ring | None = None
        self._read_upto = 0

    def window_counts(
        self, store: Store, cuts: Mapping[str, Sequence[int]], windows: Sequence[float], now: float
    ) -> dict[float, dict[SeriesKey, Counts]]:
        """Like ``slo_queries.window_counts`` for windows of whole minutes."""
        if not windows or not cuts:
            return {}
        frozen = {service: tuple(values) for service, values in cuts.items()}
        longest = max(windows)
        if frozen != self._cuts or longest > self._longest or self._minutes is None:
            self._load(store, frozen, longest, now)
        else:
            self._refresh(store, now)
        current = math.floor(now / 60) * 60
        out: dict[float, dict[SeriesKey, Counts]] = {}
        for window in windows:
            if window <= MINUTE_HORIZON_S:
                ring, start = self._minutes, math.floor((now - window) / 60) * 60
            else:
                ring, start = self._hours, math.floor((now - window) / 3600) * 3600
            assert ring is not None
            out[window] = {
                key: ring.counts(row, len(frozen[key[0]]))
                for key, row in ring.total(start, current).items()
            }
        return out

    def _load(
        self, store: Store, cuts: dict[str, tuple[int, ...]], longest: float, now: float
    ) -> None:
        """Read the windows afresh: minutes of the horizon, hours before it from latency_hour.

        The minutes come from raw spans (kept 7 days, longer than the horizon), which
        ClickHouse scans much faster than it deserialises 3 days of minute sumMap states.
        """
        most = max(len(values) for values in cuts.values())
        current = math.floor(now / 60) * 60
        # The minute slots start on an hour, so hours from there on are sums of minutes.
        first_hour = math.floor((now - min(longest, MINUTE_HORIZON_S)) / 3600) * 3600
        minutes = _Ring((current - first_hour) // 60 + LATE_MINUTES + 63, 60, most)
        recent = _StepTable(step_rows(store, cuts, first_hour, current, 60, SPANS), most)
        minutes.fill(recent, first_hour + recent.steps * 60)
        hours = None
        if longest > MINUTE_HORIZON_S:
            hours = _Ring(int(longest // 3600) + 3, 3600, most)
            oldest = math.floor((now - longest) / 3600) * 3600
            if oldest < first_hour:
                older = step_rows(store, cuts, oldest, first_hour - 3600, 3600, "latency_hour")
                table = _StepTable(older, most)
                hours.fill(table, oldest + table.steps * 3600)
            hours.fill(recent, first_hour + recent.steps // 60 * 3600, accumulate=True)
        self._minutes, self._hours = minutes, hours
        self._cuts, self._longest, self._read_upto = cuts, longest, current

    def _refresh(self, store: Store, now: float) -> None:
        """Re-read the minutes since the last read (and a few before) and apply the changes."""
        minutes = self._minutes
        assert minutes is not None
        current = math.floor(now / 60) * 60
        start = self._read_upto - LATE_MINUTES * 60
        fresh = range_rows(store, self._cuts, start, current, 60)
        keys = set(minutes.rows) | {key for key, _ in fresh}
        empty = np.zeros(2 + 2 * minutes.cuts, np.int64)
        for minute in range(start, current + 1, 60):
            i = (minute - start) // 60
            for key in keys:
                values = fresh.get((key, i))
                row = empty if values is None else minutes.widen(values, len(self._cuts[key[0]]))
                delta = minutes.put(key, minute, row)
                if self._hours is not None and delta.any():
                    self._hours.add(key, minute // 3600 * 3600, delta)
        self._read_upto = current
