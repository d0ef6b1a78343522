"""The typed pipeline: one function per stage, each taking a dataclass config.

The CLI, ``genrec demo``, ``genrec compare`` and the benchmarks all call these; nothing chains
stages by building command lines.

    from genrec import pipeline as gp

    data = gp.prepare(gp.PrepareConfig("demo", out="data/demo"))
    gp.embed(gp.EmbedConfig(data.path))
    tok = gp.train_tokenizer(gp.TokenizerTrainingConfig(data.path, method="rkmeans"))
    rec = gp.train_recommender(gp.RecommenderTrainingConfig(data.path, train={"max_steps": 200}))
    print(gp.evaluate(gp.EvaluateConfig(data.path, split="test"))["recall@10"])
    print(gp.recommend(gp.RecommendConfig(data.path, user="1", top_k=5)).items)

Each stage reads and writes the on-disk layout in ``genrec.core.layout``, so any stage can also be
run alone on what an earlier one left.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genrec.core.config import apply_overrides
from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, fault_point, read_json
from genrec.core.layout import (RECOMMENDER_DIR, TOKENIZER_DIR, default_dataset_dir, portable_path, recorded_path,
                                resolve_dataset_dir)
from genrec.core.limits import MAX_HISTORY


def _path(value: str | os.PathLike | None) -> Path | None:
    return None if value is None else Path(value)


# -- prepare --------------------------------------------------------------------------------------
@dataclass
class PrepareConfig:
    name: str  # a preset: amazon-beauty, ml-1m, lastfm, demo, custom, ...
    out: str | Path | None = None  # default data/NAME
    raw_dir: str | Path | None = None  # default data/raw/NAME (downloaded there if missing)
    min_count: int | None = None  # k-core threshold (default: the preset's)
    allow_download: bool = True
    interactions: str | Path | None = None  # custom preset only
    items: str | Path | None = None
    user_column: str = "user"
    item_column: str = "item"
    time_column: str = "timestamp"
    time_format: str | None = None  # strptime format of the time column (default: numbers or ISO-8601 dates)
    item_id_column: str = "id"
    num_items: int = 10_000  # synthetic preset only (data_prep.synthetic)
    num_users: int | None = None  # synthetic: default 2 x num_items
    seed: int = 0  # synthetic


@dataclass
class PreparedDataset:
    path: Path
    stats: dict


def prepare(config: PrepareConfig) -> PreparedDataset:
    from genrec.data_prep.prepare import prepare_dataset
    from genrec.data_prep.presets import PRESETS

    if config.name not in PRESETS:
        raise GenrecError(f"unknown dataset {config.name!r}; choose one of: {', '.join(PRESETS)}")
    if config.min_count is not None and config.min_count < 1:
        raise GenrecError(f"min_count (--min-count) must be at least 1, got {config.min_count}")
    raw_dir = _path(config.raw_dir)
    if raw_dir is not None and not raw_dir.is_dir():
        raise GenrecError(f"--raw-dir {raw_dir}: no such directory")
    out = _path(config.out) or default_dataset_dir(config.name)
    if config.name == "synthetic":
        from genrec.data_prep.synthetic import SyntheticConfig

        stats = prepare_dataset("synthetic", out, Path(), synthetic=SyntheticConfig(
            num_items=config.num_items, num_users=config.num_users, seed=config.seed))
        return PreparedDataset(out, stats)
    stats = prepare_dataset(
        config.name, out, raw_dir or Path("data") / "raw" / config.name, min_count=config.min_count,
        allow_download=config.allow_download, interactions=_path(config.interactions), items=_path(config.items),
        user_col=config.user_column, item_col=config.item_column, time_col=config.time_column,
        time_format=config.time_format, id_col=config.item_id_column)
    return PreparedDataset(out, stats)


# -- embed ----------------------------------------------------------------------------------------
@dataclass
class EmbedConfig:
    dataset: str | Path | None = None  # default: the last prepared dataset
    encoder: str | None = None  # default Sentence-T5, bundled MiniLM (with a warning) when offline
    batch_size: int = 64
    device: str | None = None
    progress: bool = True


def embed(config: EmbedConfig):
    """Item embeddings (cached per encoder and item texts): a ``data_prep.embeddings.ItemEmbeddings``."""
    from genrec.data_prep.embeddings import load_or_compute_item_embeddings

    return load_or_compute_item_embeddings(resolve_dataset_dir(_str(config.dataset)), encoder=config.encoder,
                                           batch_size=config.batch_size, device=config.device,
                                           show_progress=config.progress)


def _str(value) -> str | None:
    return None if value is None else str(value)


# -- train-tokenizer ------------------------------------------------------------------------------
@dataclass
class TokenizerTrainingConfig:
    dataset: str | Path | None = None
    # the tokenizer study's choice on validation (bench/results/compare-beauty-steps, README "Tokenizers")
    method: str = "opq"
    options: dict[str, Any] = field(default_factory=dict)  # the method's config fields
    out: str | Path | None = None  # default DATASET/tokenizer
    encoder: str | None = None
    progress: bool = True
    # > 0: the tokenizer reads [text, W * collaborative vectors] (data_prep.collaborative: PPMI-SVD of
    # the training sequences' co-occurrence, collaborative_dim wide); 0 = text embeddings only. The
    # default 1 is the input the tokenizer study chose on validation (bench/results/compare-beauty-steps).
    collaborative_weight: float = 1.0
    collaborative_dim: int = 64


TOKENIZER_INPUT_FIELDS = ("collaborative_weight", "collaborative_dim")  # what the tokenizer reads, not how it fits


def tokenizer_config_from(section: dict[str, Any], **fields) -> TokenizerTrainingConfig:
    """A config file's "tokenizer" section as a TokenizerTrainingConfig: "method", the input fields
    (TOKENIZER_INPUT_FIELDS), everything else the method's options."""
    options = dict(section)
    method = options.pop("method", TokenizerTrainingConfig.method)
    inputs = {name: options.pop(name) for name in TOKENIZER_INPUT_FIELDS if name in options}
    return TokenizerTrainingConfig(method=method, options=options, **{**inputs, **fields})


