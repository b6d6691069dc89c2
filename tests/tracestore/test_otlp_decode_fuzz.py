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

import pytest

from tests.support import ROOT
from tests.support.libfuzzer import assert_quick_run_finds_nothing, long_run

HARNESS = ROOT / "tests" / "fuzz" / "otlp_decode_fuzz.c"
CORPUS = ROOT / "tests" / "fuzz" / "otlp_corpus"


@pytest.mark.skipif(shutil.which("clang") is None, reason="clang (scripts/test.sh installs it)")
def test_fuzzing_the_decoder_finds_nothing(tmp_path):
    assert_quick_run_finds_nothing(HARNESS, CORPUS, tmp_path)


if __name__ == "__main__":
    raise SystemExit(long_run(HARNESS, CORPUS, sys.argv))
