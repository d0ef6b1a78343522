"""Shared setup of the tokenizer and SID-metric tests.

Import ``single_thread`` into a test module to apply it there (an autouse fixture is active in
every module that has it in its namespace).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """These tensors are tiny: one thread avoids waiting on a busy second core (2-core CI)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def clustered(n: int = 240, d: int = 12, k: int = 6, seed: int = 0) -> np.ndarray:
    """float32 [n, d]: k well separated Gaussian blobs, so every method has structure to find."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    return (centers[rng.integers(0, k, n)] + rng.normal(size=(n, d))).astype(np.float32)
