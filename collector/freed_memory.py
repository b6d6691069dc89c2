"""Keep freed batch-sized memory in the process instead of handing it back to the kernel.

glibc gives a freed block of 128 kB or more back to the kernel (``munmap``) and trims its
heaps; the writer allocates and frees blocks that big for every batch (each column's
buffer, then its bytes), so the kernel maps and zeroes them again each time: some 68,000
page faults a million spans, a third of the decoder's time on a virtual machine (see
docs/performance.md). Served from the heap and kept when freed, they are reused as they
are. The cost: the process holds on to its peak (about two batches) between batches.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)
M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest; bigger blocks are still mapped apart
TRIM_THRESHOLD = 1 << 30


def keep_freed_memory() -> bool:
    """Set the C allocator's thresholds for the whole process; False when it is not
    glibc's (nothing changes then)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    kept = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not kept:
        log.info("the C allocator takes no thresholds: freed memory goes back to the kernel")
    return kept
