"""Semantic IDs: L codes plus a collision suffix, so that each full SID names exactly one item."""

from __future__ import annotations

import numpy as np


def add_collision_suffix(codes: np.ndarray) -> np.ndarray:
    """int64 [n, L + 1]: ``codes`` plus a last column numbering the items of each bucket 0, 1, 2, ...

    A bucket is a set of items with the same L codes. Within a bucket items are numbered in
    ascending row order (row i = item id i + 1), so the suffix depends only on the codes.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must be a non-empty [items, levels] array, got shape {codes.shape}")
    _, bucket = np.unique(codes, axis=0, return_inverse=True)
    bucket = bucket.reshape(-1)
    order = np.lexsort((np.arange(len(codes)), bucket))  # by bucket, ties by row
    sorted_bucket = bucket[order]
    first = np.r_[True, sorted_bucket[1:] != sorted_bucket[:-1]]
    starts = np.maximum.accumulate(np.where(first, np.arange(len(codes)), 0))
    suffix = np.empty(len(codes), dtype=np.int64)
    suffix[order] = np.arange(len(codes)) - starts
    return np.concatenate([codes, suffix[:, None]], axis=1)