@dataclass
class FittedTokenizer:
    tokenizer: Any  # a genrec.tokenizer.base.Tokenizer
    sids: Any  # int64 [items, L + 1]: codes plus the collision suffix
    metrics: dict


def sid_metrics_for(tokenizer, embeddings, codes) -> dict:
    """SID quality (eval.sid_metrics) of ``codes`` [items, L] made by ``tokenizer`` from ``embeddings``."""
    from genrec.eval.sid_metrics import compute_sid_metrics

    return compute_sid_metrics(codes, embeddings, tokenizer.codebooks(), tokenizer.codebook_sizes,
                               reconstruction=tokenizer.decode(codes))


def fit_tokenizer(embeddings, method: str, options: dict[str, Any] | None = None,
                  progress: bool = True) -> FittedTokenizer:
    """Fit on ``embeddings`` [items, d], encode every item, add collision suffixes, measure SIDs."""
    from genrec.tokenizer.registry import build_tokenizer
    from genrec.tokenizer.semantic_ids import add_collision_suffix

    tokenizer = build_tokenizer(method, options)
    started = time.perf_counter()
    tokenizer.fit(embeddings, progress=progress)
    fit_seconds = time.perf_counter() - started
    codes = tokenizer.encode(embeddings)
    metrics = sid_metrics_for(tokenizer, embeddings, codes)
    metrics["training_seconds"] = fit_seconds
    metrics["method"] = method
    return FittedTokenizer(tokenizer, add_collision_suffix(codes), metrics)


@dataclass
class TrainedTokenizerArtifact:
    path: Path
    metrics: dict
    encoder: str


def train_tokenizer(config: TokenizerTrainingConfig) -> TrainedTokenizerArtifact:
    from genrec.tokenizer.artifact import write_artifact
    from genrec.tokenizer.registry import build_tokenizer

    dataset = resolve_dataset_dir(_str(config.dataset))
    out = _path(config.out) or dataset / TOKENIZER_DIR
    build_tokenizer(config.method, config.options)  # reject bad options before the (slow) embedding step
    if config.collaborative_weight < 0 or config.collaborative_dim < 1:
        raise GenrecError("collaborative_weight must be >= 0 and collaborative_dim >= 1")
    embeddings = embed(EmbedConfig(dataset, encoder=config.encoder, progress=config.progress))
    started = time.perf_counter()
    vectors, extra, arrays = embeddings.vectors, {"dataset": portable_path(dataset, out)}, {}
    if config.collaborative_weight > 0:
        from genrec.data_prep.collaborative import COLLABORATIVE_FILE, collaborative_vectors, tokenizer_vectors
        from genrec.data_prep.dataset import load_processed_dataset

        data = load_processed_dataset(dataset)
        if data.num_items != len(vectors):
            raise GenrecError(f"{dataset}: {data.num_items} items but {len(vectors)} embeddings; rerun `genrec embed`")
        collaborative = collaborative_vectors(data.train_sequences(), data.num_items, dim=config.collaborative_dim)
        vectors = tokenizer_vectors(vectors, collaborative, config.collaborative_weight)
        extra["collaborative"] = {"weight": config.collaborative_weight, "dim": config.collaborative_dim}
        arrays[COLLABORATIVE_FILE] = collaborative
    result = fit_tokenizer(vectors, config.method, config.options, progress=config.progress)
    result.metrics["total_seconds"] = time.perf_counter() - started
    result.metrics["encoder"] = embeddings.encoder
    write_artifact(out, result.tokenizer, result.sids, result.metrics, embeddings.encoder, extra=extra, arrays=arrays)
    return TrainedTokenizerArtifact(out, result.metrics, embeddings.encoder)


# -- train-recommender ----------------------------------------------------------------------------
FUSION_GRIDS = {"prior": (0.0, 1.0, 2.0, 4.0, 8.0), "sasrec": (0.0, 0.5, 1.0, 2.0, 4.0)}
EXCLUDE_SEEN_CHOICES = (False, True)  # tried on validation: leave the user's own history items out or not
SASREC_DIR = "sasrec"


@dataclass
class RecommenderTrainingConfig:
    dataset: str | Path | None = None
    tokenizer: str | Path | None = None  # default DATASET/tokenizer
    out: str | Path | None = None  # default DATASET/recommender
    train: dict[str, Any] = field(default_factory=dict)  # recommender.train.TrainConfig fields
    model: dict[str, Any] = field(default_factory=dict)  # recommender.model.RecommenderConfig fields
    restart: bool = False  # discard checkpoints in ``out``
    progress: bool = True
    # recommender.recipes: "tiger" (TIGER's size), "cpu" (a small T5, 45-minute budget) or "auto"
    # (cpu without a visible CUDA device); ``train`` / ``model`` override the recipe's fields.
    recipe: str = "auto"
    # Fused decoding (recommender.fusion.DecodingPolicy): after training, the weights of the
    # item-transition prior ("prior") and, when a trained SASRec is there ("sasrec"), of its item
    # distribution are chosen on ``fusion_users`` sampled validation users by a coordinate search
    # over these grids (best NDCG@10) and stored in genrec.json; evaluate / recommend / serve use
    # them. Every grid (0,) = the model alone, nothing tried.
    fusion_grids: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(FUSION_GRIDS))
    fusion_users: int = 5000
    sasrec: str | Path | None = None  # a trained SASRec to fuse (default DATASET/sasrec when it is there)


@dataclass
class TrainedRecommender:
    path: Path
    state: dict  # step, best_step, best_ndcg@10, best_ndcg@10_se, stop_reason, train_seconds, ...
    already_done: bool = False  # the run had finished before this call
    recipe: str | None = None  # the recipe trained with (None: already done)
    notice: str | None = None  # the one-line recipe notice printed at the start
    fusion: dict | None = None  # the chosen fusion weight and each weight's validation metrics


