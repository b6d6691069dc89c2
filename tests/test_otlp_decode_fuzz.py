"""A short libFuzzer run of the compiled span decoder under ASan and UBSan.

``tests/fuzz/otlp_decode_fuzz.c`` compiles ``tracestore/_otlpdecode.c`` into a
libFuzzer binary that embeds this Python (see its comment). The run starts from
the seed corpus in ``tests/fuzz/otlp_corpus/`` and must end with no crash, no
sanitizer report and no exception other than DecodeError. Longer runs:

    python -m tests.test_otlp_decode_fuzz SECONDS
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT / "tests" / "fuzz" / "otlp_decode_fuzz.c"
CORPUS = ROOT / "tests" / "fuzz" / "otlp_corpus"
QUICK_RUNS = 20_000


def build(out_dir: Path, harness: Path = HARNESS) -> Path:
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


def run(
    binary: Path, work: Path, *limits: str, corpus: Path = CORPUS
) -> subprocess.CompletedProcess:
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


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang (scripts/test.sh installs it)")
def test_fuzzing_the_decoder_finds_nothing(tmp_path):
    (tmp_path / "new").mkdir()
    binary = build(tmp_path)
    result = run(binary, tmp_path, f"-runs={QUICK_RUNS}", "-seed=1")
    findings = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-"))]
    assert result.returncode == 0 and not findings, result.stderr[-4000:]
    assert f"Done {QUICK_RUNS} runs" in result.stderr


if __name__ == "__main__":
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "new").mkdir()
        outcome = run(build(work), work, f"-max_total_time={seconds}")
        print(outcome.stderr[-2000:])
        raise SystemExit(outcome.returncode)
