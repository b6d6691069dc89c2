"""The SLO evaluator: every ``interval``, query the rollups once, decide every alert,
record state changes, and hand notifications to the dispatcher.

One evaluation is one ClickHouse query for all SLOs and threshold alerts over the
minutes not read yet (``slo_cache``; plus one over raw spans when the test-only
time scale makes sub-minute windows), a read of the silences, and one insert of
the state changes. Delivery happens on
the dispatcher's threads, never in the evaluation. The latest result is kept
as a ``Snapshot`` for the pages and the JSON API.

Several replicas may run: each evaluates (so its pages and cache stay warm),
but only the one that leads ``leadership`` (see ``runtime.coordination``)
records state changes and notifies, and it checks before each write and each
send. Every notification decision is recorded in ``alert_deliveries`` before it
goes out (``alert_record``); a process that wins the election starts from the
recorded alert states and decisions and sends what was decided but not sent.
Without a coordinator the one process leads alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from dashboard.alert_delivery import Attempt, Decision, Dispatcher, Notifier
from dashboard.alert_record import DeliveryLog
from dashboard.alert_rules import (
    FIRING,
    PENDING,
    RESOLVED,
    Alert,
    AlertBook,
    AlertState,
    Transition,
)
from dashboard.alert_silences import Silence, SilenceStore
from dashboard.example_links import alert_annotations
from dashboard.slo_cache import RollupCache
from runtime.coordination import Leadership, SoleLeader
from slospec.slo_config import (
    Filters,
    Slo,
    SloAlert,
    SloConfigSet,
    ThresholdAlert,
    format_duration,
)
from tracestore.alert_queries import (
    AlertEvent,
    NotificationAttempt,
    last_states,
    write_attempt,
    write_events,
)
from tracestore.delivery_queries import FAILED, SENT, SUPERSEDED
from tracestore.slo_math import (
    bucket_cut,
    budget_remaining,
    burn_rate,
    effective_threshold_ns,
    quantile_above,
    sli,
    time_to_exhaustion,
    windows_exceed,
)
from tracestore.slo_queries import Counts, is_whole_minutes, rollup_services, window_counts
from tracestore.store import Store, StoreError

log = logging.getLogger(__name__)

DISPLAY_WINDOWS = (3600.0, 21600.0)  # burn rate "now" on the SLO page: 1 h and 6 h
JOB = "slo-evaluator"  # the election this evaluator stands in


@dataclass(frozen=True)
class AlertView:
    alert: Alert
    state: AlertState
    value: str
    silenced: bool


@dataclass(frozen=True)
class SloStatus:
    slo: Slo
    good: int
    total: int
    sli: float
    budget_remaining: float
    burn_rates: tuple[tuple[float, float], ...]  # (window seconds, rate) for DISPLAY_WINDOWS
    time_to_exhaustion_s: float | None
    effective_threshold_ns: float
    alerts: tuple[AlertView, ...] = ()


@dataclass(frozen=True)
class Snapshot:
    at: float = 0.0
    duration_ms: float = 0.0
    slos: tuple[SloStatus, ...] = ()
    alerts: tuple[AlertView, ...] = ()
    config_errors: tuple[str, ...] = ()
    error: str = ""


@dataclass
class CutPlan:
    """The cuts and windows one evaluation needs."""

    cuts: dict[str, list[int]] = field(default_factory=dict)
    windows: set[float] = field(default_factory=set)

    def cut(self, service: str, threshold_ns: float) -> int:
        cuts = self.cuts.setdefault(service, [])
        value = bucket_cut(threshold_ns)
        if value not in cuts:
            cuts.append(value)
        return cuts.index(value)


class SloEvaluator:
    def __init__(
        self,
        store: Store,
        config: SloConfigSet,
        external_url: str,
        dispatcher: Dispatcher | None = None,
        clock: Callable[[], float] = time.time,
        leadership: Leadership | None = None,
        identity: str = "",
    ) -> None:
        self.store = store
        self.config = config
        self.external_url = external_url.rstrip("/")
        self.clock = clock
        self.leadership = leadership or SoleLeader(JOB)
        self.deliveries = DeliveryLog(store, identity)
        self.dispatcher = dispatcher or Dispatcher(
            self._log_attempt, may_send=lambda: self.leadership.check(confirm=True)
        )
        self.notifier = Notifier(
            self.dispatcher.submit, self.external_url, self._decide, self._example_links
        )
        # What each alert covers and over how long, for its example traces.
        self._alert_scopes: dict[str, tuple[Filters, float]] = {}
        self._term = 0  # the leadership term this evaluator acts in; 0 while it follows
        self._taking_over = False  # a term began; its first evaluation is not done yet
        self.book = AlertBook()
        self.cache = RollupCache()
        self.silence_store = SilenceStore(store)
        self.snapshot = Snapshot(config_errors=tuple(config.all_errors()))
        self.display_windows = tuple(w / config.time_scale for w in DISPLAY_WINDOWS)
        self._silences: list[Silence] = []
        self._restored = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def stand(self, leadership: Leadership, identity: str) -> None:
        """Act only while leading ``leadership``; ``identity`` names this process in the
        delivery record. Call before ``start``."""
        self.leadership = leadership
        self.deliveries.leader = identity

    # ---- one evaluation -------------------------------------------------------------

    def known_services(self) -> set[str]:
        return rollup_services(self.store)

    def evaluate_once(self, now: float | None = None) -> Snapshot:
        """Evaluate every SLO and alert once; never raises for store trouble."""
        with self._lock:
            started = time.perf_counter()
            now = self.clock() if now is None else now
            try:
                snapshot = self._evaluate(now)
            except StoreError as exc:
                log.warning("SLO evaluation failed: %s", exc)
                snapshot = Snapshot(
                    at=now,
                    slos=self.snapshot.slos,
                    alerts=self.snapshot.alerts,
                    config_errors=tuple(self.config.all_errors()),
                    error=str(exc),
                )
            duration = (time.perf_counter() - started) * 1000
            if self._taking_over and self._restored and self._term:
                self._taking_over = False
                log.info(
                    "SLO evaluator: first evaluation as leader (term %d) done in %.0f ms",
                    self._term,
                    duration,
                )
            self.snapshot = Snapshot(
                snapshot.at,
                duration,
                snapshot.slos,
                snapshot.alerts,
                snapshot.config_errors,
                snapshot.error,
            )
            return self.snapshot

    def _follow_leadership(self) -> bool:
        """Whether this evaluation may act; on a change of term start over from the record."""
        term = self.leadership.term if self.leadership.check() else 0
        if term != self._term:
            self._term = term
            self._taking_over = True
            dropped = self.dispatcher.discard()
            self.book = AlertBook()
            self.notifier.restore({})
            self._restored = False
            if term:
                log.info("SLO evaluator: leading (term %d); resuming from the record", term)
            else:
                log.warning(
                    "SLO evaluator: not leading; evaluating without recording or notifying"
                    + (f" ({dropped} queued notification(s) left to the leader)" if dropped else "")
                )
        return term != 0

    def _evaluate(self, now: float) -> Snapshot:
        acting = self._follow_leadership()
        self.config.reload(self.known_services)
        slos, thresholds = self.config.slos, self.config.threshold_alerts
        plan = CutPlan(windows=set(self.display_windows))
        for slo in slos:
            plan.cut(slo.filters.service, slo.threshold_ns)
            plan.windows.add(slo.window_s)
            for alert in slo.alerts:
                plan.windows |= {w for bw in alert.windows for w in (bw.long_s, bw.short_s)}
        for rule in thresholds:
            plan.cut(rule.filters.service, rule.threshold_ns)
            plan.windows.add(rule.window_s)
        minute_windows = sorted(w for w in plan.windows if is_whole_minutes(w))
        keep = self.leadership.check if acting else None
        counts = self.cache.window_counts(self.store, plan.cuts, minute_windows, now, keep)
        raw_windows = sorted(w for w in plan.windows if not is_whole_minutes(w))
        counts.update(window_counts(self.store, plan.cuts, raw_windows, now))

        by_service: dict[tuple[float, str], list[tuple[str, int, Counts]]] = {}
        for window, series in counts.items():
            for (service, name, kind), c in series.items():
                by_service.setdefault((window, service), []).append((name, kind, c))

        def tally(
            window: float, filters: Filters, threshold_ns: float, ok: bool
        ) -> tuple[int, int]:
            index = plan.cut(filters.service, threshold_ns)
            good = total = 0
            for name, kind, c in by_service.get((window, filters.service), ()):
                if filters.matches(name, kind):
                    good += (c.ok_good if ok else c.good)[index]
                    total += c.calls
            return good, total

        def calls(window: float, filters: Filters) -> int:
            return sum(
                c.calls
                for name, kind, c in by_service.get((window, filters.service), ())
                if filters.matches(name, kind)
            )

        results: list[tuple[Alert, bool, str]] = []
        statuses = []
        for slo in slos:

            def rate(window: float, slo: Slo = slo) -> float:
                good, total = tally(window, slo.filters, slo.threshold_ns, slo.errors_count_as_bad)
                return burn_rate(good, total, slo.target)

            good, total = tally(
                slo.window_s, slo.filters, slo.threshold_ns, slo.errors_count_as_bad
            )
            remaining = budget_remaining(good, total, slo.target)
            shown = tuple((w, rate(w)) for w in self.display_windows)
            statuses.append(
                SloStatus(
                    slo=slo,
                    good=good,
                    total=total,
                    sli=sli(good, total),
                    budget_remaining=remaining,
                    burn_rates=shown,
                    time_to_exhaustion_s=time_to_exhaustion(remaining, shown[0][1], slo.window_s),
                    effective_threshold_ns=effective_threshold_ns(slo.threshold_ns),
                )
            )
            for policy_alert in slo.alerts:
                rates = {w: rate(w) for bw in policy_alert.windows for w in (bw.long_s, bw.short_s)}
                enough = policy_alert.policy.min_events
                condition = any(
                    windows_exceed(bw.factor, rates[bw.long_s], rates[bw.short_s])
                    and calls(bw.long_s, slo.filters) >= enough
                    for bw in policy_alert.windows
                )
                value = ", ".join(f"{format_duration(w)}: {r:.2f}x" for w, r in rates.items())
                alert = _slo_alert(slo, policy_alert)
                longest = max((bw.long_s for bw in policy_alert.windows), default=slo.window_s)
                self._alert_scopes[alert.fingerprint] = (slo.filters, longest)
                results.append((alert, condition, value))
        for rule in thresholds:
            good, total = tally(rule.window_s, rule.filters, rule.threshold_ns, False)
            value = f"{sli(good, total):.2%} of {total} calls at or under the threshold"
            condition = quantile_above(good, total, rule.quantile)
            alert = _threshold_alert(rule)
            self._alert_scopes[alert.fingerprint] = (rule.filters, rule.window_s)
            results.append((alert, condition and total >= rule.policy.min_events, value))

        if not self._restored:
            self._restore([a for a, _, _ in results], now, acting)
        transitions = self.book.update(results, now)
        silenced = self._silenced(now)
        current = self.book.current()
        if acting and self.leadership.check():  # fenced: the record and the notifications
            self._record(transitions, silenced)
            alerts = [(a, s) for a, s, _ in current]
            self.notifier.notify(alerts, silenced, self.config.receivers, now)
        views = tuple(
            AlertView(a, s, v, a.fingerprint in silenced)
            for a, s, v in sorted(current, key=lambda x: x[0].name)
        )
        statuses = [
            replace(s, alerts=tuple(v for v in views if v.alert.labels.get("slo") == s.slo.name))
            for s in statuses
        ]
        return Snapshot(now, 0.0, tuple(statuses), views, tuple(self.config.all_errors()))

    def _example_links(self, alert: Alert, now: float) -> dict[str, str]:
        """Links to the slowest and erroneous traces of a firing alert's window (kept)."""
        scope = self._alert_scopes.get(alert.fingerprint)
        if scope is None:
            return {}
        filters, window_s = scope
        return alert_annotations(
            self.store, self.external_url, alert.name, filters, now - window_s, now
        )

    # ---- silences, history, restore -------------------------------------------------

    def _silenced(self, now: float) -> set[str]:
        """Fingerprints silenced now; if silences cannot be read, the last ones read apply."""
        try:
            self._silences = self.silence_store.all()
        except StoreError as exc:
            log.warning("could not read silences, using the last ones read: %s", exc)
        return {
            fp
            for fp, alert in self.book.alerts.items()
            if any(s.silences(alert.labels, now) for s in self._silences)
        }

    def _record(self, transitions: list[Transition], silenced: set[str]) -> None:
        events = [
            AlertEvent(
                at_ms=int(t.at * 1000),
                fingerprint=t.alert.fingerprint,
                alertname=t.alert.name,
                severity=t.alert.labels.get("severity", ""),
                kind=t.alert.kind,
                from_state=t.before,
                to_state=t.after.state,
                value=t.value,
                silenced=t.alert.fingerprint in silenced,
                starts_at_ms=int((t.after.active_at or 0) * 1000),
                ends_at_ms=int((t.after.resolved_at or 0) * 1000),
                labels=tuple(sorted(t.alert.labels.items())),
                annotations=tuple(sorted(t.alert.annotations.items())),
            )
            for t in transitions
        ]
        try:
            write_events(self.store, events)
        except StoreError as exc:
            log.warning("could not record %d alert state change(s): %s", len(transitions), exc)

    def _decide(self, decisions: list[Decision]) -> bool:
        """Record a round of notification decisions before they go out (fenced)."""
        if not self.leadership.check():
            return False
        try:
            self.deliveries.decided(decisions, self._term)
        except StoreError as exc:
            log.warning("could not record notifications, deciding again next time: %s", exc)
            return False
        return True

    def _log_attempt(self, attempt: Attempt) -> None:
        """Every attempt goes to the notification log; outcomes also to the delivery record
        (a fact about a send already made, so written whoever leads now)."""
        n = attempt.notification
        if attempt.outcome in (SENT, FAILED, SUPERSEDED) and n.id:
            self.deliveries.outcome(n, attempt.outcome, self._term)
        write_attempt(
            self.store,
            NotificationAttempt(
                at_ms=int(attempt.at * 1000),
                receiver=n.receiver.name,
                group_key=n.group_key,
                status=n.status,
                fingerprints=tuple(n.fingerprints),
                attempt=attempt.attempt,
                outcome=attempt.outcome,
                http_status=attempt.http_status,
                error=attempt.error,
            ),
        )

    def _restore(self, alerts: list[Alert], now: float, acting: bool) -> None:
        """Continue the episodes recorded before a restart or by the previous leader; when
        acting, also what each group was last told, and send what was decided but not sent.
        """
        last = {
            fp: (r.state, r.starts_at_ms / 1000, r.at_ms / 1000, r.ends_at_ms / 1000)
            for fp, r in last_states(self.store).items()
        }
        for alert in alerts:
            state, active_at, at, ended = last.get(alert.fingerprint, ("", 0.0, 0.0, 0.0))
            if state in (PENDING, FIRING):
                self.book.restore(alert, AlertState(state, active_at, at))
            elif state == RESOLVED:  # so a resolution not yet notified still goes out
                self.book.restore(alert, AlertState(state, active_at, at, ended or at))
        if acting:
            self.notifier.restore(self.deliveries.last_decisions(now))
            unsent = self.deliveries.unsent(now, self.config.receivers, self._term)
            if unsent:
                log.info("SLO evaluator: sending %d notification(s) decided before", len(unsent))
            for notification in unsent:
                if self.leadership.check():
                    self.dispatcher.submit(notification)
        self._restored = True

    # ---- the loop ---------------------------------------------------------------------

    def start(self, interval: float) -> None:
        """Evaluate every ``interval`` seconds on a background thread."""

        def loop() -> None:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    self.evaluate_once()
                except Exception:
                    log.exception("SLO evaluation crashed; retrying next interval")
                self._stop.wait(max(0.0, interval - (time.monotonic() - started)))

        self._thread = threading.Thread(target=loop, name="slo-evaluator", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """The evaluation thread is alive (for the alerter's health check)."""
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.dispatcher.stop(timeout)


def _scope(filters: Filters) -> str:
    out = filters.service
    if filters.operation:
        out += f" {filters.operation}"
    if filters.route:
        out += f" route {filters.route}"
    return out


def _slo_alert(slo: Slo, alert: SloAlert) -> Alert:
    policy = alert.policy
    labels = {
        "alertname": slo.name,
        "severity": policy.severity,
        "slo": slo.name,
        **slo.filters.labels(),
        **dict(policy.labels),
    }
    windows = " or ".join(
        f"{bw.factor:g}x over {format_duration(bw.long_s)} and {format_duration(bw.short_s)}"
        for bw in alert.windows
    )
    annotations = {
        "summary": f"{slo.name}: latency error budget burning too fast ({policy.severity})",
        "description": (
            f"{slo.target * 100:g}% of {_scope(slo.filters)} requests should take at most "
            f"{format_duration(slo.threshold_ns / 1e9)} over {format_duration(slo.window_s)}; "
            f"the budget burns faster than {windows}."
        ),
        **dict(policy.annotations),
    }
    return Alert(
        labels, annotations, policy.for_s, policy.keep_firing_for_s, policy.receivers, "slo"
    )


def _threshold_alert(rule: ThresholdAlert) -> Alert:
    policy = rule.policy
    labels = {
        "alertname": rule.name,
        "severity": policy.severity,
        **rule.filters.labels(),
        **dict(policy.labels),
    }
    summary = (
        f"{rule.name}: p{rule.quantile * 100:g} of {_scope(rule.filters)} above "
        f"{format_duration(rule.threshold_ns / 1e9)}"
    )
    annotations = {
        "summary": summary,
        "description": rule.description or f"{summary} over {format_duration(rule.window_s)}",
        **dict(policy.annotations),
    }
    return Alert(
        labels, annotations, policy.for_s, policy.keep_firing_for_s, policy.receivers, "threshold"
    )