def _finished(out: Path, meta: dict, fusion: dict | None) -> TrainedRecommender:
    """A training run that had finished before this call, from its genrec.json."""
    return TrainedRecommender(out, {"step": meta["steps"], "best_step": meta["best_step"],
                                    "best_ndcg@10": meta["best_valid_ndcg@10"],
                                    "best_ndcg@10_se": meta.get("best_valid_ndcg@10_se"),
                                    "stop_reason": meta.get("stop_reason")}, already_done=True, fusion=fusion)


def train_recommender(config: RecommenderTrainingConfig) -> TrainedRecommender:
    """Train (resuming from ``out``'s checkpoint if one is there) and write the recommender."""
    from genrec.core.seeding import seed_everything
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.model import RecommenderConfig
    from genrec.recommender.recipes import apply_recipe, recipe_notice, resolve_recipe
    from genrec.recommender.recommender import META_FILE
    from genrec.recommender.train import TrainConfig
    from genrec.recommender.train import train_recommender as run_training
    from genrec.tokenizer.artifact import load_semantic_ids

    dataset_dir = resolve_dataset_dir(_str(config.dataset))
    tokenizer_dir = _path(config.tokenizer) or dataset_dir / TOKENIZER_DIR
    out = _path(config.out) or dataset_dir / RECOMMENDER_DIR
    recipe, reason = resolve_recipe(config.recipe)
    train_options, model_options = apply_recipe(recipe, config.train, config.model)
    train_config = apply_overrides(TrainConfig(), train_options, "train options")
    model_config = apply_overrides(RecommenderConfig(), model_options, "model options")
    _check_grids(config.fusion_grids)
    if config.restart:
        remove_training_output(out)
    if (out / META_FILE).is_file():  # finished (the trainer removes its checkpoint then)
        meta = read_json(out / META_FILE)
        # A run stopped while choosing the fusion weight finishes that step now.
        fusion = meta.get("fusion") or choose_fusion(out, dataset_dir, config.fusion_grids, config.fusion_users,
                                                     train_config.seed, config.sasrec)
        return _finished(out, meta, fusion)
    notice = recipe_notice(recipe, reason, train_config, model_config)
    if os.environ.get("RANK", "0") == "0":  # accelerate launch: one line, not one per process
        print(notice, flush=True)
    seed_everything(train_config.seed)
    dataset = load_processed_dataset(dataset_dir)
    sids = load_semantic_ids(tokenizer_dir)
    if sids.num_items != dataset.num_items:
        raise GenrecError(f"tokenizer {tokenizer_dir} has SIDs for {sids.num_items} items but {dataset_dir} "
                          f"has {dataset.num_items}")
    text, meta = None, {"recipe": recipe}
    if model_config.item_text:
        text, meta["item_text_encoder"] = _text_vectors(dataset_dir, dataset.num_items, config.progress)
    with full_disk_as_enospc(out):
        state = run_training(dataset, sids, out, model_config, train_config, progress=config.progress,
                             meta=meta, text=text)
    fusion = choose_fusion(out, dataset_dir, config.fusion_grids, config.fusion_users, train_config.seed,
                           config.sasrec)
    return TrainedRecommender(out, state, recipe=recipe, notice=notice, fusion=fusion)


def _text_vectors(dataset_dir: Path, num_items: int, progress: bool) -> tuple[np.ndarray, str]:
    """The dataset's item text embeddings [M, d] (computed once and cached by ``embed``) and their encoder."""
    embeddings = embed(EmbedConfig(dataset_dir, progress=progress))
    if len(embeddings.vectors) != num_items:
        raise GenrecError(f"{dataset_dir}: {num_items} items but {len(embeddings.vectors)} embeddings; rerun `genrec embed`")
    return embeddings.vectors, embeddings.encoder


def low_on_space(path: Path, margin: int = 16 << 20) -> bool:
    """Whether the file system of ``path`` (or its nearest existing parent) has under ``margin``
    bytes free: a failed write there is taken for a full disk."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free < margin


@contextlib.contextmanager
def full_disk_as_enospc(out: Path):
    """A training run's failed checkpoint write on a full disk as the OSError ENOSPC it is: torch.save
    reports it as a RuntimeError ("unexpected pos ...") without an errno, which the CLI would print
    as a crash."""
    try:
        yield
    except RuntimeError as exc:
        if not low_on_space(out):
            raise
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out)) from exc


# Files only a recommender training run writes into its --out folder.
TRAINING_MARKERS = ("genrec.json", "checkpoint/trainer_state.json", "metrics.jsonl")


def remove_training_output(out: Path) -> None:
    """``--restart``: delete ``out`` if it is a genrec training output (one of TRAINING_MARKERS), or
    holds nothing but the trainer's temporary checkpoint folders (a run killed before its first
    checkpoint), or is empty. Any other folder or file may be the user's, so deleting it is refused."""
    if not out.exists() and not out.is_symlink():
        return
    if out.is_symlink() or not out.is_dir():
        raise GenrecError(f"--restart: {out} is not a folder; --out must name a genrec training output folder")
    ours = any((out / marker).is_file() for marker in TRAINING_MARKERS)
    if not ours and not all(entry.name.startswith(".checkpoint.") for entry in out.iterdir()):
        raise GenrecError(f"--restart: {out} is not a genrec training output (no {', '.join(TRAINING_MARKERS)}); "
                          "not deleting it: pass another --out, or remove it yourself")
    shutil.rmtree(out)


