"""``promtool check metrics`` (Debian's prometheus package) over a /metrics text."""

from __future__ import annotations

import shutil
import subprocess

PROMTOOL = shutil.which("promtool")


def promtool_check(text: str) -> None:
    """Exit 0 and no lint findings, or an assertion naming them."""
    assert PROMTOOL, "promtool (Debian's prometheus package, scripts/test.sh) is not installed"
    done = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60
    )
    findings = (done.stdout + done.stderr).decode().strip()
    assert done.returncode == 0 and not findings, findings
