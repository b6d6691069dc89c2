"""A short libFuzzer run of the compiled span decoder under ASan and UBSan.

``tests/fuzz/otlp_decode_fuzz.c`` compiles ``tracestore/_otlpdecode.c`` into a
libFuzzer binary that embeds this Python (see its comment). The run starts from
the seed corpus in ``tests/fuzz/otlp_corpus/`` and must end with no crash, no
sanitizer report and no exception other than DecodeError. Longer runs:

    python -m tests.tracestore.test_otlp_decode_fuzz SECONDS
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import ROOT
from tests.support.libfuzzer import build, run

HARNESS = ROOT / "tests" / "fuzz" / "otlp_decode_fuzz.c"
CORPUS = ROOT / "tests" / "fuzz" / "otlp_corpus"
QUICK_RUNS = 20_000


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang (scripts/test.sh installs it)")
def test_fuzzing_the_decoder_finds_nothing(tmp_path):
    (tmp_path / "new").mkdir()
    binary = build(tmp_path, HARNESS)
    result = run(binary, tmp_path, f"-runs={QUICK_RUNS}", "-seed=1", corpus=CORPUS)
    findings = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-"))]
    assert result.returncode == 0 and not findings, result.stderr[-4000:]
    assert f"Done {QUICK_RUNS} runs" in result.stderr


if __name__ == "__main__":
    seconds = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "new").mkdir()
        outcome = run(build(work, HARNESS), work, f"-max_total_time={seconds}", corpus=CORPUS)
        print(outcome.stderr[-2000:])
        raise SystemExit(outcome.returncode)
