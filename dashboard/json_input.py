"""JSON from users (request bodies, the Jaeger ``tags`` parameter), parsed without surprises.

``json.loads`` alone turns ``[`` x 100,000 into RecursionError, ``1e400`` into
infinity, a 5,000-digit integer into a ValueError about digit limits and
``"\\ud800"`` into a string no store can encode. Here each is a ``BadJson`` whose
message says what is wrong, fit for a 400.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 32
MAX_NUMBER_CHARS = 40


class BadJson(ValueError):
    """User JSON that cannot be used, with a message for the user."""


def _number(text: str) -> float | int:
    if len(text) > MAX_NUMBER_CHARS:
        raise BadJson(f"number {text[:20]}… is too long ({len(text)} characters)")
    value = float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(value, float) and not math.isfinite(value):
        raise BadJson(f"number {text} is out of range")
    return value


def _constant(name: str) -> Any:
    raise BadJson(f"{name} is not a JSON number")


def _check(value: Any, what: str) -> None:
    """Depth and text of every nested value, without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise BadJson(f"{what} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _text(item, what)
        elif isinstance(item, dict):
            for key, child in item.items():
                _text(key, what)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)


def _text(text: str, what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadJson(
            f"{what} holds a lone surrogate (\\ud800-\\udfff): not Unicode text"
        ) from None


def parse_json(data: str | bytes, what: str = "the body") -> Any:
    """The value of ``data``; BadJson names ``what`` when it is not usable JSON."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadJson(f"{what} is not UTF-8 text") from None
    try:
        value = json.loads(data, parse_int=_number, parse_float=_number, parse_constant=_constant)
    except RecursionError:
        raise BadJson(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    except BadJson:
        raise
    except json.JSONDecodeError as exc:
        raise BadJson(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    _check(value, what)
    return value


def parse_json_object(data: str | bytes, what: str = "the body") -> dict[str, Any]:
    value = parse_json(data, what)
    if not isinstance(value, dict):
        raise BadJson(f"{what} must be a JSON object")
    return value
