"""Leave-one-out evaluation of a recommender: constrained beam search over every chosen user,
full catalog (a target the beam did not generate is a miss), metrics from eval.ranking_metrics."""

from __future__ import annotations

import numpy as np

from genrec.data_prep.dataset import ProcessedDataset
from genrec.eval.ranking_metrics import DEFAULT_KS, ranking_metrics
from genrec.recommender.data import ExampleBuilder, split_examples
from genrec.recommender.decoding import recommend_items
from genrec.recommender.fast_beam import SidPrefixTable


def evaluate_users(model, builder: ExampleBuilder, table: SidPrefixTable, dataset: ProcessedDataset, split: str,
                   users: np.ndarray | None, beams: int, batch_size: int = 256, progress: bool = False) -> dict:
    """Recall@K / NDCG@K (every K in DEFAULT_KS that fits in the beam), MRR over the beam, and the
    invalid-output rate (beam slots that name no real item) for ``users`` (None = all)."""
    examples = split_examples(dataset, split, users)
    histories = [h for _, h, _ in examples]
    targets = np.asarray([t for _, _, t in examples])
    items, _ = recommend_items(model, builder, table, histories, beams, users=[u for u, _, _ in examples],
                               batch_size=batch_size, progress=progress)
    metrics = ranking_metrics(items, targets, tuple(k for k in DEFAULT_KS if k <= beams))
    metrics["invalid_rate"] = float((items <= 0).mean())
    return metrics