# -- train-sasrec ---------------------------------------------------------------------------------
@dataclass
class SASRecTrainingConfig:
    dataset: str | Path | None = None
    out: str | Path | None = None  # default DATASET/sasrec
    train: dict[str, Any] = field(default_factory=dict)  # recommender.sasrec_train.SASRecTrainConfig fields
    model: dict[str, Any] = field(default_factory=dict)  # recommender.sasrec.SASRecConfig fields
    text: bool = True  # item vectors read the items' text embeddings (False: learned ids only)
    encoder: str | None = None  # the text encoder (default as `genrec embed`)
    restart: bool = False  # discard checkpoints in ``out``
    progress: bool = True
    # After training, the weight of the item-transition prior fused with SASRec's scores is chosen
    # on ``fusion_users`` validation users (as for train-recommender); (0,) = SASRec alone.
    fusion_grids: dict[str, tuple[float, ...]] = field(default_factory=lambda: {"prior": FUSION_GRIDS["prior"]})
    fusion_users: int = 5000


def train_sasrec(config: SASRecTrainingConfig) -> TrainedRecommender:
    """Train (resuming from ``out``'s checkpoint if one is there) and write a SASRec model."""
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.recommender import META_FILE
    from genrec.recommender.sasrec import SASRecConfig
    from genrec.recommender.sasrec_train import SASRecTrainConfig
    from genrec.recommender.sasrec_train import train_sasrec as run_training

    dataset_dir = resolve_dataset_dir(_str(config.dataset))
    out = _path(config.out) or dataset_dir / SASREC_DIR
    train_config = apply_overrides(SASRecTrainConfig(), config.train, "train options")
    train_config.check()
    _check_grids(config.fusion_grids)
    if config.restart:
        remove_training_output(out)
    if (out / META_FILE).is_file():
        meta = read_json(out / META_FILE)
        fusion = meta.get("fusion") or choose_fusion(out, dataset_dir, config.fusion_grids, config.fusion_users,
                                                     train_config.seed)
        return _finished(out, meta, fusion)
    dataset = load_processed_dataset(dataset_dir)
    text = None
    if config.text:
        embeddings = embed(EmbedConfig(dataset_dir, encoder=config.encoder, progress=config.progress))
        text, text_encoder = embeddings.vectors, embeddings.encoder
        if len(text) != dataset.num_items:
            raise GenrecError(f"{dataset_dir}: {dataset.num_items} items but {len(text)} embeddings; rerun `genrec embed`")
    model_config = apply_overrides(SASRecConfig(num_items=dataset.num_items,
                                                text_dim=0 if text is None else text.shape[1]),
                                   config.model, "model options")
    model_config.check()
    with full_disk_as_enospc(out):
        state = run_training(dataset, out, model_config, train_config, text, progress=config.progress,
                             meta={"text": config.text, "encoder": None if text is None else text_encoder})
    fusion = choose_fusion(out, dataset_dir, config.fusion_grids, config.fusion_users, train_config.seed)
    return TrainedRecommender(out, state, fusion=fusion)


def _check_grids(grids: dict[str, tuple[float, ...]]) -> None:
    for name, grid in grids.items():
        if name not in FUSION_GRIDS:
            raise GenrecError(f"unknown scorer {name!r} in fusion weights; choose from {', '.join(FUSION_GRIDS)}")
        if not grid or any(not weight >= 0 for weight in grid):
            raise GenrecError(f"fusion weights of {name} must be >= 0 (0 = not fused), got {list(grid)}")


def _sasrec_for(dataset_dir: Path, sasrec: str | Path | None, num_items: int) -> Path | None:
    """The trained SASRec to fuse: ``sasrec`` (must be one, over ``num_items`` items), else
    DATASET/sasrec when it is a finished SASRec over the same items, else None."""
    from genrec.recommender.sasrec_recommender import CONFIG_FILE, is_sasrec_dir

    path = _path(sasrec) or dataset_dir / SASREC_DIR
    if not is_sasrec_dir(path):
        if sasrec is None:
            return None
        raise GenrecError(f"--sasrec {path}: not a trained SASRec model; run `genrec train-sasrec` first")
    trained_on = read_json(path / CONFIG_FILE)["num_items"]
    if trained_on < num_items:  # more: grown by add-items since, read as the model's version (_scorers)
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

    if os.environ.get("RANK", "0") != "0":
        return None
    recommender, dataset = load_trained(dataset_dir, out, fusion={}, new_item_exposure=0)  # known items' ranking
    own = _own_kind(recommender)
    sasrec_path = None if "sasrec" in own else _sasrec_for(dataset_dir, sasrec, recommender.num_items)
    grids = {name: grid for name, grid in grids.items()
             if name not in own and (name != "sasrec" or sasrec_path is not None)}
    if all(tuple(grid) == (0.0,) for grid in grids.values()):
        return None
    scorers = _scorers(dataset, set(grids), sasrec_path, fit="train")
    count = min(users, dataset.num_users) if users > 0 else dataset.num_users
    sample = np.sort(np.random.default_rng(seed).choice(dataset.num_users, size=count, replace=False) + 1)
    print(f"choosing fusion weights on {count:,} validation users ({', '.join(grids)})", flush=True)
    weights, exclude_seen, tried = choose_weights(
        lambda policy: recommender.with_policy(policy).evaluate(dataset, "valid", sample),
        scorers, {name: list(grid) for name, grid in grids.items()}, exclude_seen=EXCLUDE_SEEN_CHOICES)
    fusion = {"weights": weights, "exclude_seen": exclude_seen,
              "sasrec": _relative(sasrec_path, out) if sasrec_path else None,
              "users": int(count), "grid": tried,
              "prior_fitted_on": {"evaluate": PRIOR_FIT["train"], "recommend and serve": PRIOR_FIT["all"]}}
    meta = read_json(out / META_FILE)
    meta["fusion"] = fusion
    atomic_write_json(out / META_FILE, meta)
    return fusion


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
    if recommender.sids is not None:
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
    sasrec = recommender if recommender.sids is None else sasrec
    if sasrec is None:
        recorded = (recommender.meta.get("fusion") or {}).get("sasrec")
        path = (Path(model_dir) / recorded) if recorded else Path(dataset.path) / SASREC_DIR
        sasrec = SASRecRecommender.load(path) if is_sasrec_dir(path) else None
    if sasrec is not None and sasrec.model.text_projection is not None and \
            sasrec.model.config.text_dim == vectors.shape[1]:
        scorers["sasrec"] = TextScorer("sasrec", vectors, sasrec.model)
    return scorers


