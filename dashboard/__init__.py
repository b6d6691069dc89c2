"""The Starlette dashboard, its JSON APIs (own, Jaeger, Prometheus) and the SLO alerter.

The listening port is written here once: the dashboard, the alerter's links and the
all-in-one stack read it without importing Starlette.
"""

PORT = 16686  # Jaeger UI's port: Jaeger clients and users' habits find it there
EXTERNAL_URL = f"http://127.0.0.1:{PORT}"
SLO_INTERVAL_S = 30.0  # seconds between SLO evaluations, in the dashboard and the alerter
