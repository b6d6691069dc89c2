"""``TraceColumns`` filled by the compiled decoder (``collector/_otlpdecode.c``).

The decoder reads ``ExportTraceServiceRequest`` bytes straight into one new list
per ``spans`` column, with the rules of ``otlp_columns`` (the reference, which the
differential tests hold it to). Where the extension is not built, ``trace_columns``
hands out the Python ``TraceColumns`` instead.
"""

from __future__ import annotations

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.common.v1.common_pb2 import ArrayValue, KeyValueList

from collector import otlp_columns
from collector.otlp_columns import SPAN_COLUMNS, DecodeError, Limits, TraceColumns

try:
    from collector import _otlpdecode
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


class CompiledTraceColumns(TraceColumns):
    """Same columns and stats as ``TraceColumns``, one C pass per request."""

    def add(self, payload: bytes, received_ns: int) -> None:
        lo, hi = self.limits.window(received_ns)
        # Start times are unsigned 64-bit: a window past either end clamps the same.
        lo, hi = min(max(lo, 0), _MAX_U64), min(max(hi, 0), _MAX_U64)
        columns, truncated, clamped = _otlpdecode.decode_traces(
            payload, lo, hi, self.limits.max_attribute_length, otlp_columns._NO_VALUES
        )
        for values, name in zip(columns, SPAN_COLUMNS, strict=True):
            self.columns[name] += values
        self.stats.truncated_attributes += truncated
        self.stats.clamped_timestamps += clamped


def trace_columns(limits: Limits, compiled: bool = True) -> TraceColumns:
    """A span column builder: the compiled one when built and asked for."""
    if compiled and _otlpdecode is not None:
        return CompiledTraceColumns(limits)
    return TraceColumns(limits)