def fit_new_items(out: Path, dataset_dir: Path, users: int = NEW_ITEM_USERS, seed: int = 0) -> dict | None:
    """Choose the text scorer and temperature that bring items added later into this model's
    rankings (``recommender.new_items.fit_text_scorer``, on validation users) and record them in its
    genrec.json as "new_items"."""
    from genrec.recommender.recommender import META_FILE

    if os.environ.get("RANK", "0") != "0":
        return None
    recommender, dataset = load_trained(dataset_dir, out, fusion={}, new_item_share=0)
    settings = _fit_text_scorer(recommender, dataset, new_item_scorers(out, recommender, dataset), users, seed)
    meta = read_json(out / META_FILE)
    meta["new_items"] = settings
    atomic_write_json(out / META_FILE, meta)
    return settings


def _fit_text_scorer(recommender, dataset, scorers: dict, users: int = NEW_ITEM_USERS, seed: int = 0) -> dict:
    """``recommender.new_items.fit_text_scorer`` on ``users`` sampled validation users, candidates
    standing in for new items: a tenth of the catalogue (100..2,000 items)."""
    from genrec.recommender.new_items import fit_text_scorer

    examples = [dataset.split(user, "valid") for user in _validation_users(dataset, users, seed)]
    return fit_text_scorer(scorers, examples, dataset.num_items,
                           sample=int(np.clip(dataset.num_items // 10, 100, 2000)), seed=seed)


def _new_item_policy(model_dir: Path, recommender, dataset, share: float | None, exposure: float | None,
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
    settings = settings or _fit_text_scorer(recommender, dataset, scorers)
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


def _own_kind(recommender) -> set[str]:
    """Scorer names a recommender is itself (a SASRec model is not fused with another SASRec)."""
    return {"sasrec"} if recommender.sids is None else set()


def _relative(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (so a copied folder pair keeps working), absolute if on another drive."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(base).resolve())
    except ValueError:
        return str(Path(path).resolve())


def _scorers(dataset, names: set[str], sasrec_path: Path | None, fit: str, successors: int = 0) -> dict:
    """The named per-item scorers for fused decoding. ``fit``: "train" fits count-based scorers on
    the training parts (all but each user's last two items: evaluation), "all" on every
    interaction (serving). ``successors``: followers the transition prior keeps per item (0 = all)."""
    from genrec.recommender.fusion import TransitionPrior
    from genrec.recommender.sasrec_recommender import SASRecRecommender

    scorers = {}
    if "prior" in names:
        sequences = dataset.train_sequences() if fit == "train" else dataset.sequences
        scorers["prior"] = TransitionPrior.fit(sequences, dataset.num_items, successors=successors)
    if "sasrec" in names and sasrec_path is not None:
        sasrec = SASRecRecommender.load(sasrec_path)
        if sasrec.num_items < dataset.num_items:
            raise GenrecError(f"the SASRec {sasrec_path} knows {sasrec.num_items} items, the model fusing it "
                              f"{dataset.num_items}: rerun `genrec add-items` to grow it too")
        scorers["sasrec"] = sasrec.with_items(dataset.num_items)  # grown since: read as the model's version
    return scorers


# -- evaluate and recommend -----------------------------------------------------------------------
PRIOR_FIT = {"train": "training parts (all but each user's last two items)", "all": "every interaction"}


def load_trained(dataset: str | Path | None, model: str | Path | None, tokenizer: str | Path | None = None,
                 fusion: dict[str, float] | None = None, fit: str = "train", new_item_share: float | None = None,
                 prior_successors: int | None = None, new_item_exposure: float | None = None,
                 exclude_seen: bool | None = None):
    """(recommender, ProcessedDataset): ``model`` or DATASET/recommender (a T5 ``Recommender`` or a
    ``SASRecRecommender``), and the dataset it was trained on unless ``dataset`` names another one
    with the same items. It decodes under the policy of ``fusion`` (scorer name -> weight; {} = the
    model alone), by default the weights chosen after training (genrec.json "fusion"). ``fit``: the
    count-based scorers read the training parts ("train": evaluation) or every interaction
    ("all": recommend and serve). Items added after training get the 10th place for
    ``new_item_exposure`` of users (None: ``NEW_ITEM_EXPOSURE``; 0: not at all), or with
    ``new_item_share`` that part of a mixture (0: not at all; ``_new_item_policy``).
    ``prior_successors``: followers the transition prior keeps per item (0 = all; default:
    genrec.json "fusion" "prior_successors", else all). ``exclude_seen``: the policy leaves the
    user's own history items out (None: as chosen after training, genrec.json "fusion"
    "exclude_seen", else not)."""
    from genrec.data_prep.dataset import known_catalogue, load_processed_dataset
    from genrec.recommender.fusion import DecodingPolicy
    from genrec.recommender.recommender import Recommender
    from genrec.recommender.sasrec_recommender import SASRecRecommender, is_sasrec_dir

    if fit not in PRIOR_FIT:
        raise GenrecError(f"fit must be one of {', '.join(PRIOR_FIT)}, got {fit!r}")
    model_dir = _path(model) or resolve_dataset_dir(_str(dataset)) / RECOMMENDER_DIR
    if is_sasrec_dir(model_dir):
        recommender = SASRecRecommender.load(model_dir)
    else:
        recommender = Recommender.load(model_dir, tokenizer=tokenizer)
    recorded = recorded_path(recommender.meta.get("dataset"), model_dir)
    data = load_processed_dataset(resolve_dataset_dir(_str(dataset) or _str(recorded)))
    # The catalogue version the model knows: a dataset grown since by add-items is read as it was then.
    data = known_catalogue(data, recommender.meta.get("catalogue"), recommender.num_items, model_dir)
    chosen = recommender.meta.get("fusion") or {}
    weights = dict(chosen.get("weights", {"prior": chosen["weight"]} if "weight" in chosen else {}))
    if fusion is not None:
        unknown = sorted(set(fusion) - set(FUSION_GRIDS))
        if unknown:
            raise GenrecError(f"unknown scorer {', '.join(unknown)} in fusion weights; choose from "
                              f"{', '.join(FUSION_GRIDS)}")
        weights = dict(fusion)
    for name, weight in weights.items():
        if not weight >= 0:
            raise GenrecError(f"fusion weight of {name} must be >= 0 (0 = not fused), got {weight}")
    needed = {name for name, weight in weights.items() if weight > 0}
    sasrec_path = None
    if "sasrec" in needed:
        if "sasrec" in _own_kind(recommender):
            raise GenrecError("a SASRec model cannot fuse another SASRec; give it a prior weight only")
        recorded = chosen.get("sasrec")
        if recorded is None:
            raise GenrecError(f"{model_dir}: no SASRec was fused at training time; train one (`genrec train-sasrec`) "
                              "and rerun `genrec train-recommender` to choose its weight")
        sasrec_path = (Path(model_dir) / recorded).resolve()
        if not is_sasrec_dir(sasrec_path):
            raise GenrecError(f"{model_dir}: the SASRec it fuses ({sasrec_path}) is missing")
    if new_item_share is not None and not 0 <= new_item_share < 1:
        raise GenrecError(f"the new items' share must be in [0, 1), got {new_item_share}")
    if new_item_exposure is not None and not 0 <= new_item_exposure <= 1:
        raise GenrecError(f"the new items' exposure must be in [0, 1], got {new_item_exposure}")
    successors = chosen.get("prior_successors", 0) if prior_successors is None else prior_successors
    fused_weights = {n: weights[n] for n in needed}
    scorers = _scorers(data, needed, sasrec_path, fit, successors)
    exclude = bool(chosen.get("exclude_seen", False)) if exclude_seen is None else bool(exclude_seen)
    policy = DecodingPolicy.from_weights(fused_weights, scorers, _new_item_policy(
        model_dir, recommender, data, new_item_share, new_item_exposure, fused_weights, scorers), exclude)
    return recommender.with_policy(policy), data


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
        _check_output_file(Path(config.output), ".json")
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
    output = _path(config.output) or recommender.path / f"eval_{config.split}.json"
    atomic_write_json(output, result)
    result["output"] = str(output)
    return result


@dataclass
class RecommendConfig:
    dataset: str | Path | None = None
    model: str | Path | None = None
    user: str | None = None  # raw user id, else dataset number "17" / "#17" (ProcessedDataset lookup_id)
    history: list[str] | None = None  # item ids under the same rule, for a history without a user
    top_k: int = 10
    beams: int = 20
    exclude_seen: bool | None = None  # leave the user's history out; None = as chosen after training
    fusion: dict[str, float] | None = None  # scorer -> weight; default: the chosen weights ({} = the model alone)
    new_item_share: float | None = None  # items added after training: mixed in with this share (None = slots instead)
    new_item_exposure: float | None = None  # users whose 10th place goes to a new item (None = NEW_ITEM_EXPOSURE; 0 = off)


@dataclass
class Recommendations:
    user: int  # 0 for a given history
    user_raw_id: str | None
    history: list[dict]  # item_id, raw_id, title, oldest first
    items: list[dict]  # rank, item_id, raw_id, title, sid, score
    fusion: dict[str, float] = field(default_factory=dict)  # the fused scorers' weights ({} = the model alone)


def recommend(config: RecommendConfig) -> Recommendations:
    if config.history and config.user is not None:
        raise GenrecError("give a user (--user) or a history (--history), not both")
    recommender, dataset = load_trained(config.dataset, config.model, fusion=config.fusion, fit="all",
                                        new_item_share=config.new_item_share,
                                        new_item_exposure=config.new_item_exposure)
    if config.history:
        if len(config.history) > MAX_HISTORY:
            raise GenrecError(f"history has {len(config.history):,} items; at most {MAX_HISTORY:,} are accepted")
        history, user = [dataset.item_id_for(item) for item in config.history], 0
    elif config.user is not None:
        user = dataset.user_id_for(config.user)
        history = dataset.history(user)
    else:
        raise GenrecError("give a user (--user USER) or a history (--history ITEM [ITEM ...])")
    items, scores = recommender.recommend([history], config.top_k, users=[user], beams=config.beams,
                                          exclude_seen=config.exclude_seen)
    return Recommendations(user, dataset.user_raw_id(user) if user else None, describe_history(dataset, history),
                           describe_recommendations(dataset, recommender.sids, items[0], scores[0]),
                           recommender.policy.weights)


def describe_recommendations(dataset, sids, items, scores) -> list[dict]:
    """Rank, item id, raw id, title, SID (None for a model without SIDs) and score of one ranked
    list (0 = no item, dropped)."""
    return [{"rank": rank, "item_id": int(item), "raw_id": dataset.item_raw_id(int(item)),
             "title": dataset.item_title(int(item)),
             "sid": None if sids is None else sids.codes_of([int(item)])[0].tolist(),
             "score": float(score)}
            for rank, (item, score) in enumerate(zip(items, scores), start=1) if item > 0]


def describe_history(dataset, history: list[int]) -> list[dict]:
    """Item id, raw id and title of each history item (for JSON output and the web page)."""
    return [{"item_id": int(item), "raw_id": dataset.item_raw_id(item), "title": dataset.item_title(item)}
            for item in history]



# -- recommend for every user ---------------------------------------------------------------------
def _check_output_file(out: Path, suffix: str) -> None:
    """An output file must go into a folder that exists (none is created silently) and end in ``suffix``."""
    if out.is_dir():
        raise GenrecError(f"output {out} is a directory; give a file path such as {out / ('out' + suffix)}")
    if out.suffix != suffix:
        raise GenrecError(f"output {out}: expected a file name ending in {suffix}")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise GenrecError(f"output {out}: {blocking} is a file, not a directory")
    if not out.parent.is_dir():
        raise GenrecError(f"output {out}: folder {out.parent} does not exist; create it first")


RECOMMENDATIONS_MANIFEST = "_recommendations.json"  # in a partitioned output: what it holds; marks it as ours


def _check_output_folder(out: Path) -> None:
    """A partitioned output goes to a new folder (or replaces an earlier partitioned output) in a
    folder that exists."""
    if out.exists() and not (out / RECOMMENDATIONS_MANIFEST).is_file():
        raise GenrecError(f"output {out} exists and is no earlier `recommend --all --partitioned` output; "
                          "give a new folder name")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise GenrecError(f"output {out}: {blocking} is a file, not a directory")
    if not out.parent.is_dir():
        raise GenrecError(f"output {out}: folder {out.parent} does not exist; create it first")


@dataclass
class RecommendAllConfig:
    out: str | Path  # a .parquet file, or with ``partitioned`` a folder of part files; written atomically
    dataset: str | Path | None = None
    model: str | Path | None = None
    top_k: int = 10
    beams: int = 20
    exclude_seen: bool | None = None  # leave the user's history out; None = as chosen after training
    batch_size: int = 256
    progress: bool = True
    fusion: dict[str, float] | None = None  # scorer -> weight; default: the chosen weights ({} = the model alone)
    new_item_share: float | None = None  # items added after training: mixed in with this share (None = slots instead)
    new_item_exposure: float | None = None  # users whose 10th place goes to a new item (None = NEW_ITEM_EXPOSURE; 0 = off)
    partitioned: bool = False  # out is a folder: part-00000.parquet, ... (one per chunk of users) + a manifest
    chunk_users: int = 16384  # users decoded and written at a time (memory is bounded by one chunk)
    prior_successors: int | None = None  # followers the transition prior keeps per item (0 = all; default: chosen)


@dataclass
class WrittenRecommendations:
    path: Path
    num_users: int
    num_rows: int
    seconds: float  # decoding only (this process's share when sharded)
    parts: int = 1  # part files written (all processes together)


def _recommendation_table(dataset, first_user: int, items: np.ndarray, scores: np.ndarray):
    """Rows (user, rank) of users first_user.. with their items and scores (0 = no item: dropped)."""
    import pyarrow as pa

    user_grid = np.broadcast_to(np.arange(first_user, first_user + len(items))[:, None], items.shape)
    rank_grid = np.broadcast_to(np.arange(1, items.shape[1] + 1)[None, :], items.shape)
    keep = items > 0
    user_ids, ranks, item_ids = user_grid[keep], rank_grid[keep], items[keep]
    return pa.table({
        "user_id": pa.array(user_ids, pa.int64()),
        "user_raw_id": pa.array([dataset.user_raw_id(u) for u in user_ids.tolist()], pa.string()),
        "rank": pa.array(ranks, pa.int32()),
        "item_id": pa.array(item_ids, pa.int64()),
        "item_raw_id": pa.array([dataset.item_raw_id(i) for i in item_ids.tolist()], pa.string()),
        "score": pa.array(scores[keep], pa.float32()),
    })


def recommend_all(config: RecommendAllConfig) -> WrittenRecommendations:
    """Every user's top ``top_k``, written as parquet: one row per (user, rank), columns user_id,
    user_raw_id, rank (1 = best), item_id, item_raw_id, score, in user order. A user has fewer
    than ``top_k`` rows only when ``exclude_seen`` leaves fewer unseen items than that.

    Users are decoded ``chunk_users`` at a time, each chunk written as its own part file, so memory
    holds one chunk's results. Under ``accelerate launch`` each process decodes and writes the
    chunks r, r + N, ... (``genrec.core.sharding``); the chunks, and so every batch inside them,
    are the same for any number of processes, and so is the output. The parts are staged in a
    hidden sibling folder, then become the ``partitioned`` folder (with a manifest) or are
    concatenated into the one .parquet file, atomically either way."""
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from genrec.core.io import swap_directory
    from genrec.core.sharding import current_shard

    out = Path(config.out)
    if config.partitioned:
        _check_output_folder(out)
    else:
        _check_output_file(out, ".parquet")
    if config.top_k < 1 or config.batch_size < 1 or config.chunk_users < 1:
        raise GenrecError("top_k, batch_size and chunk_users must be at least 1")
    shard = current_shard()
    recommender, dataset = load_trained(config.dataset, config.model, fusion=config.fusion, fit="all",
                                        new_item_share=config.new_item_share,
                                        new_item_exposure=config.new_item_exposure,
                                        prior_successors=config.prior_successors)
    if shard.device is not None:
        recommender.model.to(shard.device)
    staging = out.with_name(f".{out.name}.parts")
    if shard.main:
        _open_staging(staging, _recommend_all_settings(config, recommender, dataset))
    shard.barrier()
    chunks = -(-dataset.num_users // config.chunk_users)
    mine = shard.mine(chunks)
    seconds = 0.0
    bar = tqdm(total=sum(min(config.chunk_users, dataset.num_users - c * config.chunk_users) for c in mine),
               desc="recommend --all", unit="user", disable=not (config.progress and shard.main))
    for chunk in mine:
        first = chunk * config.chunk_users
        users = list(range(first + 1, min(first + config.chunk_users, dataset.num_users) + 1))
        part = staging / f"part-{chunk:05d}.parquet"
        if part.is_file():  # written by an interrupted run with the same settings
            bar.update(len(users))
            continue
        started = time.perf_counter()
        items, scores = recommender.recommend(dataset.sequences[first:first + len(users)], config.top_k, users=users,
                                              beams=config.beams, exclude_seen=config.exclude_seen,
                                              batch_size=config.batch_size)
        seconds += time.perf_counter() - started
        pq.write_table(_recommendation_table(dataset, first + 1, items, scores), part.with_suffix(".tmp"))
        fault_point(f"write {part.name}", part)
        os.replace(part.with_suffix(".tmp"), part)
        bar.update(len(users))
    bar.close()
    shard.barrier()
    parts = sorted(staging.glob("part-*.parquet"))
    num_rows = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
    if len(parts) != chunks:
        raise GenrecError(f"{staging}: {len(parts)} of {chunks} part files; a process failed, rerun")
    shard.barrier()
    if shard.main:
        (staging / STAGING_SETTINGS).unlink()
        if config.partitioned:
            atomic_write_json(staging / RECOMMENDATIONS_MANIFEST, {
                "num_users": dataset.num_users, "num_rows": num_rows, "parts": chunks, "chunk_users": config.chunk_users,
                "top_k": config.top_k, "beams": config.beams, "exclude_seen": config.exclude_seen,
                "fusion": recommender.policy.weights, "processes": shard.world,
                "columns": ["user_id", "user_raw_id", "rank", "item_id", "item_raw_id", "score"]})
            swap_directory(staging, out)
        else:
            try:
                _concatenate_parts(parts, out)
            finally:  # the parts are only a means to the one file, written or not
                shutil.rmtree(staging, ignore_errors=True)
    shard.barrier()
    return WrittenRecommendations(out, dataset.num_users, num_rows, seconds, chunks)


STAGING_SETTINGS = "_settings.json"  # in the staging folder of recommend --all: what its part files were decoded with


def _recommend_all_settings(config: RecommendAllConfig, recommender, dataset) -> dict:
    """What decides the part files of recommend --all: a staged part is reused only under the same
    settings, model and dataset (files named by size and modification time, so a retrained model or
    a rebuilt or grown dataset starts anew)."""
    def stamp(path: Path) -> list:
        info = path.stat()
        return [str(path.resolve()), info.st_size, info.st_mtime_ns]

    def stamps(folder: Path) -> list:
        return [stamp(path) for path in sorted(Path(folder).iterdir()) if path.is_file() and path.name[0] != "."]

    return {"top_k": config.top_k, "beams": config.beams, "exclude_seen": config.exclude_seen,
            "batch_size": config.batch_size, "chunk_users": config.chunk_users, "fusion": recommender.policy.weights,
            "new_item_share": config.new_item_share, "new_item_exposure": config.new_item_exposure,
            "prior_successors": config.prior_successors, "num_users": dataset.num_users,
            "num_items": dataset.num_items, "model": stamps(recommender.path), "dataset": stamps(dataset.path)}


def _open_staging(staging: Path, settings: dict) -> None:
    """The staging folder of recommend --all: kept, with its finished part files, when an interrupted
    run left it under the same ``settings`` (the rerun resumes); otherwise made anew."""
    recorded = staging / STAGING_SETTINGS
    try:
        if json.loads(recorded.read_text()) == json.loads(json.dumps(settings)):
            for leftover in staging.glob("*.tmp"):  # a part being written when the run stopped
                leftover.unlink()
            return
    except (OSError, ValueError):
        pass
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    atomic_write_json(recorded, settings)


def _concatenate_parts(parts: list[Path], out: Path) -> None:
    """The part files, in order, as the one parquet file ``out`` (written to a temporary sibling,
    then moved into place), a part at a time."""
    import pyarrow.parquet as pq

    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with pq.ParquetWriter(tmp, pq.read_schema(parts[0])) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part))
        fault_point(f"write {out.name}", out)  # the name atomic_write_bytes used for the single file
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- add-items ------------------------------------------------------------------------------------
@dataclass
class AddItemsConfig:
    items: str | Path  # CSV/TSV/JSONL/parquet: an id column, and a "text" column or the preset's fields
    dataset: str | Path | None = None
    # the models to grow (one or a list; default DATASET/recommender); the SASRec each fuses and
    # DATASET/sasrec are grown with them
    model: str | Path | list[str | Path] | None = None
    id_column: str = "id"
    progress: bool = True


@dataclass
class AddedItems:
    item_ids: list[int]  # ids of the items this call brought into the models (M+1, ...)
    skipped: list[str]  # raw ids already in the catalogue
    moved: int  # new items whose own bucket was full and took the nearest last-level code with room
    model: Path  # the first model given
    models: list[Path] = field(default_factory=list)  # every model now on the dataset's catalogue version
    num_items: int = 0  # that version (the dataset's item count)


def add_items(config: AddItemsConfig) -> AddedItems:
    """New catalogue items join the dataset, the tokenizer's SID table and the trained models
    without retraining: embeddings from the tokenizer's own encoder, codes from the trained
    tokenizer, fresh collision suffixes; every existing SID stays as it was. One staged, locked,
    ordered commit (``genrec.catalogue``): a run killed or failing at any point leaves everything
    loadable, and a rerun finishes the job (items already present are skipped)."""
    from genrec.catalogue import change_catalogue
    from genrec.recommender.recommender import META_FILE

    dataset_dir = resolve_dataset_dir(_str(config.dataset))
    given = config.model if isinstance(config.model, (list, tuple)) else [config.model] if config.model else []
    models = [Path(m) for m in given] or [dataset_dir / RECOMMENDER_DIR]
    change = change_catalogue(dataset_dir, models, Path(config.items), config.id_column, config.progress)
    for model in models:  # how the new items enter each model's rankings, chosen on validation (once)
        meta = read_json(model / META_FILE)
        if meta.get("items_added") and "new_items" not in meta:
            fit_new_items(model, dataset_dir)
    return AddedItems(change.item_ids, change.skipped, change.moved, models[0], change.models, change.num_items)
