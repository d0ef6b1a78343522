"""Most-popular baseline: every user gets the items seen most often before the split's target."""

from __future__ import annotations

import numpy as np

from genrec.data_prep.dataset import ProcessedDataset
from genrec.eval.ranking_metrics import ranking_metrics


def popularity_metrics(dataset: ProcessedDataset, split: str, k: int = 30) -> dict[str, float]:
    counts = np.zeros(dataset.num_items + 1, dtype=np.int64)
    users = range(1, dataset.num_users + 1)
    for user in users:
        history, _ = dataset.split(user, split)
        np.add.at(counts, np.asarray(history, dtype=np.int64), 1)
    counts[0] = -1
    top = np.argsort(-counts, kind="stable")[:k]
    targets = np.asarray([dataset.split(u, split)[1] for u in users])
    return ranking_metrics(np.tile(top, (len(targets), 1)), targets)
