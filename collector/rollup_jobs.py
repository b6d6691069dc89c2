"""Periodic rollup jobs the collector runs beside its writer.

Latency rollups are materialized views; only the service-to-service edges need a
job (see ``collector/edge_rollup.py``). Its writes are idempotent, so several
replicas may run it; with a coordinator only the elected one does.
"""

from __future__ import annotations

import threading

from collector.edge_rollup import EdgeJobConfig, run_edge_job
from runtime.coordination import Leadership
from tracestore.store import Store


def start_rollup_jobs(
    store: Store,
    stop: threading.Event,
    edge_config: EdgeJobConfig | None = None,
    leadership: Leadership | None = None,
) -> list[threading.Thread]:
    """Start the periodic rollup threads; they exit when ``stop`` is set."""
    thread = threading.Thread(
        target=run_edge_job,
        args=(store, stop, edge_config or EdgeJobConfig(), leadership),
        name="edge-rollup",
        daemon=True,
    )
    thread.start()
    return [thread]
