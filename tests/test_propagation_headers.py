"""Table-driven tests of W3C Trace Context, B3 parsing and the sidecar's propagation rules."""

from __future__ import annotations

import pytest

from sidecar.propagation import Propagator
from sidecar.trace_context import (
    format_b3_single,
    format_traceparent,
    format_tracestate,
    parse_b3_multi,
    parse_b3_single,
    parse_traceparent,
    parse_tracestate,
)

TID = "0af7651916cd43dd8448eb211c80319c"
SID = "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"00-{TID}-{SID}-01", (TID, SID, 1)),
        (f"00-{TID}-{SID}-00", (TID, SID, 0)),
        (f"00-{TID}-{SID}-09", (TID, SID, 9)),  # unknown flag bits are carried, sampled read
        (f" 00-{TID}-{SID}-01\t", (TID, SID, 1)),  # optional whitespace around the value
        (f"01-{TID}-{SID}-01", (TID, SID, 1)),  # a future version parses leniently
        (f"cc-{TID}-{SID}-01-what-the-future-holds", (TID, SID, 1)),
        (f"cc-{TID}-{SID}-01x", None),  # future version: after flags must come "-"
        (f"ff-{TID}-{SID}-01", None),  # version ff is forbidden
        (f"00-{TID}-{SID}-01-extra", None),  # version 00 is exactly 55 characters
        (f"00-{TID.upper()}-{SID}-01", None),  # uppercase hex is invalid
        (f"00-{TID}-{SID.upper()}-01", None),
        (f"00-{'0' * 32}-{SID}-01", None),  # all-zero trace id
        (f"00-{TID}-{'0' * 16}-01", None),  # all-zero parent id
        (f"00-{TID[:-1]}-{SID}-01", None),
        (f"00-{TID}-{SID}-1", None),
        (f"00-{TID}-{SID}-0g", None),
        (f"0-{TID}-{SID}-01", None),
        (f"00_{TID}_{SID}_01", None),
        ("", None),
        ("garbage", None),
    ],
)
def test_parse_traceparent(value: str, expected: tuple | None) -> None:
    parsed = parse_traceparent(value)
    assert (tuple(parsed) if parsed else None) == expected


def test_traceparent_repeated_header_is_invalid_and_single_list_is_fine() -> None:
    value = f"00-{TID}-{SID}-01"
    assert parse_traceparent([value, value]) is None
    assert parse_traceparent([value]) == (TID, SID, 1)
    assert parse_traceparent(None) is None


def test_format_traceparent_emits_version_00() -> None:
    assert format_traceparent(TID, SID, True) == f"00-{TID}-{SID}-01"
    assert format_traceparent(TID, SID, False) == f"00-{TID}-{SID}-00"
    assert parse_traceparent(format_traceparent(TID, SID, True)).sampled


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("a=1,b=2", [("a", "1"), ("b", "2")]),
        (["a=1", "b=2"], [("a", "1"), ("b", "2")]),  # several headers are combined in order
        ("a=1 , , b=2,", [("a", "1"), ("b", "2")]),  # empty members and OWS are allowed
        ("a=1,a=2,b=3", [("a", "1"), ("b", "3")]),  # duplicate keys: the first one stays
        ("tenant@system=v", [("tenant@system", "v")]),
        ("1tenant@sys-tem_1=v", [("1tenant@sys-tem_1", "v")]),
        ("k/x*y_z-1=va lue", [("k/x*y_z-1", "va lue")]),
        ("A=1", []),  # keys are lowercase
        ("1abc=1", []),  # a simple key starts with a letter
        ("tenant@1sys=1", []),  # a system id starts with a letter
        ("tenant@" + "s" * 15 + "=1", []),  # system id at most 14 characters
        ("k=", []),  # empty value
        ("k=a,b", []),  # a member without "="
        ("k=a=b", []),  # "=" is not allowed in a value
        ("k=trailing ", [("k", "trailing")]),  # OWS after the value is list whitespace
        ("k=" + "v" * 256, [("k", "v" * 256)]),
        ("k=" + "v" * 257, []),  # values are at most 256 characters
        ("a" * 256 + "=1", [("a" * 256, "1")]),
        ("a" * 257 + "=1", []),  # keys are at most 256 characters
        (",".join(f"k{i}=v" for i in range(32)), [(f"k{i}", "v") for i in range(32)]),
        (",".join(f"k{i}=v" for i in range(33)), []),  # more than 32 members: dropped
        (None, []),
    ],
)
def test_parse_tracestate(values, expected: list) -> None:
    assert parse_tracestate(values) == expected


