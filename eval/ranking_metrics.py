"""Top-K ranking metrics for leave-one-out evaluation (one relevant item per user).

With a single relevant item at 1-based rank r (or none in the list): Recall@K = [r <= K],
NDCG@K = 1 / log2(r + 1) if r <= K (the ideal DCG is 1), MRR = 1 / r (0 if missing).
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (5, 10, 20, 30)


def target_ranks(ranked_items: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each target in its row of ``ranked_items`` [n, k]; 0 where it is absent."""
    hits = np.asarray(ranked_items) == np.asarray(targets)[:, None]
    return np.where(hits.any(1), hits.argmax(1) + 1, 0)


def ranking_metrics(ranked_items: np.ndarray, targets: np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    ranks = target_ranks(ranked_items, targets)
    found = ranks > 0
    metrics = {}
    for k in ks:
        hit = found & (ranks <= k)
        metrics[f"recall@{k}"] = float(hit.mean())
        gain = np.zeros(len(ranks))
        gain[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
        metrics[f"ndcg@{k}"] = float(gain.mean())
    reciprocal = np.zeros(len(ranks))
    reciprocal[found] = 1.0 / ranks[found]
    metrics["mrr"] = float(reciprocal.mean())
    return metrics
