"""genrec.core.allocator: applied once per process on Linux/glibc, off with GENREC_KEEP_FREED_MEMORY=0."""

import os
import subprocess
import sys

import pytest

CODE = "from genrec.core.allocator import keep_freed_memory as k; print(k(), k())"


def _run(env_value):
    env = {**os.environ, "GENREC_KEEP_FREED_MEMORY": env_value}
    return subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True).stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_applies_and_can_be_turned_off():
    assert _run("1") == ["True", "True"]
    assert _run("0") == ["False", "False"]


FREED = """
import ctypes, sys
from genrec.core.allocator import keep_freed_memory
keep_freed_memory(int(sys.argv[1]))
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20
libc = ctypes.CDLL('libc.so.6')
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
before = rss()
block = libc.malloc(256 << 20)
ctypes.memset(block, 1, 256 << 20)  # touch every page
libc.free(block)
print(rss() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_blocks_from_the_largest_kept_size_on_go_back_to_the_kernel():
    """A 256 MB block is kept after free under the default (1 GB) and handed back when the process
    keeps blocks only below 128 MB (what SASRec asks for with a million-item table)."""
    def kept_mb(largest_kept):
        return int(subprocess.run([sys.executable, "-c", FREED, str(largest_kept)], capture_output=True, text=True,
                                  check=True, env={**os.environ, "GENREC_KEEP_FREED_MEMORY": "1"}).stdout)

    assert kept_mb(1 << 30) >= 200
    assert kept_mb(128 << 20) < 50
