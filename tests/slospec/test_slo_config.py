"""SLO files: validation errors name file, line and field; reload keeps good versions."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from schemas import __file__ as schemas_init
from slospec.slo_config import (
    SloConfigError,
    SloConfigSet,
    parse_duration,
    parse_file,
)
from tests.support import ROOT

DEMO = str(Path(schemas_init).parent / "examples" / "slo-demo.yaml")

GOOD = """\
slos:
  - name: {name}
    service: payments
    threshold: 300ms
    target: 99.5
receivers:
  - name: {name}-hook
    url: http://127.0.0.1:1/hook
"""


def write(tmp_path: Path, text: str, name: str = "slo.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def errors_of(path: str) -> list[str]:
    with pytest.raises(SloConfigError) as info:
        parse_file(path)
    return info.value.errors


def test_demo_file_loads() -> None:
    loaded = parse_file(DEMO)
    (slo,) = loaded.slos
    assert slo.name == "payments-latency"
    assert slo.filters.service == "payments"
    assert slo.threshold_ns == 300e6
    assert slo.target == pytest.approx(0.99)
    assert slo.window_s == 30 * 86400
    page = slo.alerts[0]
    assert page.policy.severity == "page"
    assert [(w.factor, w.long_s, w.short_s) for w in page.windows] == [
        (14.4, 3600, 300),
        (6, 21600, 1800),
    ]
    ticket = slo.alerts[1]  # default windows of the workbook
    assert [(w.factor, w.long_s, w.short_s) for w in ticket.windows] == [
        (3, 86400, 7200),
        (1, 259200, 21600),
    ]
    assert loaded.receivers[0].format == "alertmanager"


def test_unknown_field_names_file_line_and_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        slos:
          - name: a
            service: payments
            treshold: 300ms
            threshold: 300ms
            target: 99
        """,
    )
    assert errors_of(path) == [
        f"{path}:4: slos[0].treshold: unknown field (allowed: alerts, description, "
        "errors_count_as_bad, name, operation, route, service, span_kind, target, threshold, "
        "window)"
    ]


RANGE = "is out of range: target is a percentage between 0 and 100 (exclusive), e.g. 99.5"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("150", f"150 {RANGE}"),
        ("100", f"100 {RANGE}"),
        ('"100%"', f"'100%' {RANGE}"),
        ("-3", f"-3 {RANGE}"),
        ("0.995", "0.995 is out of range: target is a percentage (99.5 means 99.5%); "
         "write 99.5 for 99.5%"),
        ("high", "'high' is not a percentage (like 99.5 or \"99.5%\")"),
    ],
)  # fmt: skip
def test_target_out_of_range(tmp_path: Path, target: str, message: str) -> None:
    path = write(
        tmp_path,
        f"""\
        slos:
          - name: a
            service: payments
            threshold: 300ms
            target: {target}
        """,
    )
    assert errors_of(path) == [f"{path}:5: slos[0].target: {message}"]


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        slos:
          - name: a
            service: payments
            threshold: 5 min
            target: 99
          - name: b
            service: payments
            threshold: 300ms
            target: 99
            span_kind: sever
            alerts:
              - severity: page
                receivers: [nobody]
                windows:
                  - {factor: 14.4, long: 5m, short: 1h}
        receivers:
          - name: hook
            url: ftp://x
        """,
    )
    assert errors_of(path) == [
        f"{path}:4: slos[0].threshold: '5 min' is not a duration "
        "(a number and unit: 300ms, 5m, 1h30m, 30d)",
        f"{path}:10: slos[1].span_kind: 'sever' is not one of: unspecified, internal, server, "
        "client, producer, consumer",
        f"{path}:13: slos[1].alerts[0].receivers[0]: unknown receiver 'nobody' "
        "(receivers here: none defined)",
        f"{path}:18: receivers[0].url: 'ftp://x' is not an http:// or https:// URL",
    ]


def test_semantic_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        slos:
          - name: a
            service: payments
            threshold: 300ms
            target: 99
            alerts:
              - severity: page
                receivers: [nobody]
                windows:
                  - {factor: 14.4, long: 5m, short: 1h}
          - name: a
            service: payments
            threshold: 0ms
            target: 99
        """,
    )
    assert errors_of(path) == [
        f"{path}:8: slos[0].alerts[0].receivers[0]: unknown receiver 'nobody' "
        "(receivers here: none defined)",
        f"{path}:10: slos[0].alerts[0].windows[0].short: '1h' must be shorter than the long "
        "window '5m'",
        f"{path}:11: slos[1].name: duplicate name 'a'",
        f"{path}:13: slos[1].threshold: '0ms' is out of range: the latency threshold must be > 0",
    ]


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "slos:\n  - name: a\n    service: [unclosed\n")
    (error,) = errors_of(path)
    assert error.startswith(f"{path}:4: invalid YAML:")


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.yaml")
    assert errors_of(path) == [f"{path}: cannot read: No such file or directory"]


