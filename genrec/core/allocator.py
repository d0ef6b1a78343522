"""glibc malloc settings: keep freed memory in a training process (``keep_freed_memory``), and cap
the arenas of a many-threaded server (``limit_malloc_arenas``).

PyTorch has no caching allocator on the CPU: every activation of a training step is a fresh
``malloc``. glibc serves large blocks with ``mmap`` and returns freed heap tops to the kernel, so
each step page-faults its whole working set in again (zero-filled pages). On the development
machine that was a third of a TIGER-size training step. Raising the mmap threshold, never trimming
the heap and growing it in large steps makes later steps reuse the same pages: measured on Beauty
(2 cores, TIGER-size T5, batch 256) 137 -> 205 samples/s. The cost: the process keeps its peak
memory until it exits, which is what a training or evaluation process does anyway.

``GENREC_KEEP_FREED_MEMORY=0`` turns it off (benchmarks use that for their baselines).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD = -1
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
_applied = False


def keep_freed_memory(largest_kept: int = 1 << 30) -> bool:
    """Tune glibc malloc for a long-running training/evaluation process. Returns whether it applied
    (False off Linux/glibc or when GENREC_KEEP_FREED_MEMORY=0). Safe to call more than once (the
    first call's settings stay).

    ``largest_kept``: blocks from this size on still go to ``mmap`` and back to the kernel when
    freed. A model whose steps allocate catalogue-sized blocks (SASRec's dense [M + 1, d] gradient
    of a million-item table) passes half a table: kept on a never-trimmed heap, blocks that size
    fragment it without bound (bench.scale: 22 GB after a few dozen steps at 1M items)."""
    global _applied
    if _applied:
        return True
    mallopt = _glibc_mallopt()
    if os.environ.get("GENREC_KEEP_FREED_MEMORY", "1") == "0" or mallopt is None:
        return False
    # mallopt takes an int; -1 as the trim threshold becomes SIZE_MAX inside glibc: never trim.
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, min(largest_kept, 1 << 30)) and mallopt(_M_TRIM_THRESHOLD, -1)
                    and mallopt(_M_TOP_PAD, 1 << 30))
    return _applied


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for a long-running, many-threaded server. glibc gives threads their
    own arenas (up to 8 per core), each keeping the high-water mark of what its threads allocated,
    so a server's resident memory creeps up as more worker threads meet large requests; two arenas
    keep `genrec serve` flat at the same throughput (bench/results/serve-soak/). Returns whether it
    applied; a MALLOC_ARENA_MAX set by the user wins."""
    mallopt = _glibc_mallopt()
    if "MALLOC_ARENA_MAX" in os.environ or mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def _glibc_mallopt():
    """glibc's ``mallopt(param, value)``, or None off Linux or with a libc that has none (musl)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return mallopt
