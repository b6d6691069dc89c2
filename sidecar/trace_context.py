"""Trace context headers: W3C Trace Context Levels 1 and 2, W3C Baggage passthrough, B3.

Pure functions over header values so the proxy's hot path and the tests share one
implementation. Invalid input never raises: it yields ``None`` (a new trace starts)
or, for ``tracestate``, an empty list (the list is dropped, the trace continues).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

SAMPLED_FLAG = 0x01
# Level 2: set when the rightmost 7 bytes of the trace id were drawn at random.
RANDOM_FLAG = 0x02
MAX_TRACESTATE_MEMBERS = 32
INVALID_TRACE_ID = "0" * 32
INVALID_SPAN_ID = "0" * 16

_TRACEPARENT_00 = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
# Future versions: the first four fields must parse; anything after flags must start with "-".
_TRACEPARENT_ANY = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# Level 2: key = ( lcalpha / DIGIT ) 0*255 ( keychar ), "@" allowed in keychar. Every
# Level 1 key (simple, or tenant@system) matches it, so one rule accepts both levels.
_TRACESTATE_KEY = re.compile(r"[a-z0-9][a-z0-9_\-*/@]{0,255}")
_TRACESTATE_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_B3_ID = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")


class TraceParent(NamedTuple):
    """The parsed ``traceparent``: ids as lowercase hex, ``flags`` as an int."""

    trace_id: str
    parent_id: str
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED_FLAG)

    @property
    def random(self) -> bool:
        return bool(self.flags & RANDOM_FLAG)


def parse_traceparent(values: str | Iterable[str] | None) -> TraceParent | None:
    """Parse one ``traceparent`` header; several headers or any violation give ``None``.

    Version ``ff`` is invalid; version ``00`` must be exactly 55 characters; higher
    versions are parsed leniently (first four fields, then optional ``-...``) as the
    spec asks. All-zero trace or parent ids are invalid. Hex must be lowercase.
    """
    if values is None:
        return None
    if not isinstance(values, str):
        listed = list(values)
        if len(listed) != 1:
            return None
        values = listed[0]
    value = values.strip(" \t")
    if value.startswith("00"):
        match = _TRACEPARENT_00.fullmatch(value)
        fields = match.groups() if match else None
    else:
        match = _TRACEPARENT_ANY.fullmatch(value)
        fields = match.groups()[1:4] if match and match.group(1) != "ff" else None
    if fields is None:
        return None
    trace_id, parent_id, flags = fields
    if trace_id == INVALID_TRACE_ID or parent_id == INVALID_SPAN_ID:
        return None
    return TraceParent(trace_id, parent_id, int(flags, 16))


def trace_flags(sampled: bool, random: bool) -> str:
    """The two defined flags as the header's two hex digits; undefined bits stay zero."""
    return _FLAGS[sampled | random << 1]


_FLAGS = ("00", "01", "02", "03")


def format_traceparent(trace_id: str, span_id: str, sampled: bool, random: bool = False) -> str:
    """Emit version ``00`` with the ``sampled`` and (Level 2) ``random`` flags."""
    return f"00-{trace_id}-{span_id}-{trace_flags(sampled, random)}"


def parse_tracestate(values: str | Iterable[str] | None) -> list[tuple[str, str]]:
    """Parse (possibly several, combined) ``tracestate`` headers into ``(key, value)`` pairs.

    Empty list members are skipped; a malformed member or more than 32 members drops
    the whole list (returns ``[]``); a repeated key keeps its first (leftmost) entry.
    """
    if values is None:
        return []
    combined = values if isinstance(values, str) else ",".join(values)
    members: list[tuple[str, str]] = []
    seen: set[str] = set()
    for raw in combined.split(","):
        member = raw.strip(" \t")
        if not member:
            continue
        key, sep, value = member.partition("=")
        if not sep or not _TRACESTATE_KEY.fullmatch(key) or not _TRACESTATE_VALUE.fullmatch(value):
            return []
        if key in seen:
            continue
        seen.add(key)
        members.append((key, value))
        if len(members) > MAX_TRACESTATE_MEMBERS:
            return []
    return members


def format_tracestate(members: Iterable[tuple[str, str]]) -> str:
    return ",".join(f"{key}={value}" for key, value in members)


class B3Context(NamedTuple):
    """A B3 context; ``sampled`` is ``None`` when the sender deferred the decision."""

    trace_id: str
    span_id: str
    sampled: bool | None


def _b3_trace_id(value: str) -> str | None:
    value = value.lower()
    if not _B3_ID.fullmatch(value):
        return None
    value = value.rjust(32, "0")
    return None if value == INVALID_TRACE_ID else value


def _b3_span_id(value: str) -> str | None:
    value = value.lower()
    if not _SPAN_ID.fullmatch(value) or value == INVALID_SPAN_ID:
        return None
    return value


_B3_SAMPLED = {"1": True, "d": True, "true": True, "0": False, "false": False}


def parse_b3_single(value: str | None) -> B3Context | None:
    """``b3: {TraceId}-{SpanId}[-{SamplingState}[-{ParentSpanId}]]``.

    A bare sampling state (``0``, ``1``, ``d``) carries no ids, so it cannot
    continue a trace and yields ``None``.
    """
    if not value:
        return None
    parts = value.strip().split("-")
    if len(parts) < 2 or len(parts) > 4:
        return None
    trace_id, span_id = _b3_trace_id(parts[0]), _b3_span_id(parts[1])
    if trace_id is None or span_id is None:
        return None
    sampled: bool | None = None
    if len(parts) >= 3:
        if parts[2].lower() not in _B3_SAMPLED:
            return None
        sampled = _B3_SAMPLED[parts[2].lower()]
    if len(parts) == 4 and _b3_span_id(parts[3]) is None:
        return None
    return B3Context(trace_id, span_id, sampled)


def parse_b3_multi(
    trace_id: str | None, span_id: str | None, sampled: str | None, flags: str | None
) -> B3Context | None:
    """``X-B3-TraceId``/``X-B3-SpanId``/``X-B3-Sampled``/``X-B3-Flags`` (debug implies sampled)."""
    if not trace_id or not span_id:
        return None
    tid, sid = _b3_trace_id(trace_id.strip()), _b3_span_id(span_id.strip())
    if tid is None or sid is None:
        return None
    decision: bool | None = None
    if flags is not None and flags.strip() == "1":
        decision = True
    elif sampled is not None:
        decision = _B3_SAMPLED.get(sampled.strip().lower())
    return B3Context(tid, sid, decision)


def format_b3_single(trace_id: str, span_id: str, sampled: bool) -> str:
    return f"{trace_id}-{span_id}-{'1' if sampled else '0'}"
