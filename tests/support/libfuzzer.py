"""Build a libFuzzer harness (``tests/fuzz/*.c``) that embeds this Python under ASan and UBSan,
and run it from a seed corpus: the fuzz tests of the C decoder and the C scanner share it."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import sysconfig
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
