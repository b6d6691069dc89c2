"""SLO files: the model, loading (sidetrace or OpenSLO v1 YAML), validation and reload.

A file is refused as a whole when anything in it is wrong; every problem is
reported as ``FILE:LINE: FIELD: message``. Services are checked against the
services seen in spans; when the store has seen no service at all (a fresh
install, SLOs declared before the first request) the check is skipped with a
warning, since refusing would make the first deployment impossible.

At reload a file that became invalid keeps its previous version running and
its errors are reported; the other files are unaffected.

``time_scale`` (tests and the demo only; ``--time-scale``) divides every duration
of the file except latency thresholds: SLO and alert windows, ``for``,
``keep_firing_for``, ``repeat_interval``. End-to-end tests use it to see a
30-day alerting policy play out in a minute.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from slospec.slo_openslo import RECEIVERS_ANNOTATION, openslo_to_native, split_names
from slospec.slo_yaml import (
    Document,
    Issue,
    Path_,
    YamlSyntaxError,
    field_name,
    read_documents,
    schema_issues,
)

log = logging.getLogger(__name__)

OPENSLO_UNKNOWN = ("not supported by sidetrace", "supported")

SPAN_KINDS = {
    "unspecified": 0,
    "internal": 1,
    "server": 2,
    "client": 3,
    "producer": 4,
    "consumer": 5,
}
_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h|d|w)")

# The Google SRE workbook's multi-window, multi-burn-rate policy for a 30-day budget:
# (factor, long window, short window); both windows must exceed the factor.
DEFAULT_WINDOWS = {
    "page": ((14.4, 3600.0, 300.0), (6.0, 21600.0, 1800.0)),
    "ticket": ((3.0, 86400.0, 7200.0), (1.0, 259200.0, 21600.0)),
}


# An alert fires only on a window holding at least this many calls, so a handful of
# slow requests at night cannot page or open a ticket (``min_events`` overrides it).
DEFAULT_MIN_EVENTS = 100


def parse_duration(text: str) -> float:
    """``"1h30m"`` -> 5400.0 seconds (the schema has checked the form)."""
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def format_duration(seconds: float) -> str:
    """Short human form: 300ms, 5m, 1h30m, 30d."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    out, rest = "", seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            count = int(rest // size)
            out, rest = out + f"{count}{unit}", rest - count * size
    if rest or not out:
        out += f"{rest:g}s"
    return out


class SloConfigError(Exception):
    """One or more SLO files are invalid; ``errors`` are ``FILE:LINE: FIELD: message``."""

    def __init__(self, errors: list[str]) -> None:
        errors = list(dict.fromkeys(errors))  # two checks may report the same problem
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Filters:
    """Which spans count: a service, optionally one operation, route and span kind.

    ``route`` matches span names equal to it or ending in ``" " + route`` (HTTP
    span names are ``"{method} {route}"``).
    """

    service: str
    operation: str | None = None
    route: str | None = None
    span_kind: int | None = None

    def matches(self, span_name: str, span_kind: int) -> bool:
        if self.operation is not None and span_name != self.operation:
            return False
        if self.route is not None and not (
            span_name == self.route or span_name.endswith(" " + self.route)
        ):
            return False
        return self.span_kind is None or span_kind == self.span_kind

    def labels(self) -> dict[str, str]:
        out = {"service": self.service}
        if self.operation:
            out["operation"] = self.operation
        if self.route:
            out["route"] = self.route
        return out


@dataclass(frozen=True)
class BurnWindow:
    factor: float
    long_s: float
    short_s: float


@dataclass(frozen=True)
class AlertPolicy:
    """When and whom to alert: shared by burn-rate and threshold alerts."""

    severity: str
    for_s: float = 0.0
    keep_firing_for_s: float = 0.0
    receivers: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    min_events: int = DEFAULT_MIN_EVENTS  # calls the (long) window needs before it counts


@dataclass(frozen=True)
class SloAlert:
    policy: AlertPolicy
    windows: tuple[BurnWindow, ...]


