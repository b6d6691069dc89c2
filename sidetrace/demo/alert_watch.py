"""Tell the demo's user when an SLO alert changes state, from the dashboard's own JSON API."""

from __future__ import annotations

import httpx


class AlertWatch:
    """Remembers the alert events already shown and returns the new ones as sentences."""

    def __init__(self, dashboard_url: str) -> None:
        self.url = dashboard_url + "/api/v1/alerts/history"
        self.seen_up_to_ms = 0
        self.available = True

    def new_events(self) -> list[str]:
        if not self.available:
            return []
        try:
            response = httpx.get(self.url, params={"limit": 50}, timeout=5.0, trust_env=False)
        except httpx.HTTPError:
            return []
        if response.status_code == 404:
            self.available = False  # this build has no alerting
            return []
        if response.status_code != 200:
            return []
        events = [e for e in response.json().get("events", []) if e["atMs"] > self.seen_up_to_ms]
        if not events:
            return []
        self.seen_up_to_ms = max(e["atMs"] for e in events)
        return [describe(e) for e in sorted(events, key=lambda e: e["atMs"])]


def describe(event: dict) -> str:
    """One line per state change: ``ALERT payments-latency (page): pending -> firing``."""
    severity = event.get("severity") or event.get("labels", {}).get("severity", "")
    value = event.get("value")
    shown = f"  value {value:.3g}" if isinstance(value, int | float) else ""
    return (
        f"ALERT {event['alertname']} ({severity}): {event.get('from') or 'inactive'} -> "
        f"{event['to']}{shown}"
    )
