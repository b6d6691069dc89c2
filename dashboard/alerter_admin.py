"""The alerter's admin port: ``/healthz``, ``/readyz`` and ``/metrics`` for Kubernetes probes.

``/healthz`` answers while the evaluation thread runs; ``/readyz`` once an
evaluation finished without a store error; ``/metrics`` says (Prometheus text)
whether this replica leads, and how long the last evaluation took, so an
operator sees which of several replicas is acting.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dashboard.slo_evaluator import SloEvaluator


def metrics_text(evaluator: SloEvaluator) -> str:
    snapshot = evaluator.snapshot
    leading = int(evaluator.leadership.check())
    return (
        "# HELP sidetrace_alerter_leader 1 while this replica leads the SLO evaluator's election\n"
        "# TYPE sidetrace_alerter_leader gauge\n"
        f"sidetrace_alerter_leader {leading}\n"
        "# HELP sidetrace_alerter_evaluation_duration_seconds how long the last evaluation took\n"
        "# TYPE sidetrace_alerter_evaluation_duration_seconds gauge\n"
        f"sidetrace_alerter_evaluation_duration_seconds {snapshot.duration_ms / 1000:.4f}\n"
        "# HELP sidetrace_alerter_evaluation_failed 1 if the last evaluation hit a store error\n"
        "# TYPE sidetrace_alerter_evaluation_failed gauge\n"
        f"sidetrace_alerter_evaluation_failed {int(bool(snapshot.error))}\n"
    )


def serve_admin(evaluator: SloEvaluator, host: str, port: int) -> ThreadingHTTPServer:
    """Serve the admin routes on a daemon thread; ``shutdown()`` the result to stop."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            if self.path == "/healthz":
                status, body = (200, "ok\n") if evaluator.running else (503, "stopped\n")
            elif self.path == "/readyz":
                ready = evaluator.snapshot.at > 0 and not evaluator.snapshot.error
                status, body = (200, "ready\n") if ready else (503, "not evaluated yet\n")
            elif self.path == "/metrics":
                status, body = 200, metrics_text(evaluator)
            else:
                status, body = 404, "not found\n"
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="alerter-admin", daemon=True).start()
    return server