def test_format_tracestate_round_trips() -> None:
    members = [("congo", "t61rcWkgMzE"), ("rojo", "00f067aa0ba902b7")]
    assert parse_tracestate(format_tracestate(members)) == members


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"{TID}-{SID}-1", (TID, SID, True)),
        (f"{TID}-{SID}-0", (TID, SID, False)),
        (f"{TID}-{SID}-d", (TID, SID, True)),
        (f"{TID}-{SID}", (TID, SID, None)),
        (f"{TID}-{SID}-1-{SID}", (TID, SID, True)),
        (f"{TID[16:]}-{SID}-1", ("0" * 16 + TID[16:], SID, True)),  # 64-bit trace ids pad
        (f"{TID.upper()}-{SID}-1", (TID, SID, True)),
        (f"{TID}-{SID}-x", None),
        (f"{TID}-{'0' * 16}-1", None),
        (f"{'0' * 32}-{SID}-1", None),
        (f"{TID}-{SID}-1-bad", None),
        ("1", None),  # sampling state alone cannot continue a trace
        ("", None),
    ],
)
def test_parse_b3_single(value: str, expected: tuple | None) -> None:
    parsed = parse_b3_single(value)
    assert (tuple(parsed) if parsed else None) == expected


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((TID, SID, "1", None), (TID, SID, True)),
        ((TID, SID, "true", None), (TID, SID, True)),
        ((TID, SID, "0", None), (TID, SID, False)),
        ((TID, SID, None, "1"), (TID, SID, True)),  # debug implies sampled
        ((TID, SID, None, None), (TID, SID, None)),
        ((TID, None, "1", None), None),
        (("xyz", SID, "1", None), None),
    ],
)
def test_parse_b3_multi(args: tuple, expected: tuple | None) -> None:
    parsed = parse_b3_multi(*args)
    assert (tuple(parsed) if parsed else None) == expected


def test_format_b3_single() -> None:
    assert format_b3_single(TID, SID, True) == f"{TID}-{SID}-1"


def test_propagator_continues_w3c_and_rewrites_parent() -> None:
    prop = Propagator()
    span = prop.start({"traceparent": [f"00-{TID}-{SID}-01"], "tracestate": ["a=1,a=2"]})
    assert (span.trace_id, span.parent_id, span.sampled, span.tracestate) == (TID, SID, True, "a=1")
    assert span.span_id != SID and len(span.span_id) == 16
    lines = prop.header_lines(span).decode()
    assert lines == f"traceparent: 00-{TID}-{span.span_id}-01\r\ntracestate: a=1\r\n"


def test_propagator_follows_unsampled_parent_even_at_ratio_one() -> None:
    span = Propagator(1.0).start({"traceparent": [f"00-{TID}-{SID}-00"]})
    assert not span.sampled and span.had_context


def test_propagator_invalid_traceparent_starts_new_trace_and_ignores_tracestate() -> None:
    span = Propagator().start({"traceparent": [f"ff-{TID}-{SID}-01"], "tracestate": ["a=1"]})
    assert span.trace_id != TID and span.parent_id == "" and span.tracestate == ""
    assert not span.had_context


def test_propagator_accepts_b3_and_emits_it_when_asked() -> None:
    prop = Propagator(b3_emit=True)
    span = prop.start({"x-b3-traceid": [TID], "x-b3-spanid": [SID], "x-b3-sampled": ["1"]})
    assert (span.trace_id, span.parent_id, span.sampled) == (TID, SID, True)
    assert f"b3: {TID}-{span.span_id}-1\r\n" in prop.header_lines(span).decode()
    assert "x-b3-traceid" in prop.replaced()
    assert "x-b3-traceid" not in Propagator().replaced()


@pytest.mark.parametrize(("ratio", "low", "high"), [(0.0, 0, 0), (1.0, 200, 200), (0.5, 60, 140)])
def test_root_sampling_ratio(ratio: float, low: int, high: int) -> None:
    prop = Propagator(ratio)
    sampled = sum(prop.start({}).sampled for _ in range(200))
    assert low <= sampled <= high


@pytest.mark.parametrize("b3_emit", [False, True])
def test_header_lines_match_header_pairs(b3_emit: bool) -> None:
    prop = Propagator(b3_emit=b3_emit)
    span = prop.start({"traceparent": [f"00-{TID}-{SID}-01"], "tracestate": ["k=v"]})
    pairs = "".join(f"{k}: {v}\r\n" for k, v in prop.header_pairs(span))
    assert prop.header_lines(span).decode() == pairs