OPENSLO = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkout-latency
  displayName: Checkout latency
  annotations:
    sidetrace.io/receivers: oncall
spec:
  service: checkout
  indicator:
    metadata: {name: checkout-latency}
    spec:
      thresholdMetric:
        metricSource:
          type: sidetrace
          spec: {operation: "GET /cart", span_kind: server, unit: ms}
  timeWindow:
    - duration: 28d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - op: lte
      value: 250
      target: 0.995
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-ratio}
spec:
  service: checkout
  indicator:
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: sidetrace, spec: {threshold: 200ms}}}
        total: {metricSource: {type: sidetrace, spec: {route: /cart, errors_count_as_bad: true}}}
  objectives: [{targetPercent: 99.9}]
---
receivers:
  - {name: oncall, url: "http://127.0.0.1:1/x", format: slack}
"""


def test_openslo_threshold_and_ratio_metrics(tmp_path: Path) -> None:
    loaded = parse_file(write(tmp_path, OPENSLO))
    first, second = loaded.slos
    assert first.name == "checkout-latency"
    assert first.filters.operation == "GET /cart"
    assert first.filters.span_kind == 2
    assert first.threshold_ns == 250e6
    assert first.target == pytest.approx(0.995)
    assert first.window_s == 28 * 86400
    assert [a.policy.severity for a in first.alerts] == ["page", "ticket"]
    assert first.alerts[0].policy.receivers == ("oncall",)
    assert second.threshold_ns == 200e6
    assert second.target == pytest.approx(0.999)
    assert second.filters.route == "/cart"
    assert second.errors_count_as_bad
    assert second.window_s == 30 * 86400


def test_openslo_unsupported_fields_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: x}
        spec:
          service: checkout
          indicatorRef: foo
          alertPolicies: []
          indicator:
            spec:
              rawMetric: {}
          budgetingMethod: Timeslices
          timeWindow:
            - duration: 1M
              calendar: {startTime: "2022-01-01 12:00:00", timeZone: UTC}
          objectives: [{target: 0.99, timeSliceTarget: 0.9}]
        """,
    )
    supported = "budgetingMethod, description, indicator, objectives, service, timeWindow"
    assert errors_of(path) == [
        f"{path}:6: spec.indicatorRef: not supported by sidetrace (supported: {supported})",
        f"{path}:7: spec.alertPolicies: not supported by sidetrace (supported: {supported})",
        f"{path}:10: spec.indicator.spec.rawMetric: not supported by sidetrace "
        "(supported: ratioMetric, thresholdMetric)",
        f"{path}:11: spec.budgetingMethod: 'Timeslices' is not supported (only 'Occurrences')",
        f"{path}:13: spec.timeWindow[0].duration: '1M' is not a duration "
        "(a number and unit: 300ms, 5m, 1h30m, 30d)",
        f"{path}:14: spec.timeWindow[0].calendar: not supported by sidetrace "
        "(supported: duration, isRolling)",
        f"{path}:15: spec.objectives[0].timeSliceTarget: not supported by sidetrace "
        "(supported: displayName, op, target, targetPercent, value)",
    ]


def test_unknown_service_is_refused_at_start(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.format(name="a").replace("payments", "paymnts"))
    config = SloConfigSet([path])
    with pytest.raises(SloConfigError) as info:
        config.load(lambda: {"payments", "checkout"})
    assert info.value.errors == [
        f"{path}:3: slos[0].service: unknown service 'paymnts': no spans seen from it "
        "(services seen: checkout, payments)"
    ]


def test_empty_store_skips_the_service_check(tmp_path: Path) -> None:
    config = SloConfigSet([write(tmp_path, GOOD.format(name="a"))])
    config.load(lambda: set())
    assert [s.name for s in config.slos] == ["a"]


