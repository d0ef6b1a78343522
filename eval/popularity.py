"""Most-popular baseline: every user gets the items seen most often before the split's target."""

from __future__ import annotations

import numpy as np

from genrec.data_prep.dataset import ProcessedDataset
from genrec.eval.ranking_metrics import ranking_metrics


def popularity_metrics(dataset: ProcessedDataset, split: str, k: int = 30, exclude_seen: bool = False) -> dict[str, float]:
    """Recall / NDCG / MRR of the ``k`` most popular items; ``exclude_seen``: the ``k`` most popular
    items outside each user's own history."""
    counts = np.zeros(dataset.num_items + 1, dtype=np.int64)
    users = range(1, dataset.num_users + 1)
    examples = [dataset.split(user, split) for user in users]
    for history, _ in examples:
        np.add.at(counts, np.asarray(history, dtype=np.int64), 1)
    counts[0] = -1
    order = np.argsort(-counts, kind="stable")
    targets = np.asarray([target for _, target in examples])
    if not exclude_seen:
        return ranking_metrics(np.tile(order[:k], (len(targets), 1)), targets)
    ranked = np.zeros((len(examples), k), dtype=np.int64)
    for row, (history, _) in enumerate(examples):
        head = order[:k + len(history)]
        head = head[(head > 0) & ~np.isin(head, history)][:k]
        ranked[row, :len(head)] = head
    return ranking_metrics(ranked, targets)
