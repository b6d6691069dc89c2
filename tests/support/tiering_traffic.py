"""Retention tiering's test traffic: one hot hour of traces (plain ones and one of each kind
worth keeping) written into a store, the tier's decisions and kept spans read back, and a
tiering job killed mid-move."""

from __future__ import annotations

import contextlib
import time

from tests.support import trace_generator as gen
from tests.support.polling import alive, eventually
from tracestore import tiering_queries as tq

MS = 1_000_000
DAY_S = 86_400
NORMAL = 400


def day_start_s(days_ago: int) -> int:
    """Midnight (UTC, epoch seconds) ``days_ago`` days ago."""
    return (int(time.time()) // DAY_S - days_ago) * DAY_S


def plain_trace(
    ids: gen.Ids,
    start_ns: int,
    root: str = "GET /",
    root_ms: int = 10,
    child_ms: int = 5,
    status: int = 0,
) -> list[gen.GenSpan]:
    """A frontend server span calling checkout's Charge."""
    trace_id, root_id = ids.trace(), ids.span()
    return [
        gen.GenSpan(trace_id, root_id, "", "frontend", root, start_ns, root_ms * MS),
        gen.GenSpan(
            trace_id,
            ids.span(),
            root_id,
            "checkout",
            "Charge",
            start_ns + MS,
            child_ms * MS,
            kind=gen.KIND_CLIENT,
            status_code=status,
        ),
    ]


class Traffic:
    """One hot hour: NORMAL plain traces and one of each kind worth keeping."""

    def __init__(self, store, day_s: int) -> None:
        ids = gen.Ids(21)
        base = (day_s + 10 * 3600) * 10**9
        self.normal = [plain_trace(ids, base + i * 10**9) for i in range(NORMAL)]
        self.error = plain_trace(ids, base + 1_000 * 10**9, status=2)
        self.slo = plain_trace(
            ids, base + 1_001 * 10**9, root="POST /pay", root_ms=320, child_ms=300
        )
        self.slow = plain_trace(ids, base + 1_002 * 10**9, root_ms=1_000)
        self.pinned = self.normal[7]
        spans = [s for t in [*self.normal, self.error, self.slo, self.slow] for s in t]
        gen.insert(store, spans)
        self.spans = len(spans)

    @staticmethod
    def tid(trace: list[gen.GenSpan]) -> str:
        return trace[0].trace_id


def tier_decisions(store) -> dict[str, tuple[int, list[str], int]]:
    rows = store.query(
        f"SELECT trace_id, d_kept, d_reasons, d_moved FROM {tq.latest_decisions_sql('1')}"
    )
    return {str(r[0]): (int(r[1]), list(r[2]), int(r[3])) for r in rows}


def kept_tier_counts(store) -> tuple[int, int]:
    """(rows, distinct spans) in the kept tier."""
    rows = store.query("SELECT count(), uniqExact(trace_id, span_id) FROM spans_kept")
    return int(rows[0][0]), int(rows[0][1])


KILL_CONFIG = {"buckets": 64, "keep_baseline": 0.5}  # many small chunks: killed mid-way


def kill_mid_move(url: str, store, now_s: float) -> None:
    """Run the tiering job in another process and SIGKILL it once it has copied something."""
    import os
    import signal
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from collector import tiering\n"
        "from tracestore.store import open_store\n"
        "store = open_store(sys.argv[1])\n"
        f"config = tiering.TieringConfig(**{KILL_CONFIG!r})\n"
        "while True:\n"  # runs until killed; every run after the first finds nothing to do
        "    tiering.run_tiering(store, config, now_s=float(sys.argv[2]))\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, url, str(now_s)])
    try:
        with contextlib.suppress(AssertionError):  # as before: after 120 s, kill it anyway
            eventually(
                lambda: alive(child, "the tiering job") or kept_tier_counts(store)[0],
                120,
                0.05,
                what="something copied",
            )
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
