"""The C lane's record contract is named and checked when telemetry is imported, and the
httptools path queues its records in the same shape.

A lane queues ``(LANE_RECORDS, fields, packed)``: ``fields`` a ``LaneFields`` struct
sequence, ``packed`` the ids and times in ``LANE_PACKED_LAYOUT``. If the C side and
``sidecar.telemetry_record`` ever disagree (a field added, dropped or moved, another
packing), importing telemetry must fail with a message naming both sides, not run
with RED keys and spans built from the wrong fields.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from sidecar import _http1scan, _otlpspan
from sidecar.telemetry_record import (
    LANE_FIELDS,
    LANE_PACKED,
    LANE_PACKED_LAYOUT,
    LANE_RECORDS,
    ExchangeFields,
    RecordContractError,
    check_lane_contract,
    lane_packed,
    shared_fields,
)


def test_the_c_modules_name_the_fields_and_layout_telemetry_reads() -> None:
    assert _http1scan.LaneFields.__match_args__ == LANE_FIELDS
    assert _http1scan.LANE_PACKED_LAYOUT == _otlpspan.LANE_PACKED_LAYOUT == LANE_PACKED_LAYOUT
    check_lane_contract(LANE_FIELDS, LANE_PACKED_LAYOUT, LANE_PACKED_LAYOUT)


@pytest.mark.parametrize(
    ("fields", "layout", "message"),
    [
        (LANE_FIELDS[:-1], LANE_PACKED_LAYOUT, "LaneFields has fields"),
        ((*LANE_FIELDS, "bytes_in"), LANE_PACKED_LAYOUT, "LaneFields has fields"),
        (("client", "kind", *LANE_FIELDS[2:]), LANE_PACKED_LAYOUT, "LaneFields has fields"),
        (LANE_FIELDS, LANE_PACKED_LAYOUT.replace("qqB", "qqH"), "packs lane records as"),
    ],
    ids=["dropped", "added", "moved", "repacked"],
)
def test_a_mismatch_is_refused(fields, layout, message) -> None:
    with pytest.raises(RecordContractError, match=message):
        check_lane_contract(fields, layout)


# Swaps two of the C type's fields before telemetry is first imported, as a stale
# build of the extension would.
STALE_BUILD = textwrap.dedent(
    """
    import collections
    from sidecar import _http1scan
    names = list(_http1scan.LaneFields.__match_args__)
    names[3], names[4] = names[4], names[3]
    _http1scan.LaneFields = collections.namedtuple("LaneFields", names)
    import sidecar.telemetry
    """
)


def test_importing_telemetry_against_a_mismatched_build_fails_loudly() -> None:
    done = subprocess.run(
        [sys.executable, "-c", STALE_BUILD], capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "RecordContractError" in done.stderr
    assert "'target', 'method'" in done.stderr and "rebuild the C extensions" in done.stderr


def test_a_packed_record_reads_back_by_name() -> None:
    trace, span, parent = bytes(range(1, 17)), bytes(range(17, 25)), bytes(range(25, 33))
    packed = LANE_PACKED.pack(trace, span, parent, 1_000, 3_500, 1 | 2)
    fields = _http1scan.LaneFields(
        (2, ("10.0.0.9", 5555), ("127.0.0.1", 8080), b"POST", b"/a?b=1", b"api:80", b"curl/8",
         "", 201, "")
    )  # fmt: skip
    signature, trace_id, span_id, parent_id, start, end = LANE_RECORDS.digest(fields, packed)
    assert signature is fields
    assert (trace_id, span_id, parent_id, start, end) == (
        trace.hex(), span.hex(), parent.hex(), 1_000, 3_500
    )  # fmt: skip
    record = LANE_RECORDS.record(fields, packed)
    assert (record.method, record.target, record.status, record.server_address) == (
        "POST", "/a?b=1", 201, "api:80"
    )  # fmt: skip
    assert (record.peer_address, record.peer_port, record.user_agent) == (
        "10.0.0.9",
        5555,
        "curl/8",
    )
    unsampled = LANE_PACKED.pack(trace, span, bytes(8), 1, 2, 0)
    assert LANE_RECORDS.digest(fields, unsampled)[1:4] == ("", span.hex(), "")


@pytest.mark.parametrize("parent", [bytes(range(25, 33)), b""], ids=["child", "root"])
def test_a_packed_span_encodes_as_one_from_hex_ids(parent: bytes) -> None:
    trace, span, rest = bytes(range(1, 17)), bytes(range(17, 25)), b"\x2a\x03GET"
    packed = LANE_PACKED.pack(trace, span, parent or bytes(8), 7, 9, 1 | (2 if parent else 0))
    expected = _otlpspan.span_with_ids(trace.hex(), span.hex(), parent.hex(), 7, 9, rest)
    assert _otlpspan.span_from_packed(packed, rest) == expected


def test_the_httptools_path_packs_as_a_lane_and_keeps_the_http_version() -> None:
    trace, span, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "00f067aa0ba902b7"
    assert ExchangeFields._fields == (*LANE_FIELDS, "version")
    fields = ExchangeFields(
        2, ("10.0.0.9", 5555), ("127.0.0.1", 8080), b"PROPFIND", b"/a", b"", b"", "", 207, "",
        "1.0",
    )  # fmt: skip
    packed = lane_packed(trace, span, parent, True, 1_000, 3_500)
    assert LANE_RECORDS.digest(fields, packed) == (fields, trace, span, parent, 1_000, 3_500)
    record = LANE_RECORDS.record(fields, packed)
    assert (record.method, record.protocol_version, record.server_address) == (
        "PROPFIND", "1.0", "127.0.0.1"
    )  # fmt: skip
    root = lane_packed(trace, span, "", False, 1, 2)
    assert LANE_RECORDS.digest(fields, root)[1:4] == ("", span, "")
    assert _otlpspan.span_from_packed(root, b"") == _otlpspan.span_with_ids(
        trace, span, "", 1, 2, b""
    )
    lane_fields = _http1scan.LaneFields(fields[:-1])
    assert LANE_RECORDS.record(lane_fields, packed).protocol_version == "1.1"
    assert lane_fields != fields  # (so their summaries are never confused)


def test_consecutive_exchange_records_share_their_fields() -> None:
    values = (
        3, ("10.0.0.9", 5555), ("10.0.0.7", 80), b"GET", b"/users/1", b"api", b"curl/8", "",
        200, "", "1.1",
    )  # fmt: skip
    first = shared_fields(None, values)
    equal = tuple(bytes(bytearray(v)) if type(v) is bytes else v for v in values)
    assert equal[3] is not values[3] and shared_fields(first, equal) is first
    nxt = shared_fields(first, (*equal[:4], b"/users/2", *equal[5:]))
    assert type(nxt) is ExchangeFields and nxt.target == b"/users/2"
    assert all(a is b for a, b in zip(first, nxt, strict=True) if a == b)
