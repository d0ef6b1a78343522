"""Semantic IDs: L codes plus a collision suffix, so that each full SID names exactly one item."""

from __future__ import annotations

import numpy as np


def sorted_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, changed): the rows of int ``codes`` [n, L] in lexicographic order (ties in row
    order), and ``changed[j, d]``: whether sorted row j's first d + 1 codes differ from row
    j - 1's (True for j = 0). One sort serves every prefix length: sorting by the whole row sorts
    by each prefix too."""
    codes = np.asarray(codes, dtype=np.int64)
    order = np.lexsort(codes.T[::-1]) if codes.shape[1] else np.arange(len(codes))
    ordered = codes[order]
    changed = np.ones((len(codes), codes.shape[1]), dtype=bool)
    changed[1:] = np.logical_or.accumulate(ordered[1:] != ordered[:-1], axis=1)
    return order, changed


def prefix_ranks(order: np.ndarray, changed: np.ndarray) -> np.ndarray:
    """Dense rank (0, 1, ...) of each row among the distinct rows, lexicographic, from
    ``sorted_rows``'s order and one column of its ``changed`` (the prefix length that matters)."""
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.cumsum(changed) - 1
    return ranks


def add_collision_suffix(codes: np.ndarray) -> np.ndarray:
    """int64 [n, L + 1]: ``codes`` plus a last column numbering the items of each bucket 0, 1, 2, ...

    A bucket is a set of items with the same L codes. Within a bucket items are numbered in
    ascending row order (row i = item id i + 1), so the suffix depends only on the codes.
    Vectorised: one lexicographic sort of the rows (``sorted_rows``), then positions within runs.
    """
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must be a non-empty [items, levels] array, got shape {codes.shape}")
    order, changed = sorted_rows(codes)
    first = changed[:, -1] if codes.shape[1] else np.r_[True, np.zeros(len(codes) - 1, dtype=bool)]
    starts = np.maximum.accumulate(np.where(first, np.arange(len(codes)), 0))
    suffix = np.empty(len(codes), dtype=np.int64)
    suffix[order] = np.arange(len(codes)) - starts
    return np.concatenate([codes, suffix[:, None]], axis=1)


class BucketsFull(ValueError):
    """Every candidate bucket of new item ``index`` already holds ``suffix_size`` items."""

    def __init__(self, index: int, suffix_size: int):
        super().__init__(f"new item {index}: every candidate bucket is full (suffix size {suffix_size})")
        self.index, self.suffix_size = index, suffix_size


def extend_semantic_ids(sids: np.ndarray, candidates: list[np.ndarray], suffix_size: int) -> tuple[np.ndarray, int]:
    """SIDs for new items, leaving every existing SID unchanged.

    ``sids`` [n, L + 1] are the catalogue's SIDs; ``candidates[i]`` [c, L] are new item i's code
    tuples, best first (its own codes, then fall-backs). Item i takes its first candidate whose
    bucket still has a free suffix below ``suffix_size`` (the recommender has no token beyond it)
    and the next suffix there: a fresh collision suffix. Returns (rows [k, L + 1], number of items
    that did not get their first candidate). ``BucketsFull`` when an item finds no free suffix.
    """
    taken: dict[tuple[int, ...], int] = {}
    for row in np.asarray(sids, dtype=np.int64).tolist():
        key = tuple(row[:-1])
        taken[key] = max(taken.get(key, 0), row[-1] + 1)
    rows, moved = [], 0
    for index, options in enumerate(candidates):
        for rank, codes in enumerate(np.asarray(options, dtype=np.int64).tolist()):
            used = taken.get(tuple(codes), 0)
            if used < suffix_size:
                taken[tuple(codes)] = used + 1
                rows.append([*codes, used])
                moved += rank > 0
                break
        else:
            raise BucketsFull(index, suffix_size)
    return np.asarray(rows, dtype=np.int64).reshape(-1, np.asarray(sids).shape[1]), moved
