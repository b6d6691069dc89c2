# Types of the C extension sidecar/_otlpspan.c (its docstrings say what each does).
from typing import Final

LANE_PACKED_LAYOUT: Final[str]

def span_with_ids(
    trace_id: str, span_id: str, parent_id: str, start_ns: int, end_ns: int, rest: bytes, /
) -> bytes: ...
def span_from_packed(packed: bytes, rest: bytes, /) -> bytes: ...
