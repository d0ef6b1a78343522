"""A trained recommender as one object: the T5 model, the Semantic IDs it was trained on, their
token vocabulary, the history encoder and the trie table; ``save`` and ``load`` side by side.

Directory layout (``save``; ``genrec train-recommender`` writes it):
    config.json, model.safetensors   the T5 model (recommender.model.load_model: the T5 and its item_input)
    tokenizer/semantic_ids.npy, config.json   a copy of the tokenizer's SIDs it was trained on
    genrec.json                      dataset and tokenizer paths (relative to this folder when all
                                     lie in one dataset folder), the catalogue version it knows
                                     ("catalogue": item count and raw-id fingerprint), tokenizer
                                     checksum, training settings; written last, so its presence
                                     means the directory is complete
    metrics.jsonl, training_curves.png  the training log (written by the trainer)

Item ids are the dataset's numbering (1..M) everywhere; 0 means "no item".
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from transformers import T5ForConditionalGeneration
from transformers.utils import logging as transformers_logging

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, read_json, sha256_file
from genrec.core.layout import portable_meta
from genrec.data_prep.dataset import ProcessedDataset
from genrec.eval.ranking_metrics import DEFAULT_KS, ranking_metrics
from genrec.recommender.data import ExampleBuilder, split_examples
from genrec.recommender.decoding import recommend_items
from genrec.recommender.fusion import DecodingPolicy, prefix_states
from genrec.recommender.model import RecommenderConfig, load_model
from genrec.recommender.vocab import SidVocab
from genrec.tokenizer.artifact import CONFIG_FILE, SEMANTIC_IDS_FILE, SemanticIds, load_semantic_ids

META_FILE = "genrec.json"
TOKENIZER_COPY = "tokenizer"


class Recommender:
    """Recommendations from a T5 model over one tokenizer's Semantic IDs, decoded under a
    ``DecodingPolicy`` (per-item scorers fused into the beam; none = the model alone).
    A ``recommender.protocol.RecommenderModel``."""

    kind = "t5"

    def __init__(self, model: T5ForConditionalGeneration, sids: SemanticIds, config: RecommenderConfig,
                 meta: dict | None = None, path: Path | None = None, policy: DecodingPolicy | None = None):
        self.model = model.eval()
        self.sids = sids
        self.config = config
        self.meta = dict(meta or {})
        self.path = path
        self.vocab = SidVocab.for_semantic_ids(sids, config.num_user_buckets)
        if self.vocab.vocab_size != model.config.vocab_size:
            raise GenrecError(f"{path or 'model'}: model vocabulary ({model.config.vocab_size}) does not fit its "
                              f"SIDs ({self.vocab.vocab_size})")
        self.builder = ExampleBuilder(self.vocab.item_tokens(sids.codes), self.vocab, config.max_history,
                                      eos=config.encoder_attention != "item_causal",
                                      per_item=config.encoder_input == "items")
        self.table = self.vocab.prefix_table(sids.codes)
        self.policy = policy or DecodingPolicy()
        self._states = None  # every item's SID prefix state per position, built on first fused decode

    def with_policy(self, policy: DecodingPolicy) -> "Recommender":
        """The same model decoding under ``policy`` (this object is unchanged)."""
        return Recommender(self.model, self.sids, self.config, self.meta, self.path, policy)

    def _prior(self, exclude_seen: bool):
        """The beam's per-prefix prior for the policy's scorers and, with ``exclude_seen``, the mask
        of the history's items (None for the model alone)."""
        if not self.policy.steers_beam(exclude_seen):
            return None
        if self._states is None:
            self._states = prefix_states(self.table)
        return lambda histories, device: self.policy.prefix_log_prior(histories, self._states, device, exclude_seen)

    def _check_items(self, dataset: ProcessedDataset) -> None:
        if dataset.num_items != self.num_items:
            raise GenrecError(f"{dataset.path} has {dataset.num_items} items; the recommender was trained on "
                              f"{self.num_items}")

    @property
    def num_items(self) -> int:
        return self.sids.num_items

    def semantic_id(self, item: int) -> list[int]:
        return self.sids.codes_of([int(item)])[0].tolist()

    def recommend(self, histories: list[list[int]], top_k: int = 10, users: list[int] | None = None,
                  beams: int | None = None, exclude_seen: bool | None = None, batch_size: int = 256,
                  progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` item ids [n, top_k] (0 = no item) and scores, best first, for each history.

        ``users``: dataset user ids for the hashed user token (0 or None = a history without a
        known user). ``exclude_seen`` (None: the policy's) keeps items of the history out of the
        beam itself (``prefix_scores.UnavailableItemMask``, with the items the policy's rule leaves
        out), so ``top_k`` available items come back whenever the catalogue has them.
        """
        if top_k < 1:
            raise GenrecError("top_k must be at least 1")
        for history in histories:
            bad = [item for item in history if not 1 <= int(item) <= self.num_items]
            if bad or not history:
                raise GenrecError(f"history {history[:5]}...: needs item ids in 1..{self.num_items}" if bad
                                  else "an empty history has nothing to recommend from")
        exclude = self.policy.exclude_seen if exclude_seen is None else bool(exclude_seen)
        items, scores = recommend_items(self.model, self.builder, self.table, histories, max(top_k, beams or top_k),
                                        users=users, batch_size=batch_size, progress=progress,
                                        prior=self._prior(exclude))
        return self.policy.finish(histories, items, scores, top_k, exclude)

    def evaluate(self, dataset: ProcessedDataset, split: str, users: np.ndarray | None = None, beams: int = 30,
                 batch_size: int = 256, progress: bool = False) -> dict:
        """Leave-one-out Recall@K / NDCG@K (each K in DEFAULT_KS that fits the beam), MRR and the
        invalid-output rate (recommended ids that are no catalogue item; the trie allows none) and
        empty-slot rate over ``users`` (None = all), full catalogue, decoded under the policy: a
        target the beam did not generate is a miss."""
        self._check_items(dataset)

        def rank(histories, users_):
            return self.recommend(histories, beams, users=users_, beams=beams, batch_size=batch_size,
                                  progress=progress)[0]

        return ranked_metrics(rank, dataset, split, users, beams)

    # -- on disk ----------------------------------------------------------------------------------
    def save(self, path: str | Path, meta: dict | None = None) -> Path:
        """Write model, tokenizer copy and genrec.json into ``path`` (other files there stay)."""
        if self.sids.path is None:
            raise GenrecError("these Semantic IDs were not loaded from a tokenizer artifact; cannot bundle them")
        path = Path(path)
        checksum = bundle_semantic_ids(self.sids.path, path)
        transformers_logging.disable_progress_bar()
        self.model.save_pretrained(path)
        self.meta.update(meta or {})
        self.meta["tokenizer_checksum"] = checksum
        self.meta = portable_meta(self.meta, path)
        atomic_write_json(path / META_FILE, self.meta)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path, tokenizer: str | Path | None = None, device: str = "cpu") -> "Recommender":
        """Load a saved recommender. If ``tokenizer`` is given it must be the one trained on."""
        path = Path(path)
        if not (path / META_FILE).is_file() or not (path / "config.json").is_file():
            raise GenrecError(f"{path}: not a trained recommender (no {META_FILE}); run `genrec train-recommender` first")
        meta = read_json(path / META_FILE)
        sids = load_semantic_ids(path / TOKENIZER_COPY)
        if sids.checksum != meta.get("tokenizer_checksum"):
            raise GenrecError(f"{path}: bundled tokenizer does not match the checksum recorded at training time")
        if tokenizer is not None:
            other = load_semantic_ids(tokenizer)
            if other.checksum != meta["tokenizer_checksum"]:
                raise GenrecError(
                    f"tokenizer {tokenizer} is not the one this recommender was trained on "
                    f"(SID checksum {other.checksum[:12]} != {meta['tokenizer_checksum'][:12]}); retrain the "
                    "recommender or pass the matching tokenizer")
        transformers_logging.disable_progress_bar()  # a "Loading weights" bar for a 10 MB model is noise
        model = load_model(path, sids).to(device)
        config = RecommenderConfig(**model.config.genrec["recommender"])
        return cls(model, sids, config, meta, path)


def bundle_semantic_ids(tokenizer_dir: str | Path, model_dir: str | Path) -> str:
    """Copy a tokenizer artifact's semantic_ids.npy and config.json into MODEL/tokenizer (each file
    replaced atomically; nothing to do when it is that folder) and return the copy's checksum, which
    genrec.json must record (written after this, so it appears only once the copy is complete)."""
    target = Path(model_dir) / TOKENIZER_COPY
    target.mkdir(parents=True, exist_ok=True)
    if target.resolve() != Path(tokenizer_dir).resolve():
        for name in (SEMANTIC_IDS_FILE, CONFIG_FILE):
            shutil.copy2(Path(tokenizer_dir) / name, target / f".{name}.tmp")
            os.replace(target / f".{name}.tmp", target / name)
    return sha256_file(target / SEMANTIC_IDS_FILE)


def ranked_metrics(rank, dataset: ProcessedDataset, split: str, users: np.ndarray | None, k: int) -> dict:
    """Leave-one-out metrics of ``rank(histories, users) -> [n, k] item ids`` over ``users`` of
    ``split`` (None = all): Recall / NDCG at each K in DEFAULT_KS up to ``k``, MRR, the share of
    recommended ids that are no catalogue item (``invalid_rate``) and of slots left empty (``empty_rate``,
    0 = fewer items than slots)."""
    examples = split_examples(dataset, split, users)
    items = rank([h for _, h, _ in examples], [u for u, _, _ in examples])
    metrics = ranking_metrics(items, np.asarray([t for _, _, t in examples]), tuple(x for x in DEFAULT_KS if x <= k))
    produced = items[items != 0]
    metrics["invalid_rate"] = float(((produced < 1) | (produced > dataset.num_items)).mean()) if produced.size else 0.0
    metrics["empty_rate"] = float((items == 0).mean())
    return metrics
