"""A trained SASRec as a recommender and as a per-item scorer for fused decoding.

As a recommender it ranks the whole catalogue by log p_sasrec(item | history) plus its decoding
policy's weighted scorers (exact: no beam needed); as a scorer (name ``sasrec``) it gives the T5
beam search its distribution over items (``recommender.fusion.DecodingPolicy``).

Directory layout (``save``; ``genrec train-sasrec`` writes it):
    sasrec.json          SASRecConfig
    model.safetensors    weights and the item text table
    genrec.json          kind "sasrec", dataset, training summary; written last
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, read_json
from genrec.core.layout import portable_meta
from genrec.recommender.fusion import DecodingPolicy
from genrec.recommender.recommender import META_FILE, ranked_metrics
from genrec.recommender.sasrec import SASRec, SASRecConfig
from genrec.recommender.sequences import left_pad

KIND = "sasrec"
CONFIG_FILE = "sasrec.json"
WEIGHTS_FILE = "model.safetensors"


class SASRecRecommender:
    """Recommendations and item distributions from a SASRec model."""

    name = KIND  # as a scorer in a DecodingPolicy
    kind = KIND  # as a recommender.protocol.RecommenderModel

    def __init__(self, model: SASRec, meta: dict | None = None, path: Path | None = None,
                 policy: DecodingPolicy | None = None):
        self.model = model.eval()
        self.meta = dict(meta or {})
        self.path = path
        self.policy = policy or DecodingPolicy()

    @property
    def num_items(self) -> int:
        return self.model.config.num_items

    def semantic_id(self, item: int) -> None:
        return None  # SASRec scores item ids; it has no Semantic IDs

    def with_policy(self, policy: DecodingPolicy) -> "SASRecRecommender":
        """The same model decoding under ``policy`` (this object is unchanged)."""
        return SASRecRecommender(self.model, self.meta, self.path, policy)

    def with_items(self, num_items: int, text: np.ndarray | None = None) -> "SASRecRecommender":
        """The model over catalogue version ``num_items`` (``SASRec.with_items``): cut to the items a
        model fusing it knows, or grown by new items scored from their ``text`` embeddings."""
        if num_items == self.num_items:
            return self
        return SASRecRecommender(self.model.with_items(num_items, text), self.meta, self.path, self.policy)

    @torch.no_grad()
    def log_probabilities(self, histories: list[list[int]]) -> np.ndarray:
        """log p(item | history) ``[batch, M + 1]`` (float64; column 0 = -inf)."""
        self.model.eval()
        device = next(self.model.parameters()).device
        inputs = torch.from_numpy(left_pad(histories, self.model.config.max_len)).to(device)
        return torch.log_softmax(self.model.scores(inputs).double(), dim=-1).cpu().numpy()

    def probabilities(self, histories: list[list[int]]) -> np.ndarray:
        return np.exp(self.log_probabilities(histories))

    def recommend(self, histories: list[list[int]], top_k: int = 10, users: list[int] | None = None,
                  beams: int | None = None, exclude_seen: bool | None = None, batch_size: int = 256,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` item ids and scores (log p_sasrec + the policy's weighted log q), best
        first; ``exclude_seen`` (None: the policy's) ranks only items not in the history. ``beams``: candidates mixed
        with new items (the policy's ``new_items``); ``users``: unused (the signature of
        ``Recommender.recommend``)."""
        if top_k < 1:
            raise GenrecError("top_k must be at least 1")
        for history in histories:
            if not history or not all(1 <= int(item) <= self.num_items for item in history):
                raise GenrecError(f"history {history[:5]}: needs item ids in 1..{self.num_items}")
        exclude = self.policy.exclude_seen if exclude_seen is None else bool(exclude_seen)
        width = max(top_k, beams or top_k) if self.policy.new_items is not None else top_k  # candidates to mix
        k = min(width, self.num_items)
        items_out = np.zeros((len(histories), width), dtype=np.int64)
        scores_out = np.full((len(histories), width), -np.inf, dtype=np.float32)
        for start in range(0, len(histories), batch_size):
            batch = histories[start:start + batch_size]
            scores = self.log_probabilities(batch) + self.policy.log_scores(batch)
            scores[:, 0] = -np.inf
            if exclude:
                for row, history in enumerate(batch):
                    scores[row, history] = -np.inf
            top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
            top = np.take_along_axis(top, order, axis=1)
            top_scores = np.take_along_axis(scores, top, axis=1)
            top[np.isinf(top_scores)] = 0
            items_out[start:start + len(batch), :k] = top
            scores_out[start:start + len(batch), :k] = top_scores
        return self.policy.finish(histories, items_out, scores_out, top_k, exclude)

    def evaluate(self, dataset, split: str, users: np.ndarray | None = None, beams: int = 30,
                 batch_size: int = 256, progress: bool = False) -> dict:
        """Leave-one-out metrics like ``Recommender.evaluate`` (full catalogue, top ``beams``)."""
        self._check_items(dataset)
        return ranked_metrics(lambda histories, _users: self.recommend(histories, beams, beams=beams,
                                                                       batch_size=batch_size)[0],
                              dataset, split, users, beams)

    def _check_items(self, dataset) -> None:
        if dataset.num_items != self.num_items:
            raise GenrecError(f"{dataset.path} has {dataset.num_items} items; the SASRec model was trained on "
                              f"{self.num_items}")

    # -- on disk ----------------------------------------------------------------------------------
    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path / CONFIG_FILE, dataclasses.asdict(self.model.config))
        tmp = path / f".{WEIGHTS_FILE}.tmp"
        save_file({k: v.contiguous() for k, v in self.model.state_dict().items()}, str(tmp))
        tmp.replace(path / WEIGHTS_FILE)
        self.meta.update(meta or {})
        self.meta["kind"] = KIND
        self.meta = portable_meta(self.meta, path)
        atomic_write_json(path / META_FILE, self.meta)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "SASRecRecommender":
        from safetensors.torch import load_file

        path = Path(path)
        if not is_sasrec_dir(path) or not (path / WEIGHTS_FILE).is_file():
            raise GenrecError(f"{path}: not a trained SASRec model (no {META_FILE} of kind sasrec); "
                              "run `genrec train-sasrec` first")
        config = SASRecConfig(**read_json(path / CONFIG_FILE))
        model = SASRec(config)
        model.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        return cls(model.to(device), read_json(path / META_FILE), path)


def is_sasrec_dir(path: str | Path) -> bool:
    path = Path(path)
    return (path / META_FILE).is_file() and (path / CONFIG_FILE).is_file() and \
        read_json(path / META_FILE).get("kind") == KIND
