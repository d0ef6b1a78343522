"""``evaluate``: leave-one-out metrics over all users, full catalogue, with the baselines beside them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json
from genrec.pipeline.common import PRIOR_FIT, as_path, check_output_file
from genrec.pipeline.loading import load_trained


@dataclass
class EvaluateConfig:
    dataset: str | Path | None = None  # default: the one the model was trained on
    model: str | Path | None = None  # default DATASET/recommender
    tokenizer: str | Path | None = None  # check the model against this artifact
    split: str = "test"
    beams: int = 30
    batch_size: int = 256
    output: str | Path | None = None  # default MODEL/eval_SPLIT.json
    progress: bool = True
    fusion: dict[str, float] | None = None  # scorer -> weight; default: the chosen weights ({} = the model alone)
    new_item_share: float | None = None  # items added after training: mixed in with this share (None = slots instead)
    new_item_exposure: float | None = None  # users whose 10th place goes to a new item (None = NEW_ITEM_EXPOSURE; 0 = off)
    exclude_seen: bool | None = None  # leave the user's history out; None = as chosen after training


def evaluate(config: EvaluateConfig) -> dict:
    """Metrics over all users (full catalogue) plus the popularity and transition-prior baselines,
    written to ``output``."""
    from genrec.eval.popularity import popularity_metrics
    from genrec.recommender.fusion import prior_metrics

    if config.beams < 30:
        raise GenrecError("beams must be at least 30 (the largest K evaluated)")
    if config.split not in ("valid", "test"):
        raise GenrecError(f"unknown split {config.split!r}: use valid or test")
    from genrec.recommender.fusion import DecodingPolicy

    if config.output is not None:
        check_output_file(Path(config.output), ".json")
    recommender, dataset = load_trained(config.dataset, config.model, config.tokenizer, config.fusion,
                                        new_item_share=config.new_item_share,
                                        new_item_exposure=config.new_item_exposure, exclude_seen=config.exclude_seen)
    exclude_seen = recommender.policy.exclude_seen
    started = time.perf_counter()
    metrics = recommender.evaluate(dataset, config.split, None, config.beams, batch_size=config.batch_size,
                                   progress=config.progress)
    seconds = time.perf_counter() - started
    parts = {}  # each fused part on its own
    if recommender.policy.scorers:
        alone = DecodingPolicy(exclude_seen=exclude_seen)
        parts["model"] = recommender.with_policy(alone).evaluate(
            dataset, config.split, None, config.beams, batch_size=config.batch_size, progress=config.progress)
        for scorer, _ in recommender.policy.scorers:
            if hasattr(scorer, "evaluate"):  # a learned scorer (SASRec); the prior is below
                parts[scorer.name] = scorer.with_policy(alone).evaluate(dataset, config.split, None, config.beams)
    result = {**metrics, "split": config.split, "num_users": dataset.num_users, "num_items": dataset.num_items,
              "beams": config.beams, "fusion": recommender.policy.weights, "exclude_seen": exclude_seen,
              "alone": parts,
              "prior_fitted_on": PRIOR_FIT["train"], "decode_seconds": round(seconds, 2),
              "users_per_second": round(dataset.num_users / seconds, 1),
              "popularity": popularity_metrics(dataset, config.split, exclude_seen=exclude_seen),
              "transition_prior": prior_metrics(dataset, config.split, exclude_seen=exclude_seen),
              # which checkpoint these numbers belong to (the best by validation NDCG@10, not the last)
              "model": {key: recommender.meta.get(key) for key in ("best_step", "steps", "epochs",
                                                                   "best_valid_ndcg@10")}}
    output = as_path(config.output) or recommender.path / f"eval_{config.split}.json"
    atomic_write_json(output, result)
    result["output"] = str(output)
    return result
