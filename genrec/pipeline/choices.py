"""What is chosen on validation users after training and recorded in genrec.json: the fusion
policy (``choose_fusion``) and the new-item scorer (``fit_new_items``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, read_json
from genrec.core.sharding import is_main_process
from genrec.pipeline.common import EXCLUDE_SEEN_CHOICES, PRIOR_FIT, SASREC_DIR, as_path, relative_path
from genrec.pipeline.loading import fused_scorers, load_trained, own_kind
from genrec.pipeline.new_items import NEW_ITEM_USERS, choose_text_scorer, new_item_scorers


def _sasrec_for(dataset_dir: Path, sasrec: str | Path | None, num_items: int) -> Path | None:
    """The trained SASRec to fuse: ``sasrec`` (must be one, over ``num_items`` items), else
    DATASET/sasrec when it is a finished SASRec over the same items, else None."""
    from genrec.recommender.sasrec_recommender import CONFIG_FILE, is_sasrec_dir

    path = as_path(sasrec) or dataset_dir / SASREC_DIR
    if not is_sasrec_dir(path):
        if sasrec is None:
            return None
        raise GenrecError(f"--sasrec {path}: not a trained SASRec model; run `genrec train-sasrec` first")
    trained_on = read_json(path / CONFIG_FILE)["num_items"]
    if trained_on < num_items:  # more: grown by add-items since, read as the model's version (fused_scorers)
        if sasrec is None:
            return None
        raise GenrecError(f"SASRec {path} knows {trained_on} items; this model has {num_items}")
    return path.resolve()


def choose_fusion(out: Path, dataset_dir: Path, grids: dict[str, tuple[float, ...]], users: int, seed: int,
                  sasrec: str | Path | None = None) -> dict | None:
    """Choose the decoding policy of the recommender in ``out`` on ``users`` sampled validation users
    (coordinate search over ``grids`` and whether to leave the user's own history items out,
    ``recommender.fusion.choose_weights``) and record it in its genrec.json: {"weights": {name: w},
    "exclude_seen", "sasrec": path or None, "users", "grid": every setting tried}. The new-item quota
    (for items added after training) is off for the choice: it is applied after the policy's ranking."""
    from genrec.recommender.fusion import choose_weights
    from genrec.recommender.recommender import META_FILE

    if not is_main_process():
        return None
    recommender, dataset = load_trained(dataset_dir, out, fusion={}, new_item_exposure=0)  # known items' ranking
    own = own_kind(recommender)
    sasrec_path = None if "sasrec" in own else _sasrec_for(dataset_dir, sasrec, recommender.num_items)
    grids = {name: grid for name, grid in grids.items()
             if name not in own and (name != "sasrec" or sasrec_path is not None)}
    if all(tuple(grid) == (0.0,) for grid in grids.values()):
        return None
    scorers = fused_scorers(dataset, set(grids), sasrec_path, fit="train")
    count = min(users, dataset.num_users) if users > 0 else dataset.num_users
    sample = np.sort(np.random.default_rng(seed).choice(dataset.num_users, size=count, replace=False) + 1)
    print(f"choosing fusion weights on {count:,} validation users ({', '.join(grids)})", flush=True)
    weights, exclude_seen, tried = choose_weights(
        lambda policy: recommender.with_policy(policy).evaluate(dataset, "valid", sample),
        scorers, {name: list(grid) for name, grid in grids.items()}, exclude_seen=EXCLUDE_SEEN_CHOICES)
    fusion = {"weights": weights, "exclude_seen": exclude_seen,
              "sasrec": relative_path(sasrec_path, out) if sasrec_path else None,
              "users": int(count), "grid": tried,
              "prior_fitted_on": {"evaluate": PRIOR_FIT["train"], "recommend and serve": PRIOR_FIT["all"]}}
    meta = read_json(out / META_FILE)
    meta["fusion"] = fusion
    atomic_write_json(out / META_FILE, meta)
    return fusion


def fit_new_items(out: Path, dataset_dir: Path, users: int = NEW_ITEM_USERS, seed: int = 0) -> dict | None:
    """Choose the text scorer and temperature that bring items added later into this model's
    rankings (``recommender.new_items.fit_text_scorer``, on validation users) and record them in its
    genrec.json as "new_items"."""
    from genrec.recommender.recommender import META_FILE

    if not is_main_process():
        return None
    recommender, dataset = load_trained(dataset_dir, out, fusion={}, new_item_share=0)
    settings = choose_text_scorer(recommender, dataset, new_item_scorers(out, recommender, dataset), users, seed)
    meta = read_json(out / META_FILE)
    meta["new_items"] = settings
    atomic_write_json(out / META_FILE, meta)
    return settings
