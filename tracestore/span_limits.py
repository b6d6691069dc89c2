"""What the collector accepts of a span: attribute length and the timestamp window.

Its own light module so the CLI reads these defaults without importing protobuf.
"""

from __future__ import annotations

from dataclasses import dataclass

NS = 1_000_000_000


@dataclass(frozen=True)
class Limits:
    """What the collector accepts: attribute length and the timestamp window."""

    max_attribute_length: int = 4096
    max_past_s: float = 86_400.0
    max_future_s: float = 3_600.0
    timestamp_policy: str = "clamp"  # "clamp" or "reject"

    def window(self, now_ns: int) -> tuple[int, int]:
        return now_ns - int(self.max_past_s * NS), now_ns + int(self.max_future_s * NS)
