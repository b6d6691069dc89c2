"""Silences: label matchers with a start, an end, an author and a comment.

A silenced alert is still evaluated, recorded and shown; only its delivery is
suppressed. Matchers follow Alertmanager: ``=``, ``!=``, ``=~`` and ``!~``,
regular expressions anchored at both ends; a missing label matches as "".
Silences live in ClickHouse (``alert_silences``) so the dashboard can create
them while a separate ``sidetrace alerter`` process applies them.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from dashboard.alert_payloads import rfc3339
from dashboard.user_regex import AnchoredPattern, PatternError
from tracestore.silence_queries import SilenceRow, latest_silences, write_silence
from tracestore.store import Store

log = logging.getLogger(__name__)

OPERATORS = ("=", "!=", "=~", "!~")
# name, operator, then a "quoted" value (backslash escapes) or, as Alertmanager's
# matcher parser accepts, an unquoted one without quotes, commas or braces
_MATCHER = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"
    r'(?:"((?:[^"\\]|\\.)*)"|((?:[^"{},=!~\s](?:[^"{},]*[^"{},\s])?)?))\s*$'
)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LATEST = 7_258_118_400.0  # 2200-01-01: later (or NaN) times are mistakes
# Field limits: a silence is a few short lines, and every page lists all of them.
MAX_MATCHERS = 32
MAX_NAME_CHARS = 128
MAX_VALUE_CHARS = 1024
MAX_AUTHOR_CHARS = 256
MAX_COMMENT_CHARS = 4096
MAX_MATCHERS_TEXT_CHARS = 16_384
# One written matcher: a name, an operator and a quoted value whose characters may be escaped.
MAX_MATCHER_CHARS = MAX_NAME_CHARS + 2 * MAX_VALUE_CHARS + 16


class SilenceError(ValueError):
    """A silence that cannot be created, with a message for the user."""


def check_text(value: str, what: str, limit: int) -> str:
    """``value`` if it is storable text of at most ``limit`` characters, else SilenceError."""
    if len(value) > limit:
        raise SilenceError(f"{what} is {len(value)} characters long (at most {limit})")
    if "\x00" in value:
        raise SilenceError(f"{what} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SilenceError(f"{what} is not valid Unicode text (lone surrogate)") from None
    return value


@dataclass(frozen=True)
class Matcher:
    """One label matcher; a regular expression (``=~``, ``!~``) is RE2, fully anchored."""

    name: str
    op: str
    value: str
    pattern: AnchoredPattern | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.name) > MAX_NAME_CHARS or not _NAME.match(self.name):
            raise SilenceError(f"invalid label name {self.name[:80]!r}")
        if self.op not in OPERATORS:
            raise SilenceError(f"invalid matcher operator {self.op[:8]!r} (use = != =~ !~)")
        check_text(self.value, "matcher value", MAX_VALUE_CHARS)
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "pattern", AnchoredPattern(self.value))
            except PatternError as exc:
                raise SilenceError(str(exc)) from None

    def matches(self, labels: dict[str, str]) -> bool:
        value = labels.get(self.name, "")
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.pattern is not None
        found = self.pattern.matches(value)
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def _split_matchers(body: str) -> list[str]:
    """Split at commas outside double quotes (where backslash escapes), in one pass.

    A scanner, not a regular expression: backtracking over an unclosed quote full of
    escapes took quadratic time.
    """
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for i, char in enumerate(body):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append(body[start:i])
            start = i + 1
    parts.append(body[start:])
    return parts


def parse_matchers(text: str) -> list[Matcher]:
    """``alertname="x", severity=~"page|ticket"`` -> matchers (braces optional)."""
    check_text(text, "matchers", MAX_MATCHERS_TEXT_CHARS)
    body = text.strip().removeprefix("{").removesuffix("}")
    parts = _split_matchers(body)
    matchers = []
    for part in parts:
        if not part.strip():
            continue
        if len(part) > MAX_MATCHER_CHARS:  # before any regular expression sees it
            raise SilenceError(
                f"matcher {part.strip()[:40]!r}… is longer than {MAX_MATCHER_CHARS} characters"
            )
        match = _MATCHER.match(part)
        if match is None:
            raise SilenceError(f'cannot read matcher {part.strip()[:80]!r}: write name="value"')
        quoted, bare = match.group(3), match.group(4)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        matchers.append(Matcher(match.group(1), match.group(2), value))
    if not matchers:
        raise SilenceError("a silence needs at least one matcher")
    if len(matchers) > MAX_MATCHERS:
        raise SilenceError(f"a silence has at most {MAX_MATCHERS} matchers")
    return matchers


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        return "active" if now < self.ends_at else "expired"

    def silences(self, labels: dict[str, str], now: float) -> bool:
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    def as_json(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "matchers": [
                {
                    "name": m.name,
                    "value": m.value,
                    "isRegex": m.op in ("=~", "!~"),
                    "isEqual": m.op in ("=", "=~"),
                }
                for m in self.matchers
            ],
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at),
            "updatedAt": rfc3339(self.created_at),
            "createdBy": self.created_by,
            "comment": self.comment,
            "status": {"state": self.state(now)},
        }


def matcher_from_json(item: dict[str, Any]) -> Matcher:
    """Alertmanager API form: ``{"name", "value", "isRegex", "isEqual"}``."""
    try:
        regex, equal = item.get("isRegex", False), item.get("isEqual", True)
        name, value = item["name"], item["value"]
    except (KeyError, TypeError, AttributeError):
        raise SilenceError('each matcher needs "name" and "value"') from None
    if not isinstance(name, str) or not isinstance(value, str):
        raise SilenceError('a matcher\'s "name" and "value" are strings')
    if not isinstance(regex, bool) or not isinstance(equal, bool):
        raise SilenceError('a matcher\'s "isRegex" and "isEqual" are true or false')
    op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
    return Matcher(name, op[(regex, equal)], value)


def new_silence(
    matchers: list[Matcher],
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    now: float | None = None,
) -> Silence:
    now = time.time() if now is None else now
    for moment in (starts_at, ends_at):
        valid = isinstance(moment, int | float) and not isinstance(moment, bool)
        if not (valid and math.isfinite(moment) and 0 <= moment <= LATEST):
            raise SilenceError(f"time {str(moment)[:40]!r} is out of range (1970 to 2200)")
    if not matchers:
        raise SilenceError("a silence needs at least one matcher")
    if len(matchers) > MAX_MATCHERS:
        raise SilenceError(f"a silence has at most {MAX_MATCHERS} matchers")
    check_text(created_by, "createdBy", MAX_AUTHOR_CHARS)
    check_text(comment, "comment", MAX_COMMENT_CHARS)
    if ends_at <= starts_at:
        raise SilenceError("the end of a silence must be after its start")
    if ends_at <= now:
        raise SilenceError("the silence would already be over")
    if not created_by.strip():
        raise SilenceError("say who creates the silence (createdBy)")
    if not comment.strip():
        raise SilenceError("say why (comment)")
    return Silence(str(uuid.uuid4()), tuple(matchers), starts_at, ends_at, created_by, comment, now)


class SilenceStore:
    """Silences in ClickHouse; every change is a new version of the row."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def save(self, silence: Silence) -> None:
        write_silence(
            self.store,
            SilenceRow(
                id=silence.id,
                created_at_ms=int(silence.created_at * 1000),
                starts_at_ms=int(silence.starts_at * 1000),
                ends_at_ms=int(silence.ends_at * 1000),
                created_by=silence.created_by,
                comment=silence.comment,
                matcher_names=tuple(m.name for m in silence.matchers),
                matcher_ops=tuple(m.op for m in silence.matchers),
                matcher_values=tuple(m.value for m in silence.matchers),
            ),
        )

    def expire(self, silence_id: str, now: float | None = None) -> Silence | None:
        """End a silence now; None if there is no such silence."""
        now = time.time() if now is None else now
        found = next((s for s in self.all() if s.id == silence_id), None)
        if found is None:
            return None
        if found.state(now) == "expired":
            return found
        ended = Silence(
            found.id,
            found.matchers,
            min(found.starts_at, now),
            now,
            found.created_by,
            found.comment,
            found.created_at,
        )
        self.save(ended)
        return ended

    def all(self) -> list[Silence]:
        silences = []
        for row in latest_silences(self.store):
            try:
                matchers = tuple(
                    Matcher(n, o, v)
                    for n, o, v in zip(
                        row.matcher_names, row.matcher_ops, row.matcher_values, strict=True
                    )
                )
            except SilenceError as exc:  # stored before RE2 or the limits: never applied
                log.warning("ignoring silence %s: %s", row.id, exc)
                continue
            silences.append(
                Silence(
                    id=row.id,
                    matchers=matchers,
                    starts_at=row.starts_at_ms / 1000,
                    ends_at=row.ends_at_ms / 1000,
                    created_by=row.created_by,
                    comment=row.comment,
                    created_at=row.created_at_ms / 1000,
                )
            )
        return sorted(silences, key=lambda s: s.created_at, reverse=True)
