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


ARENAS = """
import ctypes, sys, threading
from genrec.core.allocator import limit_malloc_arenas
print(limit_malloc_arenas(2) if sys.argv[1] == "limit" else None, flush=True)
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
barrier = threading.Barrier(8)
def work():  # eight threads allocating at once: glibc would give each its own arena
    barrier.wait()
    blocks = [libc.malloc(1000) for _ in range(2000)]
    for block in blocks:
        libc.free(block)
threads = [threading.Thread(target=work) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc.malloc_stats()  # one "Arena N:" block per arena, on stderr
"""


def _arenas(mode: str, **env) -> tuple[str, int]:
    env = {key: value for key, value in {**os.environ, **env}.items() if key != "MALLOC_ARENA_MAX" or env}
    done = subprocess.run([sys.executable, "-c", ARENAS, mode], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip(), sum(line.startswith("Arena ") for line in done.stderr.splitlines())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_the_server_caps_malloc_arenas_unless_the_user_set_them():
    applied, arenas = _arenas("limit")
    assert applied == "True" and arenas <= 2
    assert _arenas("default")[1] > 2  # what the cap prevents: an arena per busy thread
    applied, arenas = _arenas("limit", MALLOC_ARENA_MAX="3")
    assert applied == "False" and arenas == 3  # the user's setting wins
