"""Duration-over-time scatter of search results, laid out for an inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tracestore.trace_queries import TraceSummary

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP, PAD_RIGHT = 900, 170, 60, 22, 10, 10
NS_PER_S = 10**9


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    r: float
    trace_id: str
    error: bool
    title: str


@dataclass(frozen=True)
class Plot:
    width: int
    height: int
    points: list[Point]
    y_ticks: list[tuple[float, int]]  # (y, duration ns)
    x_ticks: list[tuple[float, int]]  # (x, time ns)
    left: int
    bottom: int
    start_ns: int  # x of ``left``
    end_ns: int  # x of ``width - PAD_RIGHT``


def x_extent(found: list[TraceSummary]) -> tuple[int, int]:
    """The results' start times, padded a little on each side (at least a second wide).

    Fitted to the results rather than the searched range: the results are the newest N,
    so over the whole range every dot would sit at its right edge.
    """
    first = min(s.start_ns for s in found)
    last = max(s.start_ns for s in found)
    pad = max((last - first) // 20, NS_PER_S // 2)
    return first - pad, last + pad


def scatter(found: list[TraceSummary]) -> Plot | None:
    """Start time on x (fitted to the results), duration on y (linear from 0 to the max)."""
    if not found:
        return None
    start_ns, end_ns = x_extent(found)
    span_ns = max(1, end_ns - start_ns)
    max_dur = max(1, max(s.duration_ns for s in found))
    plot_w, plot_h = WIDTH - PAD_LEFT - PAD_RIGHT, HEIGHT - PAD_BOTTOM - PAD_TOP

    def x_of(t: int) -> float:
        return round(PAD_LEFT + plot_w * min(1.0, max(0.0, (t - start_ns) / span_ns)), 1)

    def y_of(d: int) -> float:
        return round(PAD_TOP + plot_h * (1 - d / max_dur), 1)

    points = [
        Point(
            x=x_of(s.start_ns),
            y=y_of(s.duration_ns),
            r=round(min(9.0, 3 + math.log10(max(1, s.span_count))), 1),
            trace_id=s.trace_id,
            error=s.error_count > 0,
            title=f"{s.root_service}: {s.root_name} ({s.span_count} spans)",
        )
        for s in found
    ]
    y_ticks = [(y_of(max_dur * f // 4), max_dur * f // 4) for f in range(5)]
    x_ticks = [(x_of(start_ns + span_ns * f // 4), start_ns + span_ns * f // 4) for f in range(5)]
    return Plot(
        WIDTH, HEIGHT, points, y_ticks, x_ticks, PAD_LEFT, HEIGHT - PAD_BOTTOM, start_ns, end_ns
    )