def test_reload_keeps_the_previous_version_of_an_invalid_file(tmp_path: Path) -> None:
    first = write(tmp_path, GOOD.format(name="first"), "first.yaml")
    second = write(tmp_path, GOOD.format(name="second"), "second.yaml")
    config = SloConfigSet([first, second])
    config.load(lambda: {"payments"})
    assert [s.name for s in config.slos] == ["first", "second"]

    # first becomes invalid, second changes validly
    Path(first).write_text(GOOD.format(name="first").replace("99.5", "150"))
    Path(second).write_text(GOOD.format(name="second").replace("300ms", "500ms"))
    bump_mtime(first, second)
    assert config.reload(lambda: {"payments"}) is True
    assert [s.name for s in config.slos] == ["first", "second"]
    assert config.slos[0].target == pytest.approx(0.995)  # previous version still runs
    assert config.slos[1].threshold_ns == 500e6  # the valid edit is live
    assert list(config.all_errors()) == [
        f"{first}:5: slos[0].target: 150 is out of range: target is a percentage between "
        "0 and 100 (exclusive), e.g. 99.5"
    ]

    # an unknown service at reload is refused the same way
    Path(first).write_text(GOOD.format(name="first").replace("payments", "nobody"))
    bump_mtime(first)
    config.reload(lambda: {"payments"})
    assert "unknown service 'nobody'" in next(iter(config.all_errors()))
    assert config.slos[0].filters.service == "payments"

    # fixed: errors clear and the new version runs
    Path(first).write_text(GOOD.format(name="first").replace("99.5", "99.9"))
    bump_mtime(first)
    assert config.reload(lambda: {"payments"}) is True
    assert list(config.all_errors()) == []
    assert config.slos[0].target == pytest.approx(0.999)
    assert config.reload(lambda: {"payments"}) is False  # nothing changed


def test_names_must_be_unique_across_files(tmp_path: Path) -> None:
    first = write(tmp_path, GOOD.format(name="same"), "first.yaml")
    second = write(tmp_path, GOOD.format(name="same").replace("same-hook", "other"), "b.yaml")
    config = SloConfigSet([first, second])
    with pytest.raises(SloConfigError) as info:
        config.load(lambda: set())
    assert info.value.errors == [f"{second}:2: same: name already used in another SLO file"]


def test_time_scale_divides_durations_but_not_thresholds(tmp_path: Path) -> None:
    loaded = parse_file(DEMO, time_scale=60)
    (slo,) = loaded.slos
    assert slo.threshold_ns == 300e6
    assert slo.window_s == 30 * 86400 / 60
    page = slo.alerts[0]
    assert (page.windows[0].long_s, page.windows[0].short_s) == (60, 5)
    assert page.policy.for_s == 2 and page.policy.keep_firing_for_s == 5
    assert loaded.receivers[0].repeat_interval_s == 4 * 3600 / 60
    assert loaded.receivers[0].timeout_s == 10


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("300ms", 0.3), ("5m", 300), ("1h30m", 5400), ("30d", 2592000), ("1.5s", 1.5),
     ("2w", 1209600)],
)  # fmt: skip
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def bump_mtime(*paths: str) -> None:
    """Make a change visible even within one filesystem timestamp tick."""
    for path in paths:
        info = os.stat(path)
        os.utime(path, (info.st_atime, info.st_mtime + 5))


def _alerter_check(url: str, slo_file: str) -> subprocess.CompletedProcess[str]:
    """``sidetrace alerter --check`` on one SLO file, as a separate process."""
    command = [sys.executable, "-m", "sidetrace", "alerter", "--clickhouse", url]
    return subprocess.run(
        [*command, "--slo", slo_file, "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def test_alerter_refuses_bad_files_at_start(clickhouse_server, tmp_path: Path) -> None:
    bad = write(tmp_path, GOOD.format(name="a").replace("99.5", "150"))
    url = clickhouse_server.url(database=f"slo_cli_{os.getpid()}")
    run = _alerter_check(url, bad)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"sidetrace alerter: {bad}:5: slos[0].target: 150 is out of range: target is a "
        "percentage between 0 and 100 (exclusive), e.g. 99.5"
    )
    good = write(tmp_path, GOOD.format(name="a"), "good.yaml")
    run = _alerter_check(url, good)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok: 1 SLO(s), 0 threshold alert(s)"


def test_dashboard_refuses_a_bad_slo_file_with_one_line_per_problem(tmp_path: Path):
    from runtime.loopback_ports import free_port

    bad = tmp_path / "bad.yaml"
    bad.write_text("slos:\n  - name: x\n    service: a\n    bogus: 1\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sidetrace",
            "dashboard",
            "--clickhouse",
            f"chdb:{tmp_path / 'store'}",
            "--slo",
            str(bad),
            "--port",
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}:4: slos[0].bogus: unknown field" in result.stderr
    assert f"{bad}:2: slos[0]: missing required field 'target'" in result.stderr
