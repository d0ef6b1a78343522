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
