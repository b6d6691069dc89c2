"""Notification bodies: the Alertmanager v4 webhook payload, Alertmanager's own API, Slack.

The ``alertmanager`` form is what Alertmanager itself posts to webhook receivers,
so any of its receivers (or an Alertmanager relay) takes it unchanged. The
``alertmanager_api`` form is what Prometheus posts to an Alertmanager's
``/api/v2/alerts`` (the receiver's url): a list of postable alerts, ``startsAt``
the firing time, ``endsAt`` set once resolved, so Alertmanager routes, groups,
silences and inhibits them itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"
# Annotations of a firing alert linking its example traces (dashboard/example_links.py).
EXAMPLE_ANNOTATIONS = {"example_slowest_trace": "slowest", "example_error_trace": "erroneous"}


def rfc3339(seconds: float | None) -> str:
    """Go's RFC 3339 form with milliseconds and a Z (Alertmanager's zero time for None)."""
    if seconds is None:
        return ZERO_TIME
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass(frozen=True)
class OutgoingAlert:
    """One alert as it goes out: firing, or resolved (with its end)."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None
    generator_url: str
    fingerprint: str

    def as_postable(self) -> dict[str, Any]:
        """Alertmanager API v2's ``postableAlert``: no ``endsAt`` while it fires."""
        alert: dict[str, Any] = {
            "labels": dict(sorted(self.labels.items())),
            "annotations": dict(sorted(self.annotations.items())),
            "startsAt": rfc3339(self.starts_at),
            "generatorURL": self.generator_url,
        }
        if self.status == "resolved" and self.ends_at is not None:
            alert["endsAt"] = rfc3339(self.ends_at)
        return alert

    def as_alertmanager(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "labels": dict(sorted(self.labels.items())),
            "annotations": dict(sorted(self.annotations.items())),
            "startsAt": rfc3339(self.starts_at),
            "endsAt": rfc3339(self.ends_at if self.status == "resolved" else None),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }


def group_labels(labels: dict[str, str], group_by: tuple[str, ...]) -> dict[str, str]:
    return {k: labels[k] for k in sorted(group_by) if k in labels}


def group_key(groups: dict[str, str]) -> str:
    """Alertmanager's key for a group under the root route: ``{}:{a="b", c="d"}``."""
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(groups.items()))
    return "{}:{" + inner + "}"


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    if not maps:
        return {}
    first = maps[0]
    return {k: v for k, v in sorted(first.items()) if all(m.get(k) == v for m in maps[1:])}


def alertmanager_payload(
    receiver: str, groups: dict[str, str], alerts: list[OutgoingAlert], external_url: str
) -> dict[str, Any]:
    """The webhook body, version 4, exactly as Alertmanager sends it."""
    firing = any(a.status == "firing" for a in alerts)
    return {
        "version": "4",
        "groupKey": group_key(groups),
        "truncatedAlerts": 0,
        "status": "firing" if firing else "resolved",
        "receiver": receiver,
        "groupLabels": dict(sorted(groups.items())),
        "commonLabels": _common([a.labels for a in alerts]),
        "commonAnnotations": _common([a.annotations for a in alerts]),
        "externalURL": external_url,
        "alerts": [a.as_alertmanager() for a in alerts],
    }


def slack_payload(
    receiver: str, groups: dict[str, str], alerts: list[OutgoingAlert], external_url: str
) -> dict[str, Any]:
    """A Slack incoming-webhook message: one attachment, coloured by status."""
    firing = [a for a in alerts if a.status == "firing"]
    status = "FIRING" if firing else "RESOLVED"
    title = f"[{status}:{len(firing) or len(alerts)}] " + " ".join(
        v for _, v in sorted(groups.items())
    )
    lines = []
    for alert in alerts:
        summary = alert.annotations.get("summary") or alert.labels.get("alertname", "")
        examples = " ".join(
            f"<{alert.annotations[key]}|{label} trace>"
            for key, label in EXAMPLE_ANNOTATIONS.items()
            if key in alert.annotations
        )
        line = f"*{alert.status.upper()}* {summary} (since {rfc3339(alert.starts_at)})"
        lines.append(f"{line} · examples: {examples}" if examples else line)
    return {
        "text": title,
        "attachments": [
            {
                "color": "danger" if firing else "good",
                "title": title,
                "title_link": f"{external_url}/alerts",
                "text": "\n".join(lines),
                "fallback": title,
            }
        ],
    }


def alertmanager_api_payload(
    receiver: str, groups: dict[str, str], alerts: list[OutgoingAlert], external_url: str
) -> list[dict[str, Any]]:
    """The body of ``POST /api/v2/alerts``: the group's alerts as postable alerts."""
    return [a.as_postable() for a in alerts]


FORMATS = {
    "alertmanager": alertmanager_payload,
    "slack": slack_payload,
    "alertmanager_api": alertmanager_api_payload,
}
