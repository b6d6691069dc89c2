"""What each role installs and what the sidecar costs at rest, in fresh virtualenvs.

Builds the sidetrace wheel once, then makes one venv per role (without pip, so
only what the role installs is counted), with versions from ``requirements.lock``:

- ``sidecar``: the packages of ``deploy/sidecar-requirements.in`` and the wheel
  with ``--no-deps`` (the slim image);
- ``base``: ``pip install sidetrace`` (sidecar, collector, dashboard against a
  ClickHouse server; no chDB, pyarrow or pandas);
- ``full``: ``sidetrace[embedded,webhook]`` (the demo, all-in-one, webhook certs).

Prints ``name=value`` lines: the site-packages size of each role in MB, whether
the base has chDB/pyarrow/pandas, the sidecar's import time (median, seconds) and
its idle memory (VmRSS, and its private part, after it has served nothing for a
while) in its own venv; ``sidecar_install_mb`` last. Targets: sidecar ≤ 80 MB, idle RSS ≤ 35 MB.

    python bench/footprint.py [--quick] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
SIDECAR_REQUIREMENTS = ROOT / "deploy" / "sidecar-requirements.in"
EMBEDDED_ONLY = ("chdb", "pyarrow", "pandas")
MB = 1024 * 1024
IMPORT_PROBE = (
    "import time; t = time.perf_counter(); import sidetrace.cli, sidecar.app; "
    "print(time.perf_counter() - t)"
)


def build_wheel(out: Path) -> Path:
    """The sidetrace wheel of this checkout (C extensions compiled)."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
    )
    return next(out.glob("sidetrace-*.whl"))


def make_venv(path: Path, role: str, wheel: Path) -> Path:
    """A fresh venv with what ``role`` installs; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    python = path / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    pip += ["--disable-pip-version-check"]
    constraints = ["-c", str(LOCK)] if LOCK.exists() else []
    if role == "sidecar":
        subprocess.run(pip + constraints + ["-r", str(SIDECAR_REQUIREMENTS)], check=True)
        subprocess.run(pip + ["--no-deps", str(wheel)], check=True)
    elif role == "base":
        subprocess.run(pip + constraints + [str(wheel)], check=True)
    elif role == "full":
        spec = f"sidetrace[embedded,webhook] @ {wheel.as_uri()}"
        subprocess.run(pip + constraints + [spec], check=True)
    else:
        raise ValueError(f"unknown role {role!r}")
    return python


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def installed_mb(venv: Path) -> float:
    files = (p for p in site_packages(venv).rglob("*") if p.is_file() and not p.is_symlink())
    return sum(p.stat().st_size for p in files) / MB


def has_distribution(venv: Path, name: str) -> bool:
    return any(site_packages(venv).glob(f"{name}-*.dist-info"))


def import_seconds(python: Path, runs: int) -> float:
    samples = []
    for _ in range(runs):
        out = subprocess.run(  # not from the checkout: the venv's own copy
            [str(python), "-c", IMPORT_PROBE], capture_output=True, text=True, cwd=python.parent
        )
        out.check_returncode()
        samples.append(float(out.stdout.strip()))
    return statistics.median(samples)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sidecar_idle_memory_mb(venv: Path, idle_s: float) -> tuple[float, float]:
    """``sidetrace sidecar`` (with a collector configured, as in a pod) from ``venv`` after
    ``idle_s`` seconds of nothing: its VmRSS,
    and its private (unshared) memory, which excludes library pages other processes
    mapping the same files (the same image's sidecars on a node) share."""
    admin = free_port()
    command = [str(venv / "bin" / "sidetrace"), "sidecar", "--bind", "127.0.0.1"]
    command += ["--app-port", str(free_port()), "--inbound-port", str(free_port())]
    command += ["--outbound-port", str(free_port()), "--admin-port", str(admin)]
    # As in a pod: the default (OTLP/HTTP) exporters exist; no traffic, so nothing is sent.
    command += ["--collector", f"127.0.0.1:{free_port()}"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=venv
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/healthz", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the sidecar did not start") from None
                time.sleep(0.1)
        time.sleep(idle_s)
        status = Path(f"/proc/{process.pid}/status").read_text()
        rss = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        rollup = Path(f"/proc/{process.pid}/smaps_rollup").read_text().splitlines()
        private = sum(int(x.split()[1]) for x in rollup if x.startswith("Private_"))
        return int(rss.split()[1]) / 1024, private / 1024
    finally:
        process.terminate()
        process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one import sample, short idle")
    parser.add_argument("--keep", default=None, help="build the venvs here and keep them")
    args = parser.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="footprint-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        wheel = build_wheel(work / "wheel")
        venvs = {}
        for role in ("full", "base", "sidecar"):
            shutil.rmtree(work / role, ignore_errors=True)
            make_venv(work / role, role, wheel)
            venvs[role] = work / role
        base_extras = [n for n in EMBEDDED_ONLY if has_distribution(venvs["base"], n)]
        print(f"lock_used={int(LOCK.exists())}")
        print(f"base_has_embedded_only_packages={','.join(base_extras) or 'none'}")
        print(f"full_install_mb={installed_mb(venvs['full']):.1f}")
        print(f"base_install_mb={installed_mb(venvs['base']):.1f}")
        python = venvs["sidecar"] / "bin" / "python"
        print(f"sidecar_import_s={import_seconds(python, 1 if args.quick else 7):.3f}")
        rss, private = sidecar_idle_memory_mb(venvs["sidecar"], 2.0 if args.quick else 10.0)
        print(f"sidecar_idle_private_mb={private:.1f}")
        print(f"sidecar_idle_rss_mb={rss:.1f}")
        print(f"sidecar_install_mb={installed_mb(venvs['sidecar']):.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
