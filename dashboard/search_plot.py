"""Duration-over-time scatter of search results, laid out for an inline SVG."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dashboard.trace_queries import TraceSummary

WIDTH, HEIGHT, PAD_LEFT, PAD_BOTTOM, PAD_TOP = 900, 170, 60, 22, 10


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


def scatter(found: list[TraceSummary], start_ns: int, end_ns: int) -> Plot | None:
    """Start time on x (the searched range), duration on y (linear from 0 to the max)."""
    if not found:
        return None
    span_ns = max(1, end_ns - start_ns)
    max_dur = max(1, max(s.duration_ns for s in found))
    plot_w, plot_h = WIDTH - PAD_LEFT - 10, HEIGHT - PAD_BOTTOM - PAD_TOP

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
    return Plot(WIDTH, HEIGHT, points, y_ticks, x_ticks, PAD_LEFT, HEIGHT - PAD_BOTTOM)
