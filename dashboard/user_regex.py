"""Regular expressions that users supply, compiled with RE2 (linear time, no backtracking).

Python's ``re`` backtracks: ``(.*.*.*.*)*z`` against a 16-character label holds the GIL
for tens of seconds, freezing every thread of the process. RE2 (Go's ``regexp``
syntax, which Alertmanager uses) matches in time linear in the input and refuses
the features that need backtracking (back-references, look-around). A pattern
matches a whole string, never a part of it, as Alertmanager anchors matchers
(``^(?:PATTERN)$``).
"""

from __future__ import annotations

import re2

MAX_PATTERN_CHARS = 1024
# RE2 refuses a pattern whose compiled program would need more memory than this.
MAX_PROGRAM_BYTES = 1 << 20

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error goes to the caller, not to stderr
_OPTIONS.max_mem = MAX_PROGRAM_BYTES


class PatternError(ValueError):
    """A pattern RE2 cannot use, with a message for the user."""


class AnchoredPattern:
    """A user pattern, validated on its own and matched against whole strings."""

    def __init__(self, pattern: str) -> None:
        if len(pattern) > MAX_PATTERN_CHARS:
            raise PatternError(
                f"regular expression is {len(pattern)} characters long "
                f"(at most {MAX_PATTERN_CHARS})"
            )
        try:
            self._regexp = re2.compile(pattern, options=_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise PatternError(f"invalid regular expression {pattern[:80]!r}: {reason}") from None
        except UnicodeEncodeError:
            raise PatternError("regular expression is not valid Unicode text") from None
        self.pattern = pattern

    def matches(self, text: str) -> bool:
        """True when the pattern matches all of ``text`` (RE2's ANCHOR_BOTH)."""
        try:
            return self._regexp.fullmatch(text) is not None
        except UnicodeEncodeError:
            return False
