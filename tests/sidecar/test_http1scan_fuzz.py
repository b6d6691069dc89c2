"""A short libFuzzer run of the sidecar's C scanner and Lane under ASan and UBSan.

``tests/fuzz/http1scan_fuzz.c`` compiles ``sidecar/_http1scan.c`` into a libFuzzer
binary that embeds this Python (see its comment): every input goes through the
request scanner, ``request_head``, the response scanner and one Lane exchange. The
run starts from the seed corpus in ``tests/fuzz/http1scan_corpus/`` and must end
with no crash, no sanitizer report and no exception. Longer runs:

    python -m tests.sidecar.test_http1scan_fuzz SECONDS
"""

from __future__ import annotations

import shutil
import sys

import pytest

from tests.support import ROOT
from tests.support.libfuzzer import assert_quick_run_finds_nothing, long_run

HARNESS = ROOT / "tests" / "fuzz" / "http1scan_fuzz.c"
CORPUS = ROOT / "tests" / "fuzz" / "http1scan_corpus"


@pytest.mark.processes  # clang, then the fuzzer binary
@pytest.mark.skipif(shutil.which("clang") is None, reason="clang (scripts/test.sh installs it)")
def test_fuzzing_the_scanner_and_lane_finds_nothing(tmp_path):
    assert_quick_run_finds_nothing(HARNESS, CORPUS, tmp_path)


if __name__ == "__main__":
    raise SystemExit(long_run(HARNESS, CORPUS, sys.argv))
