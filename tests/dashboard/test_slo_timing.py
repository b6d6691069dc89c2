"""SLO timing (evaluation interval, the test/demo time scale) reaches the evaluator as flags
and context fields, never through environment variables set by another component."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sidetrace.demo.runner import slo_interval
from tests.support import ROOT

PACKAGES = ("sidetrace", "dashboard", "collector", "sidecar", "slospec", "tracestore", "runtime")


def test_no_component_reads_slo_timing_from_the_environment() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for package in PACKAGES
        if (ROOT / package).is_dir()
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "SIDETRACE_SLO_" in line
    ]
    assert found == []


@pytest.mark.parametrize(
    ("scale", "interval"), [(1.0, 30.0), (20.0, 3.0), (60.0, 1.0), (1000.0, 1.0)]
)
def test_demo_evaluates_often_enough_for_its_compressed_windows(scale, interval) -> None:
    assert slo_interval(scale) == pytest.approx(interval)


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        (["dashboard", "--slo-interval", "0"], "--slo-interval"),
        (["dashboard", "--slo-time-scale", "-1"], "--slo-time-scale"),
        (["alerter", "--slo", "x.yaml", "--time-scale", "0"], "--time-scale"),
    ],
)
def test_non_positive_timing_flags_are_refused_in_one_line(command, flag, tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sidetrace", *command, "--clickhouse", "chdb:" + str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert f"{flag} must be > 0" in result.stderr and "Traceback" not in result.stderr