@dataclass(frozen=True)
class Slo:
    name: str
    filters: Filters
    threshold_ns: float
    target: float  # a fraction, e.g. 0.995
    window_s: float
    errors_count_as_bad: bool
    alerts: tuple[SloAlert, ...]
    description: str = ""
    source: str = ""  # FILE:LINE, for messages
    service_at: str = ""  # FILE:LINE: FIELD of the service, for messages


@dataclass(frozen=True)
class ThresholdAlert:
    """ "p<quantile> of service/operation > threshold for D", evaluated over ``window_s``."""

    name: str
    filters: Filters
    quantile: float
    threshold_ns: float
    window_s: float
    policy: AlertPolicy
    description: str = ""
    source: str = ""
    service_at: str = ""


@dataclass(frozen=True)
class Receiver:
    name: str
    url: str
    format: str = "alertmanager"
    repeat_interval_s: float = 4 * 3600.0
    send_resolved: bool = True
    timeout_s: float = 10.0
    group_by: tuple[str, ...] = ("alertname", "severity")
    # How to reach it (dashboard/receiver_transport.py): secrets are read from files at send time.
    bearer_token_file: str | None = None
    basic_auth_username: str | None = None
    basic_auth_password_file: str | None = None
    ca_file: str | None = None


@dataclass(frozen=True)
class SloFile:
    path: str
    slos: tuple[Slo, ...] = ()
    threshold_alerts: tuple[ThresholdAlert, ...] = ()
    receivers: tuple[Receiver, ...] = ()


