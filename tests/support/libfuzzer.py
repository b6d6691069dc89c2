"""Build a libFuzzer harness (``tests/fuzz/*.c``) that embeds this Python under ASan and UBSan,
and run it from a seed corpus: the fuzz tests of the C decoder and the C scanner share it."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from tests.support import ROOT


def build(out_dir: Path, harness: Path) -> Path:
    """The fuzzer binary of ``harness``, linked against this interpreter's libpython."""
    binary = out_dir / harness.stem
    include = sysconfig.get_paths()["include"]
    libdir = sysconfig.get_config_var("LIBDIR")
    library = f"python{sysconfig.get_config_var('LDVERSION')}"
    subprocess.run(
        ["clang", "-g", "-O1", "-fsanitize=fuzzer,address,undefined"]
        + ["-fno-sanitize-recover=undefined", f"-I{include}", str(harness)]
        + [f"-L{libdir}", f"-l{library}", f"-Wl,-rpath,{libdir}", "-o", str(binary)],
        check=True,
    )
    return binary


def run(binary: Path, work: Path, *limits: str, corpus: Path) -> subprocess.CompletedProcess:
    """Fuzz from the seed ``corpus``; new inputs and any crash land in ``work``."""
    env = {
        **os.environ,
        "PYTHONHOME": sys.base_prefix,
        "PYTHONPATH": os.pathsep.join([str(ROOT), *site.getsitepackages()]),
        "PYTHONMALLOC": "malloc",  # every Python allocation seen by ASan
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=0",  # the interpreter keeps its own
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    return subprocess.run(
        [str(binary), *limits, "-print_final_stats=1", f"-artifact_prefix={work}/"]
        + [str(work / "new"), str(corpus)],
        env=env,
        capture_output=True,
        text=True,
    )


QUICK_RUNS = 20_000  # what CI fuzzes of each harness


def assert_quick_run_finds_nothing(harness: Path, corpus: Path, work: Path) -> None:
    """CI's run: ``QUICK_RUNS`` inputs from the corpus, then no crash, leak or report."""
    (work / "new").mkdir()
    result = run(build(work, harness), work, f"-runs={QUICK_RUNS}", "-seed=1", corpus=corpus)
    findings = [p.name for p in work.iterdir() if p.name.startswith(("crash-", "leak-"))]
    assert result.returncode == 0 and not findings, result.stderr[-4000:]
    assert f"Done {QUICK_RUNS} runs" in result.stderr


def long_run(harness: Path, corpus: Path, argv: list[str]) -> int:
    """``python -m tests.<module> SECONDS``: fuzz for that long (60 s by default)."""
    seconds = int(argv[1]) if len(argv) > 1 else 60
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "new").mkdir()
        outcome = run(build(work, harness), work, f"-max_total_time={seconds}", corpus=corpus)
        progress = [line for line in outcome.stderr.splitlines() if " cov: " in line]
        print(outcome.stderr[-2000:])
        print("last progress line:", progress[-1] if progress else "none")  # coverage, features
        return outcome.returncode
