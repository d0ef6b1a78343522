"""What every trained recommender offers, the T5 ``Recommender`` and ``SASRecRecommender`` alike, so
the pipeline and the server ask a model what it is (``kind``, ``semantic_id``) instead of probing
its attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

KINDS = ("t5", "sasrec")


@runtime_checkable
class RecommenderModel(Protocol):
    kind: str  # one of KINDS
    meta: dict  # genrec.json: training summary, chosen fusion, catalogue version
    path: Path | None  # where it was loaded from or saved to

    @property
    def num_items(self) -> int: ...

    def semantic_id(self, item: int) -> list[int] | None:
        """The item's Semantic ID (codes + suffix), None for a model without SIDs."""

    def with_policy(self, policy) -> "RecommenderModel":
        """The same model decoding under ``policy`` (``recommender.fusion.DecodingPolicy``)."""

    def recommend(self, histories: list[list[int]], top_k: int = 10, users: list[int] | None = None,
                  beams: int | None = None, exclude_seen: bool | None = None, batch_size: int = 256,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` item ids [n, top_k] (0 = no item) and scores, best first, per history."""

    def evaluate(self, dataset, split: str, users: np.ndarray | None = None, beams: int = 30,
                 batch_size: int = 256, progress: bool = False) -> dict:
        """Leave-one-out Recall / NDCG / MRR over ``users`` of ``split`` (None = all), full catalogue."""

    def save(self, path: str | Path, meta: dict | None = None) -> Path: ...
