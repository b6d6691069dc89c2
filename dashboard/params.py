"""Parsing of user-supplied query parameters: durations, times, lookbacks, limits.

Each parser raises ``BadQuery`` with a message fit for a 400 response, so route
handlers never let a malformed value reach a query (or turn into a 500). Digits
are ASCII only (``str.isdigit`` takes "²", which ``int`` then refuses), and every
number is bounded in length before it is converted.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from tracestore.trace_queries import BadQuery

NS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 10**9,
      "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86_400 * 10**9}  # fmt: skip
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h|d)")
_NUMBER = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
_INTEGER = re.compile(r"^-?[0-9]{1,15}$")
MAX_DURATION_CHARS = 64
MAX_TIME_CHARS = 64
MAX_DURATION_NS = 10 * 86_400 * 10**9
MAX_LOOKBACK_NS = 31 * 86_400 * 10**9
LOOKBACKS = ("15m", "1h", "3h", "6h", "12h", "24h", "2d", "7d")


def parse_duration(text: str, bare_unit: str | None = "ms") -> int:
    """Nanoseconds from Go-style durations ("1.5s", "1m30s"); bare numbers are in bare_unit."""
    text = text.strip()
    if not text:
        raise BadQuery("empty duration")
    if len(text) > MAX_DURATION_CHARS:
        raise BadQuery(f"duration {text[:40]!r}… is too long: use e.g. 250ms, 1.5s, 2m")
    if _NUMBER.match(text):
        if bare_unit is None and text != "0":
            raise BadQuery(f"duration {text[:40]!r} needs a unit (ns, us, ms, s, m, h)")
        ns = int(float(text) * NS[bare_unit or "ms"])
    else:
        pos, ns = 0, 0
        for match in _DURATION_PART.finditer(text):
            if match.start() != pos:
                break
            ns += int(float(match.group(1)) * NS[match.group(2)])
            pos = match.end()
        if pos != len(text) or pos == 0:
            raise BadQuery(f"bad duration {text[:40]!r}: use e.g. 250ms, 1.5s, 2m")
    if ns > MAX_DURATION_NS:
        raise BadQuery(f"duration {text[:40]!r} is too long")
    return ns


def parse_lookback(text: str) -> int:
    ns = parse_duration(text, bare_unit=None)
    if ns <= 0 or ns > MAX_LOOKBACK_NS:
        raise BadQuery(f"lookback {text[:40]!r} must be between 1s and 31d")
    return ns


def parse_time(text: str) -> int:
    """Nanoseconds from ISO-8601 (naive means UTC) or Unix milliseconds."""
    text = text.strip()
    if len(text) > MAX_TIME_CHARS:
        raise BadQuery(f"time {text[:40]!r}… is too long: expected ISO-8601 or Unix milliseconds")
    if text.isascii() and text.isdigit():
        value = int(text)
        if value > 10**13:
            raise BadQuery(f"time {text[:40]!r}: expected Unix milliseconds or ISO-8601")
        return value * 1_000_000
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadQuery(f"bad time {text[:40]!r}: expected ISO-8601 or Unix milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if not 1970 <= moment.year <= 2200:
        raise BadQuery(f"time {text[:40]!r} is out of range")
    ns = int(moment.timestamp() * 1_000_000) * 1_000
    if ns < 0:
        raise BadQuery(f"time {text[:40]!r} is before 1970")
    return ns


def parse_micros(text: str, name: str) -> int:
    """Jaeger passes times as Unix microseconds."""
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 17:
        raise BadQuery(f"unable to parse param '{name}': {text[:40]!r} is not Unix microseconds")
    return int(text) * 1_000


def parse_int(text: str, name: str, low: int, high: int) -> int:
    text = text.strip()
    if not _INTEGER.match(text):
        raise BadQuery(f"{name} must be an integer, got {text[:40]!r}")
    value = int(text)
    if not low <= value <= high:
        raise BadQuery(f"{name} must be between {low} and {high}, got {value}")
    return value


def time_range(
    start: str | None, end: str | None, lookback: str | None, default_lookback: str = "1h"
) -> tuple[int, int]:
    """(start_ns, end_ns) from absolute start/end or a lookback ending now (or at ``end``)."""
    end_ns = parse_time(end) if end else time.time_ns()
    start_ns = parse_time(start) if start else end_ns - parse_lookback(lookback or default_lookback)
    if start_ns >= end_ns:
        raise BadQuery("time range is empty: start must be before end")
    if end_ns - start_ns > MAX_LOOKBACK_NS:
        raise BadQuery("time range is longer than 31 days")
    return start_ns, end_ns


def describe_range(start_ns: int, end_ns: int) -> str:
    fmt = "%Y-%m-%d %H:%M:%S UTC"
    a = datetime.fromtimestamp(start_ns / 1e9, UTC).strftime(fmt)
    b = datetime.fromtimestamp(end_ns / 1e9, UTC).strftime(fmt)
    return f"{a} to {b}"