class _Builder:
    """Turns schema-valid documents into the model, collecting semantic issues."""

    def __init__(self, path: str, time_scale: float) -> None:
        self.path = path
        self.scale = time_scale
        self.issues: list[tuple[Document, Issue]] = []
        self.doc: Document | None = None

    def fail(self, where: Path_, message: str) -> None:
        assert self.doc is not None
        self.issues.append((self.doc, Issue(where, message)))

    def source(self, where: Path_) -> str:
        assert self.doc is not None
        return f"{self.path}:{self.doc.line_of(where)}"

    def field_at(self, where: Path_) -> str:
        return f"{self.source(where)}: {field_name(where)}"

    def duration(self, value: str | None, default: float, scaled: bool = True) -> float:
        seconds = default if value is None else parse_duration(value)
        return seconds / self.scale if scaled else seconds

    def filters(self, item: dict[str, Any]) -> Filters:
        kind = item.get("span_kind")
        return Filters(
            service=item["service"],
            operation=item.get("operation"),
            route=item.get("route"),
            span_kind=SPAN_KINDS[kind] if kind is not None else None,
        )

    def threshold(self, value: str, where: Path_) -> float:
        seconds = parse_duration(value)
        if seconds <= 0:
            self.fail(where, f"{value!r} is out of range: the latency threshold must be > 0")
        return seconds * 1e9

    def target(self, value: float | str, where: Path_) -> float:
        percent = float(value[:-1]) if isinstance(value, str) else float(value)
        if not 0 < percent < 100:
            self.fail(
                where,
                f"{value!r} is out of range: target is a percentage between 0 and 100 "
                "(exclusive), e.g. 99.5",
            )
        elif percent <= 1 and not isinstance(value, str):
            self.fail(
                where,
                f"{value!r} is out of range: target is a percentage (99.5 means 99.5%); "
                f"write {percent * 100:g} for {percent * 100:g}%",
            )
        return percent / 100

    def policy(self, item: dict[str, Any], severity: str) -> AlertPolicy:
        return AlertPolicy(
            severity=severity,
            for_s=self.duration(item.get("for"), 0.0),
            keep_firing_for_s=self.duration(item.get("keep_firing_for"), 0.0),
            receivers=tuple(item.get("receivers", ())),
            labels=tuple(sorted(item.get("labels", {}).items())),
            annotations=tuple(sorted(item.get("annotations", {}).items())),
            min_events=int(item.get("min_events", DEFAULT_MIN_EVENTS)),
        )

    def slo_alerts(self, items: list[dict[str, Any]] | None, where: Path_) -> tuple[SloAlert, ...]:
        if items is None:
            items = [{"severity": "page"}, {"severity": "ticket"}]
        out = []
        for i, item in enumerate(items):
            severity = item["severity"]
            if "windows" in item:
                raw = [(w["factor"], w["long"], w["short"]) for w in item["windows"]]
                windows = []
                for j, (factor, long, short) in enumerate(raw):
                    if parse_duration(short) >= parse_duration(long):
                        self.fail(
                            (*where, i, "windows", j, "short"),
                            f"{short!r} must be shorter than the long window {long!r}",
                        )
                    windows.append(
                        BurnWindow(factor, self.duration(long, 0), self.duration(short, 0))
                    )
            else:
                windows = [
                    BurnWindow(f, long / self.scale, short / self.scale)
                    for f, long, short in DEFAULT_WINDOWS[severity]
                ]
            out.append(SloAlert(self.policy(item, severity), tuple(windows)))
        return tuple(out)

    def slo(self, item: dict[str, Any], where: Path_) -> Slo:
        return Slo(
            name=item["name"],
            filters=self.filters(item),
            threshold_ns=self.threshold(item["threshold"], (*where, "threshold")),
            target=self.target(item["target"], (*where, "target")),
            window_s=self.duration(item.get("window"), 30 * 86400.0),
            errors_count_as_bad=bool(item.get("errors_count_as_bad", False)),
            alerts=self.slo_alerts(item.get("alerts"), (*where, "alerts")),
            description=item.get("description", ""),
            source=self.source(where),
            service_at=self.field_at((*where, "service")),
        )

    def threshold_alert(self, item: dict[str, Any], where: Path_) -> ThresholdAlert:
        return ThresholdAlert(
            name=item["name"],
            filters=self.filters(item),
            quantile=float(item.get("quantile", 0.99)),
            threshold_ns=self.threshold(item["threshold"], (*where, "threshold")),
            window_s=self.duration(item.get("window"), 300.0),
            policy=self.policy(item, item.get("severity", "ticket")),
            description=item.get("description", ""),
            source=self.source(where),
            service_at=self.field_at((*where, "service")),
        )

    def receiver(self, item: dict[str, Any], where: Path_) -> Receiver:
        fmt = item.get("format", "alertmanager")
        # Alertmanager's API drops a firing alert not re-posted within its resolve_timeout
        # (5m by default), so that receiver repeats every minute, as Prometheus resends.
        repeat_default = 60.0 if fmt == "alertmanager_api" else 4 * 3600.0
        basic = item.get("basic_auth", {})
        return Receiver(
            name=item["name"],
            url=item["url"],
            format=fmt,
            bearer_token_file=item.get("bearer_token_file"),
            basic_auth_username=basic.get("username"),
            basic_auth_password_file=basic.get("password_file"),
            ca_file=item.get("ca_file"),
            repeat_interval_s=self.duration(item.get("repeat_interval"), repeat_default),
            send_resolved=bool(item.get("send_resolved", True)),
            timeout_s=self.duration(item.get("timeout"), 10.0, scaled=False),
            group_by=tuple(item.get("group_by", ("alertname", "severity"))),
        )


