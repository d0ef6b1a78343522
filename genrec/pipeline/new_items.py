"""How items added after training enter a model's rankings: text scorers and the new-item policy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import read_json
from genrec.pipeline.common import SASREC_DIR
from genrec.pipeline.data import EmbedConfig, embed

NEW_ITEM_USERS = 2000  # validation users the new-item scorer is chosen on


NEW_ITEM_EXPOSURE = 0.4  # users whose 10th place goes to a new item (chosen on Beauty validation: docs/new-items.md)


def trained_items(recommender) -> int:
    """Items the model knew when it was trained (later ones came from add-items)."""
    return recommender.num_items - int(recommender.meta.get("items_added", 0))


def new_item_scorers(model_dir: Path, recommender, dataset, kinds: tuple[str, ...] = ("content", "sasrec"),
                     sasrec=None) -> dict:
    """The new-item text scorers of ``kinds`` available to this model (``recommender.new_items``):
    "content" always; "sasrec" from the model itself, ``sasrec`` (a SASRecRecommender already
    loaded for fusion), the SASRec it fuses, or DATASET/sasrec, when trained with text."""
    from genrec.data_prep.embeddings import item_embeddings_upto
    from genrec.recommender.new_items import TextScorer, unit_rows
    from genrec.recommender.recommender import TOKENIZER_COPY
    from genrec.recommender.sasrec_recommender import SASRecRecommender, is_sasrec_dir

    encoder = recommender.meta.get("encoder")  # a SASRec's; a T5 model's tokenizer records its own
    if recommender.kind == "t5":  # its tokenizer copy records the encoder
        encoder = read_json(Path(model_dir) / TOKENIZER_COPY / "config.json").get("encoder")
    if encoder is None:
        vectors = unit_rows(embed(EmbedConfig(dataset.path, progress=False)).vectors)
    else:  # the dataset may know more items than the model (added since for other models): its version's rows
        vectors = unit_rows(item_embeddings_upto(dataset.path, dataset.num_items, encoder))
    if len(vectors) != dataset.num_items + 1:
        raise GenrecError(f"{dataset.path}: {dataset.num_items} items but {len(vectors) - 1} embeddings; rerun `genrec embed`")
    scorers = {"content": TextScorer("content", vectors)} if "content" in kinds else {}
    if "sasrec" not in kinds:
        return scorers
    sasrec = recommender if recommender.kind == "sasrec" else sasrec
    if sasrec is None:
        recorded = (recommender.meta.get("fusion") or {}).get("sasrec")
        path = (Path(model_dir) / recorded) if recorded else Path(dataset.path) / SASREC_DIR
        sasrec = SASRecRecommender.load(path) if is_sasrec_dir(path) else None
    if sasrec is not None and sasrec.model.text_projection is not None and \
            sasrec.model.config.text_dim == vectors.shape[1]:
        scorers["sasrec"] = TextScorer("sasrec", vectors, sasrec.model)
    return scorers


def choose_text_scorer(recommender, dataset, scorers: dict, users: int = NEW_ITEM_USERS, seed: int = 0) -> dict:
    """``recommender.new_items.fit_text_scorer`` on ``users`` sampled validation users, candidates
    standing in for new items: a tenth of the catalogue (100..2,000 items)."""
    from genrec.recommender.new_items import fit_text_scorer

    examples = [dataset.split(user, "valid") for user in _validation_users(dataset, users, seed)]
    return fit_text_scorer(scorers, examples, dataset.num_items,
                           sample=int(np.clip(dataset.num_items // 10, 100, 2000)), seed=seed)


def new_item_policy(model_dir: Path, recommender, dataset, share: float | None, exposure: float | None,
                     weights: dict[str, float], fused: dict):
    """The policy part that brings items added after training into the ranking (None when there are
    none, or it is turned off): an exposure quota (``NewItemSlots``, one place for ``exposure`` of
    users, by default ``NEW_ITEM_EXPOSURE``), or with ``share`` the mixture (``NewItemMixture``).
    Scorer and temperature as chosen when add-items grew the model (``fit_new_items``; chosen here
    when it was not). ``fused``: the decoding's scorers, so a SASRec loaded for fusion is not loaded again."""
    from genrec.recommender.new_items import NewItemMixture, NewItemSlots, slot_threshold

    trained = trained_items(recommender)
    exposure = NEW_ITEM_EXPOSURE if exposure is None else exposure
    if trained >= dataset.num_items or share == 0 or (share is None and exposure == 0):
        return None
    settings = recommender.meta.get("new_items")
    kinds = (settings["scorer"],) if settings else ("content", "sasrec")
    scorers = new_item_scorers(model_dir, recommender, dataset, kinds, sasrec=fused.get("sasrec"))
    settings = settings or choose_text_scorer(recommender, dataset, scorers)
    if settings["scorer"] not in scorers:
        raise GenrecError(f"{model_dir}: its new-item scorer {settings['scorer']!r} is not available here")
    scorer, temperature = scorers[settings["scorer"]], float(settings["temperature"])
    if share is not None:
        return NewItemMixture(scorer, temperature, trained + 1, share, model_temperature=1.0 + sum(weights.values()))
    threshold = slot_threshold(scorer, temperature, validation_histories(dataset), trained + 1, exposure)
    return NewItemSlots(scorer, temperature, trained + 1, min_probability=threshold)


def _validation_users(dataset, users: int = NEW_ITEM_USERS, seed: int = 0) -> list[int]:
    """``users`` users sampled (seeded) for fitting the new-item settings on their validation cases."""
    count = min(users, dataset.num_users)
    return [int(u) + 1 for u in np.random.default_rng(seed).choice(dataset.num_users, size=count, replace=False)]


def validation_histories(dataset, users: int = NEW_ITEM_USERS, seed: int = 0) -> list[list[int]]:
    """Validation histories of ``users`` sampled users (the population a new-item threshold is set on)."""
    return [dataset.split(user, "valid")[0] for user in _validation_users(dataset, users, seed)]
