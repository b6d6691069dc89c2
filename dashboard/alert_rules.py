"""Alert states: inactive -> pending -> firing -> resolved, with ``for`` and ``keep_firing_for``.

The same rules as Prometheus: a true condition makes an alert pending, and
firing once it has been true for ``for`` (at once when ``for`` is 0); a firing
alert whose condition turns false keeps firing for ``keep_firing_for`` and then
resolves; a pending alert whose condition turns false goes back to inactive
without a notification. ``startsAt`` is when the condition first became true.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

INACTIVE, PENDING, FIRING, RESOLVED = "inactive", "pending", "firing", "resolved"

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_SEPARATOR = 0xFF


def fingerprint(labels: dict[str, str]) -> str:
    """Alertmanager's label-set fingerprint (FNV-1a 64 over sorted names and values)."""
    value = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for byte in part.encode():
                value = ((value ^ byte) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
            value = ((value ^ _SEPARATOR) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"


@dataclass(frozen=True)
class AlertState:
    state: str = INACTIVE
    active_at: float | None = None  # condition first true in this episode: startsAt
    last_true_at: float | None = None
    resolved_at: float | None = None  # endsAt of a resolved alert
    fired_at: float | None = None  # when it went firing: the startsAt Prometheus sends


def step(
    previous: AlertState, condition: bool, now: float, for_s: float, keep_firing_for_s: float
) -> AlertState:
    """The state after one evaluation at ``now``."""
    if condition:
        ongoing = previous.state in (PENDING, FIRING) and previous.active_at is not None
        active_at = previous.active_at if ongoing else now
        assert active_at is not None
        firing = previous.state == FIRING or now - active_at >= for_s
        fired_at = None
        if firing:  # kept while it fires; restored states only know when it went pending
            fired_at = now if previous.state != FIRING else previous.fired_at or active_at + for_s
        return AlertState(FIRING if firing else PENDING, active_at, now, None, fired_at)
    if previous.state == FIRING:
        last_true = previous.last_true_at if previous.last_true_at is not None else now
        if now - last_true < keep_firing_for_s:
            return previous
        return replace(previous, state=RESOLVED, resolved_at=now)
    if previous.state == PENDING:
        return AlertState()
    return previous


@dataclass(frozen=True)
class Alert:
    """One alert instance: its identity (labels) and what it says (annotations)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    for_s: float
    keep_firing_for_s: float
    receivers: tuple[str, ...]
    kind: str  # "slo" or "threshold"
    fingerprint: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprint", fingerprint(self.labels))

    @property
    def name(self) -> str:
        return self.labels["alertname"]


@dataclass(frozen=True)
class Transition:
    alert: Alert
    before: str
    after: AlertState
    at: float
    value: str


@dataclass
class AlertBook:
    """The state of every alert across evaluations."""

    states: dict[str, AlertState] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    def update(self, results: list[tuple[Alert, bool, str]], now: float) -> list[Transition]:
        """Apply one evaluation: ``(alert, condition, value)`` for every configured alert.

        Alerts no longer configured resolve if they were firing, then are forgotten.
        """
        changes: list[Transition] = []
        seen = set()
        for alert, condition, value in results:
            seen.add(alert.fingerprint)
            before = self.states.get(alert.fingerprint, AlertState())
            after = step(before, condition, now, alert.for_s, alert.keep_firing_for_s)
            self.states[alert.fingerprint] = after
            self.alerts[alert.fingerprint] = alert
            self.values[alert.fingerprint] = value
            if after.state != before.state:
                changes.append(Transition(alert, before.state, after, now, value))
        for fp in [fp for fp in self.states if fp not in seen]:
            before = self.states.pop(fp)
            alert = self.alerts.pop(fp)
            self.values.pop(fp, None)
            if before.state == FIRING:
                after = replace(before, state=RESOLVED, resolved_at=now)
                changes.append(Transition(alert, FIRING, after, now, "rule removed"))
        return changes

    def restore(self, alert: Alert, state: AlertState) -> None:
        """Continue an episode recorded before a restart."""
        self.states[alert.fingerprint] = state
        self.alerts[alert.fingerprint] = alert

    def current(self) -> list[tuple[Alert, AlertState, str]]:
        return [(self.alerts[fp], s, self.values.get(fp, "")) for fp, s in self.states.items()]
