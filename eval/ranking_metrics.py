"""Top-K ranking metrics for leave-one-out evaluation (one relevant item per user).

With a single relevant item at 1-based rank r (or none in the list): Recall@K = [r <= K],
NDCG@K = 1 / log2(r + 1) if r <= K (the ideal DCG is 1), MRR = 1 / r (0 if missing).

Each metric is a mean over users; ``METRIC_se`` is its standard error, std(ddof=1) / sqrt(n) over
the users' values, so a metric on a sample of users (the trainer's periodic validation) comes with
its sampling error: two checkpoints whose NDCG@10 differ by less than about 2 s.e. are not told
apart by that sample. (Sampling without replacement from N users shrinks the error by
sqrt(1 - n / N); it is left out, so the figure is an upper bound.)
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (5, 10, 20, 30)


def target_ranks(ranked_items: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each target in its row of ``ranked_items`` [n, k]; 0 where it is absent."""
    hits = np.asarray(ranked_items) == np.asarray(targets)[:, None]
    return np.where(hits.any(1), hits.argmax(1) + 1, 0)


def standard_error(values: np.ndarray) -> float:
    """Standard error of the mean of ``values``: std(ddof=1) / sqrt(n); 0 for fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def ranking_metrics(ranked_items: np.ndarray, targets: np.ndarray, ks=DEFAULT_KS) -> dict[str, float]:
    """``recall@K``, ``ndcg@K`` (each K in ``ks``) and ``mrr``, means over users, each with its
    standard error over users under ``KEY_se``."""
    ranks = target_ranks(ranked_items, targets)
    found = ranks > 0
    metrics = {}
    for k in ks:
        hit = found & (ranks <= k)
        gain = np.zeros(len(ranks))
        gain[hit] = 1.0 / np.log2(ranks[hit] + 1.0)
        for key, values in ((f"recall@{k}", hit), (f"ndcg@{k}", gain)):
            metrics[key] = float(values.mean())
            metrics[f"{key}_se"] = standard_error(values)
    reciprocal = np.zeros(len(ranks))
    reciprocal[found] = 1.0 / ranks[found]
    metrics["mrr"] = float(reciprocal.mean())
    metrics["mrr_se"] = standard_error(reciprocal)
    return metrics
