"""The collector's allocator setting: batch-sized blocks freed in a thread (as the writer
frees a batch's columns) are reused, not faulted in again from the kernel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = """
import resource, sys, threading
from collector.freed_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rounds(n):
    for r in range(n):  # eight blocks of ~3 MB, a little bigger each round, like columns
        blocks = [b"x" * ((3 << 20) + 4096 * (r * 8 + i)) for i in range(8)]
        del blocks
out = {}
def writer():
    rounds(1)
    start = faults()
    rounds(6)
    out["faults"] = faults() - start
thread = threading.Thread(target=writer)
thread.start()
thread.join()
print(out["faults"])
"""


def _page_faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout)


def test_freed_batch_memory_is_reused_instead_of_faulted_in_again():
    plain, kept = _page_faults("plain"), _page_faults("keep")
    pages = 6 * 8 * (3 << 20) // 4096  # what faulting every block in again would cost
    assert plain > pages // 2, plain  # glibc's defaults give these blocks back
    assert kept < plain // 10, (kept, plain)