def parse_file(path: str, time_scale: float = 1.0) -> SloFile:
    """Read and validate one SLO file; raises SloConfigError naming every problem."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SloConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        documents = read_documents(text)
    except YamlSyntaxError as exc:
        raise SloConfigError([f"{path}:{exc.line}: invalid YAML: {exc}"]) from None

    builder = _Builder(path, time_scale)
    slos: list[Slo] = []
    thresholds: list[ThresholdAlert] = []
    receivers: list[Receiver] = []
    valid: list[Document] = []
    for doc in documents:
        builder.doc = doc
        if not isinstance(doc.data, dict):
            builder.fail((), f"expected a mapping, got {type(doc.data).__name__}")
            continue
        if "apiVersion" in doc.data or "kind" in doc.data:
            issues = schema_issues(doc.data, "openslo_slo", OPENSLO_UNKNOWN)
            builder.issues.extend((doc, issue) for issue in issues)
            if not issues:
                valid.append(doc)
                item, where_of = openslo_to_native(doc.data, builder.fail)
                slos.append(_openslo_slo(builder, item, where_of))
            continue
        issues = schema_issues(doc.data, "sidetrace_file", ("unknown field", "allowed"))
        builder.issues.extend((doc, issue) for issue in issues)
        # Items with schema problems are skipped; the others still get semantic checks.
        broken = {issue.path[:2] for issue in issues}
        if any(len(issue.path) < 2 for issue in issues):
            continue
        valid.append(doc)
        sections = (
            ("slos", builder.slo, slos),
            ("threshold_alerts", builder.threshold_alert, thresholds),
            ("receivers", builder.receiver, receivers),
        )
        for section, build, out in sections:
            for i, item in enumerate(doc.data.get(section, [])):
                if (section, i) not in broken:
                    out.append(build(item, (section, i)))

    _check_references(builder, valid, {r.name for r in receivers})
    _check_unique(builder, valid)
    if builder.issues:
        located = sorted(
            ((doc.line_of(issue.path), field_name(issue.path), issue.message))
            for doc, issue in builder.issues
        )
        raise SloConfigError([f"{path}:{line}: {name}: {msg}" for line, name, msg in located])
    return SloFile(path, tuple(slos), tuple(thresholds), tuple(receivers))


def _openslo_slo(builder: _Builder, item: dict[str, Any], where_of: Callable[[str], Path_]) -> Slo:
    """Build an Slo from the OpenSLO translation, pointing problems at the OpenSLO fields."""
    return Slo(
        name=item["name"],
        filters=builder.filters(item),
        threshold_ns=builder.threshold(item["threshold"], where_of("threshold")),
        target=builder.target(item["target"], where_of("target")),
        window_s=builder.duration(item.get("window"), 30 * 86400.0),
        errors_count_as_bad=bool(item.get("errors_count_as_bad", False)),
        alerts=builder.slo_alerts(
            [{"severity": s, "receivers": item["receivers"]} for s in ("page", "ticket")],
            where_of("alerts"),
        ),
        description=item.get("description", ""),
        source=builder.source(()),
        service_at=builder.field_at(where_of("service")),
    )


def _check_references(builder: _Builder, documents: list[Document], names: set[str]) -> None:
    """Alerts may only name receivers defined in their own file."""
    known = ", ".join(sorted(names)) or "none defined"
    for doc in documents:
        builder.doc = doc
        for where, wanted in _receiver_references(doc.data):
            if wanted not in names:
                builder.fail(where, f"unknown receiver {wanted!r} (receivers here: {known})")


def _receiver_references(data: dict[str, Any]) -> Iterable[tuple[Path_, str]]:
    if "apiVersion" in data:
        annotations = (data.get("metadata") or {}).get("annotations") or {}
        for name in split_names(annotations.get(RECEIVERS_ANNOTATION, "")):
            yield ("metadata", "annotations", RECEIVERS_ANNOTATION), name
        return
    for i, item in enumerate(data.get("threshold_alerts") or []):
        for k, name in enumerate(item.get("receivers", [])):
            yield ("threshold_alerts", i, "receivers", k), name
    for i, item in enumerate(data.get("slos") or []):
        for j, alert in enumerate(item.get("alerts") or []):
            for k, name in enumerate(alert.get("receivers", [])):
                yield ("slos", i, "alerts", j, "receivers", k), name


def _check_unique(builder: _Builder, documents: list[Document]) -> None:
    seen: set[tuple[str, str]] = set()
    for doc in documents:
        builder.doc = doc
        if "apiVersion" in doc.data:
            entries = [("slo", doc.data["metadata"]["name"], ("metadata", "name"))]
        else:
            entries = [
                (kind, item.get("name"), (section, i, "name"))
                for section, kind in (
                    ("slos", "slo"),
                    ("threshold_alerts", "slo"),
                    ("receivers", "receiver"),
                )
                for i, item in enumerate(doc.data.get(section) or [])
            ]
        for kind, name, where in entries:
            if (kind, name) in seen:
                builder.fail(where, f"duplicate name {name!r}")
            seen.add((kind, name))


def check_services(slo_file: SloFile, known: set[str]) -> list[str]:
    """Errors for SLOs and alerts on services never seen in spans (skipped if none seen)."""
    if not known:
        return []
    errors = []
    seen = ", ".join(sorted(known)[:20])
    for item in (*slo_file.slos, *slo_file.threshold_alerts):
        if item.filters.service not in known:
            errors.append(
                f"{item.service_at}: unknown service {item.filters.service!r}: "
                f"no spans seen from it (services seen: {seen})"
            )
    return errors


@dataclass
class SloConfigSet:
    """The SLO files in force: loaded at start, reloaded when a file changes."""

    paths: list[str]
    time_scale: float = 1.0
    files: dict[str, SloFile] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    _stamps: dict[str, tuple[float, int] | None] = field(default_factory=dict)

    def load(self, known_services: Callable[[], set[str]]) -> None:
        """Load every file or raise SloConfigError listing the problems of all of them."""
        errors: list[str] = []
        known: set[str] | None = None
        for path in self.paths:
            self._stamps[path] = _stamp(path)
            try:
                loaded = parse_file(path, self.time_scale)
            except SloConfigError as exc:
                errors.extend(exc.errors)
                continue
            if known is None:
                known = known_services()
                if not known:
                    log.warning("no services seen in spans yet: SLO services are not checked")
            problems = check_services(loaded, known) + self._clashes(loaded)
            errors.extend(problems)
            if not problems:
                self.files[path] = loaded
        if errors:
            raise SloConfigError(errors)

    def reload(self, known_services: Callable[[], set[str]]) -> bool:
        """Re-read changed files; an invalid one keeps its last good version. True if changed."""
        changed = False
        for path in self.paths:
            stamp = _stamp(path)
            if stamp == self._stamps.get(path):
                continue
            self._stamps[path] = stamp
            try:
                loaded = parse_file(path, self.time_scale)
                problems = check_services(loaded, known_services()) + self._clashes(loaded)
                if problems:
                    raise SloConfigError(problems)
            except SloConfigError as exc:
                self.errors[path] = exc.errors
                log.error("SLO file %s is invalid; keeping its previous version:\n%s", path, exc)
                continue
            self.errors.pop(path, None)
            self.files[path] = loaded
            changed = True
            log.info("reloaded SLO file %s", path)
        return changed

    def _clashes(self, loaded: SloFile) -> list[str]:
        """Names must be unique across files (alerts are identified by them)."""
        others = [f for p, f in self.files.items() if p != loaded.path]
        names = {s.name for f in others for s in (*f.slos, *f.threshold_alerts)}
        receivers = {r.name: r for f in others for r in f.receivers}
        errors = [
            f"{item.source}: {item.name}: name already used in another SLO file"
            for item in (*loaded.slos, *loaded.threshold_alerts)
            if item.name in names
        ]
        errors += [
            f"{loaded.path}: receivers.{r.name}: defined differently in another SLO file"
            for r in loaded.receivers
            if r.name in receivers and receivers[r.name] != r
        ]
        return errors

    @property
    def slos(self) -> list[Slo]:
        return [s for f in self.files.values() for s in f.slos]

    @property
    def threshold_alerts(self) -> list[ThresholdAlert]:
        return [a for f in self.files.values() for a in f.threshold_alerts]

    @property
    def receivers(self) -> dict[str, Receiver]:
        return {r.name: r for f in self.files.values() for r in f.receivers}

    def all_errors(self) -> Iterable[str]:
        return (e for errors in self.errors.values() for e in errors)


def _stamp(path: str) -> tuple[float, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime, info.st_size
