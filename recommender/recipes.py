"""Training recipes: named sets of TrainConfig / RecommenderConfig fields under the user's options.

``genrec train-recommender --recipe auto|cpu|tiger`` (and ``genrec.pipeline.RecommenderTrainingConfig
(recipe=...)``) starts from the recipe, then applies --config values and explicit flags on top, field
by field:

* ``tiger``: the TIGER recipe, i.e. the dataclass defaults (T5 4+4 layers, d_model 128, d_ff 1024,
  6 heads of 64, dropout 0.1, 20,000 steps of batch 256): ~15 h on 2 CPU cores.
* ``cpu``: what fits an hour on 2 CPU cores: a small T5 (2+2 layers, d_model 128, d_ff 512, 4 heads
  of 32, no dropout) reading one encoder position per history item (``encoder_input="items"``, about
  4x the steps per second of TIGER's one position per SID token at the same quality per step:
  bench/results/encoder-input-beauty/), each position the sum of the item's SID-token embeddings,
  its projected text embedding and its (dropped-out) id embedding (``item_text``, ``item_ids``:
  bench/results/t5-options-beauty/, validation), batch 256, lr 3e-3, warmup 200, and a 45-minute
  training budget (SASRec, trained beside it, gets the same), so the whole pipeline (embed,
  tokenizer, training, the fusion-weight choice, test evaluation) ends within the hour; the hour
  benches (bench/results/hour-*/) give each 30 minutes, leaving room for their extra evaluations.
* ``auto`` (the default): ``cpu`` when no CUDA device is visible, else ``tiger``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from genrec.core.config import apply_overrides
from genrec.core.errors import GenrecError
from genrec.recommender.model_config import RecommenderConfig
from genrec.recommender.train_config import TrainConfig


@dataclass(frozen=True)
class Recipe:
    train: TrainConfig
    model: RecommenderConfig


RECIPES = {
    "tiger": Recipe(TrainConfig(), RecommenderConfig()),
    "cpu": Recipe(
        TrainConfig(batch_size=256, lr=3e-3, warmup_steps=200, eval_every=500, eval_users=2000, patience=6,
                    time_budget_minutes=45.0),
        RecommenderConfig(d_model=128, d_ff=512, num_heads=4, d_kv=32, num_encoder_layers=2, num_decoder_layers=2,
                          # dropout 0 and the bidirectional encoder (RecommenderConfig's) kept on validation:
                          # bench/results/t5-defaults-beauty/ (0.1 and item-causal level on NDCG@10)
                          dropout=0.0, encoder_input="items",
                          # item text + ids beside the SID sum: bench/results/t5-options-beauty/ (validation)
                          item_text=True, item_ids=True),
    ),
}
CHOICES = ("auto", *RECIPES)


def resolve_recipe(name: str, cuda_available: bool | None = None) -> tuple[str, str]:
    """(recipe name, why it was chosen). ``auto``: ``cpu`` without a visible CUDA device, else ``tiger``."""
    if name == "auto":
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
        return ("tiger", "GPU found") if cuda_available else ("cpu", "no GPU")
    if name not in RECIPES:
        raise GenrecError(f"unknown recipe {name!r}; choose one of: {', '.join(CHOICES)}")
    return name, f"--recipe {name}"


def recipe_configs(name: str, train: dict[str, Any] | None = None,
                   model: dict[str, Any] | None = None) -> tuple[TrainConfig, RecommenderConfig]:
    """Fresh copies of recipe ``name``'s TrainConfig and RecommenderConfig (``auto`` resolved) with the
    fields of ``train`` / ``model`` on top (a config file's sections, flags); an unknown field is an error."""
    recipe = RECIPES[resolve_recipe(name)[0]]
    return (apply_overrides(copy.deepcopy(recipe.train), train or {}, "train options"),
            apply_overrides(copy.deepcopy(recipe.model), model or {}, "model options"))


def _size(model) -> str:
    per_item = ", one position per item" if model.encoder_input == "items" else ""
    return f"T5 {model.num_encoder_layers}+{model.num_decoder_layers} layers d{model.d_model}{per_item}"


def _length(train) -> str:
    steps = f"{train.epochs:g} epochs" if train.epochs > 0 else f"{train.max_steps:,} steps"
    if train.time_budget_minutes > 0:
        return f"stops after {train.time_budget_minutes:g} min (or {steps})"
    return steps


def recipe_notice(name: str, reason: str, train, model) -> str:
    """One line: the recipe in use (as it ends up after the user's options) and how to get the other.
    ``train`` / ``model``: the final TrainConfig and RecommenderConfig."""
    other = "tiger" if name == "cpu" else "cpu"
    other_train, other_model = RECIPES[other].train, RECIPES[other].model
    size = _size(other_model).removeprefix("T5 ")
    label = f"TIGER's {size}" if other == "tiger" else f"a small T5 ({size})"
    return (f"recipe {name} ({reason}): {_size(model)}, {_length(train)}; "
            f"--recipe {other} for {label}, {_length(other_train)}")
