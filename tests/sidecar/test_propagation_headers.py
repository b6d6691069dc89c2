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
    trace_flags,
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
    ("flags", "sampled", "random"),
    [
        ("00", False, False),
        ("01", True, False),
        ("02", False, True),  # Level 2: the trace id's right 7 bytes are random
        ("03", True, True),
        ("ff", True, True),  # undefined bits are read past
        ("fc", False, False),
    ],
)
def test_traceparent_flags_level_2(flags: str, sampled: bool, random: bool) -> None:
    parsed = parse_traceparent(f"00-{TID}-{SID}-{flags}")
    assert parsed is not None and (parsed.sampled, parsed.random) == (sampled, random)
    # Only the two defined flags are written; undefined bits are set to zero.
    assert trace_flags(sampled, random) == f"{int(flags, 16) & 3:02x}"
    assert (
        format_traceparent(TID, SID, sampled, random) == f"00-{TID}-{SID}-{int(flags, 16) & 3:02x}"
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ("a=1,b=2", [("a", "1"), ("b", "2")]),
        (["a=1", "b=2"], [("a", "1"), ("b", "2")]),  # several headers are combined in order
        ("a=1 , , b=2,", [("a", "1"), ("b", "2")]),  # empty members and OWS are allowed
        ("a=1,a=2,b=3", [("a", "1"), ("b", "3")]),  # duplicate keys: the first one stays
        # Level 1 keys: simple, and tenant@system
        ("tenant@system=v", [("tenant@system", "v")]),
        ("1tenant@sys-tem_1=v", [("1tenant@sys-tem_1", "v")]),
        ("k/x*y_z-1=va lue", [("k/x*y_z-1", "va lue")]),
        ("t" * 241 + "@" + "s" * 14 + "=1", [("t" * 241 + "@" + "s" * 14, "1")]),
        # Level 2: key = ( lcalpha / DIGIT ) 0*255 ( keychar ), "@" anywhere after the first
        ("1abc=1", [("1abc", "1")]),  # a key may start with a digit
        ("7=1", [("7", "1")]),
        ("tenant@1sys=1", [("tenant@1sys", "1")]),  # what follows "@" may start with a digit
        ("tenant@" + "s" * 15 + "=1", [("tenant@" + "s" * 15, "1")]),  # no 14-character cap
        ("a@b@c=1", [("a@b@c", "1")]),  # several "@"
        ("ab@=1", [("ab@", "1")]),  # "@" last
        ("1" * 256 + "=1", [("1" * 256, "1")]),
        ("1" * 257 + "=1", []),  # still at most 256 characters
        ("@abc=1", []),  # but never first
        ("_abc=1", []),  # nor any keychar but a letter or digit
        ("A=1", []),  # keys are lowercase
        ("aB=1", []),
        ("a.b=1", []),  # "." is no keychar
        ("a b=1", []),
        ("=1", []),  # empty key
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


@pytest.mark.parametrize(
    ("incoming", "outgoing"),
    [
        ("00", "00"),
        ("01", "01"),
        ("02", "02"),  # an unsampled trace with random ids stays flagged random
        ("03", "03"),
        ("0b", "03"),  # undefined bits dropped, the defined ones carried
        ("f8", "00"),
    ],
)
def test_propagator_carries_the_random_flag_of_a_continued_trace(
    incoming: str, outgoing: str
) -> None:
    prop = Propagator()
    span = prop.start({"traceparent": [f"00-{TID}-{SID}-{incoming}"]})
    assert span.random is bool(int(incoming, 16) & 2)
    expected = f"traceparent: 00-{TID}-{span.span_id}-{outgoing}\r\n"
    assert prop.header_lines(span).decode() == expected
    assert prop.header_pairs(span) == [("traceparent", expected[13:-2])]


@pytest.mark.parametrize("ratio", [0.0, 1.0])
def test_propagator_flags_ids_it_draws_random(ratio: float) -> None:
    prop = Propagator(ratio, b3_emit=True)
    for headers in ({}, {"traceparent": [f"ff-{TID}-{SID}-01"]}):  # none, or invalid: new trace
        span = prop.start(headers)
        assert span.random and span.parent_id == ""
        flags = "03" if ratio else "02"
        assert (
            prop.header_lines(span)
            .decode()
            .startswith(f"traceparent: 00-{span.trace_id}-{span.span_id}-{flags}\r\n")
        )


def test_propagator_does_not_flag_b3_ids_random() -> None:
    """B3 says nothing of how its ids were drawn, so the trace is not flagged random."""
    prop = Propagator()
    span = prop.start({"b3": [f"{TID}-{SID}-1"]})
    assert not span.random
    assert prop.header_lines(span).decode() == f"traceparent: 00-{TID}-{span.span_id}-01\r\n"


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
