"""``TraceColumns`` filled by the compiled decoder (``tracestore/_otlpdecode.c``).

The decoder reads ``ExportTraceServiceRequest`` bytes straight into one new list
per ``spans`` column, with the rules of ``otlp_columns`` (the reference, which the
differential tests hold it to). For a ClickHouse server it can instead write each
column's Native bytes as it reads (``NativeTraceColumns``): no Python object per
value, and nothing for the driver to do but send them. Where the extension is not
built, ``trace_columns`` hands out the Python ``TraceColumns`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

from tracestore import otlp_columns
from tracestore.otlp_columns import (
    SPAN_COLUMNS,
    ConversionStats,
    DecodeError,
    Limits,
    TraceColumns,
    Verdict,
)

try:
    from tracestore import _otlpdecode
except ImportError:  # not built (e.g. a source checkout without a compiler)
    _otlpdecode = None

ARRAY, KVLIST = 6, 7  # the type codes of otlp_columns
_MAX_U64 = 2**64 - 1


def _complex_text(code: int, data: bytes) -> str:
    """An array or kvlist value's text, as the Python decoder writes it."""
    message = (ArrayValue if code == ARRAY else KeyValueList).FromString(data)
    return otlp_columns._compact_json(MessageToDict(message))


if _otlpdecode is not None:
    _otlpdecode.init(DecodeError, _complex_text)


def _u64_window(limits: Limits, now_ns: int) -> tuple[int, int]:
    """The accepted window cut to unsigned 64 bits (start times are): the same verdicts."""
    lo, hi = limits.window(now_ns)
    return min(max(lo, 0), _MAX_U64), min(max(hi, 0), _MAX_U64)


def check_traces(raw: bytes, limits: Limits, now_ns: int) -> Verdict | None:
    """The receiver's verdict from the client's bytes alone, when every span passes.

    Raises DecodeError where protobuf would; returns None when some spans must be
    dropped (``otlp_columns.validate_traces`` then decodes and re-encodes)."""
    lo, hi = _u64_window(limits, now_ns)
    reject_times = limits.timestamp_policy == "reject"
    spans, *rejected = _otlpdecode.validate_traces(
        raw,
        lo,
        hi,
        reject_times,
        otlp_columns.MAX_TIME_NS,
        otlp_columns.MAX_SPAN_KIND,
        otlp_columns.MAX_STATUS_CODE,
    )
    return None if any(rejected) else Verdict(raw, spans)


class CompiledTraceColumns(TraceColumns):
    """Same columns and stats as ``TraceColumns``, one C pass per request appending to
    the batch's lists (which the garbage collector then leaves alone: they hold no
    containers it could free); short strings repeated across the batch's requests are
    one object."""

    def __init__(self, limits: Limits) -> None:
        super().__init__(limits)
        self._strings = _otlpdecode.new_cache()
        self._lists = tuple(self.columns[name] for name in SPAN_COLUMNS)

    def add(self, payload: bytes, received_ns: int) -> None:
        _decode(self.limits, self.stats, payload, received_ns, self._strings, self._lists)


def _decode(
    limits: Limits, stats: ConversionStats, payload: bytes, received_ns: int, cache, into
) -> None:
    """One request's spans appended to ``into`` (the column lists or a Native batch)."""
    lo, hi = _u64_window(limits, received_ns)
    _, truncated, clamped = _otlpdecode.decode_traces(
        payload, lo, hi, limits.max_attribute_length, otlp_columns._NO_VALUES, cache, into
    )
    stats.truncated_attributes += truncated
    stats.clamped_timestamps += clamped


class ColumnRefused(ValueError):
    """A request with a value its column cannot hold, found while encoding: the store
    would refuse any batch holding it."""


@dataclass(frozen=True, slots=True)
class EncodedColumn:
    """One INSERT column's Native bytes, written for the column type ``code`` (the
    encoder's code, see ``native_columns.column_code``), how many rows it holds, and
    whether every one is its type's default (0, '', []): an INSERT may leave it out."""

    code: int
    rows: int
    data: bytes
    only_defaults: bool = False

    def __len__(self) -> int:
        return self.rows


class NativeTraceColumns:
    """The ``spans`` columns of a batch as Native bytes, for a server whose column types
    are ``codes`` (in ``SPAN_COLUMNS`` order); what the writer asks of ``TraceColumns``."""

    def __init__(self, limits: Limits, codes: tuple[int, ...]) -> None:
        self.limits = limits
        self.stats = ConversionStats()
        self._codes = codes
        self._batch = _otlpdecode.new_native(codes)
        self._columns: dict[str, EncodedColumn] | None = None

    def add(self, payload: bytes, received_ns: int) -> None:
        """One request's spans, or none: DecodeError, or ``ColumnRefused`` for a value the
        table's column type cannot hold (what the server would refuse the batch for)."""
        try:
            _decode(self.limits, self.stats, payload, received_ns, None, self._batch)
        except OverflowError as exc:
            raise ColumnRefused(str(exc)) from None

    def __len__(self) -> int:
        return _otlpdecode.native_rows(self._batch)

    @property
    def columns(self) -> dict[str, EncodedColumn]:
        """The columns, once the batch is complete: each column's buffers are freed as
        its bytes are made (so a batch is not held twice), and no more rows come."""
        if self._columns is None:
            rows = len(self)
            defaults = _otlpdecode.native_defaults(self._batch)
            self._columns = {
                name: EncodedColumn(
                    code, rows, _otlpdecode.native_column(self._batch, i, True), defaults[i]
                )
                for i, (name, code) in enumerate(zip(SPAN_COLUMNS, self._codes, strict=True))
            }
        return self._columns


def available() -> bool:
    """Whether the extension is built."""
    return _otlpdecode is not None


def trace_columns(
    limits: Limits, compiled: bool = True, native_codes: tuple[int, ...] | None = None
) -> TraceColumns | NativeTraceColumns:
    """A span column builder: the compiled one when built and asked for, writing Native
    bytes when the server's column types (``native_codes``) are given."""
    if compiled and _otlpdecode is not None:
        if native_codes is not None:
            return NativeTraceColumns(limits, native_codes)
        return CompiledTraceColumns(limits)
    return TraceColumns(limits)
