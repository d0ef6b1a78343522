"""``train_recommender`` (the T5) and ``train_sasrec``: resumable training, then the fusion choice."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import errno
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import read_json
from genrec.core.layout import RECOMMENDER_DIR, TOKENIZER_DIR, resolve_dataset_dir
from genrec.core.sharding import is_main_process, world_size
from genrec.pipeline.beside import SASREC_LOG, SASRecBeside, sasrec_command, sasrec_configs, training_beside
from genrec.pipeline.choices import choose_fusion
from genrec.pipeline.common import FUSION_GRIDS, SASREC_DIR, as_path, as_str, check_grids
from genrec.pipeline.data import EmbedConfig, embed
from genrec.recommender.model_config import RecommenderConfig
from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.train_config import SASRecTrainConfig, TrainConfig

if TYPE_CHECKING:  # torch-free at import: the CLI's parser imports this module
    from genrec.recommender.trainer import TrainingState


@dataclass
class RecommenderTrainingConfig:
    dataset: str | Path | None = None
    tokenizer: str | Path | None = None  # default DATASET/tokenizer
    out: str | Path | None = None  # default DATASET/recommender
    # recommender.recipes: "tiger" (TIGER's size), "cpu" (a small T5, 45-minute budget) or "auto"
    # (cpu without a visible CUDA device): the training and model settings unless ``train`` / ``model``
    # give them (recommender.recipes.recipe_configs(recipe, {...}, {...}): a recipe with fields changed).
    recipe: str = "auto"
    train: TrainConfig | None = None
    model: RecommenderConfig | None = None
    restart: bool = False  # discard checkpoints in ``out``
    progress: bool = True
    # Fused decoding (recommender.fusion.DecodingPolicy): after training, the weights of the
    # item-transition prior ("prior") and, when a trained SASRec is there ("sasrec"), of its item
    # distribution are chosen on ``fusion_users`` sampled validation users by a coordinate search
    # over these grids (best NDCG@10) and stored in genrec.json; evaluate / recommend / serve use
    # them. Every grid (0,) = the model alone, nothing tried.
    fusion_grids: dict[str, tuple[float, ...]] = field(default_factory=lambda: dict(FUSION_GRIDS))
    fusion_users: int = 5000
    sasrec: str | Path | None = None  # the SASRec to fuse (default DATASET/sasrec)
    # Unless that SASRec is trained already, train it beside the T5 (a child process, one CPU thread,
    # the T5's time budget) before the fusion is chosen; None: the T5 alone, fused with what is there.
    sasrec_beside: SASRecBeside | None = field(default_factory=SASRecBeside)

    @classmethod
    def from_options(cls, dataset: str | Path | None = None, *, recipe: str = "auto", train: dict | None = None,
                     model: dict | None = None, **fields) -> RecommenderTrainingConfig:
        """The recipe's settings with the fields of ``train`` / ``model`` on top (a config file's sections)."""
        from genrec.recommender.recipes import recipe_configs

        train_config, model_config = recipe_configs(recipe, train, model)
        return cls(dataset, recipe=recipe, train=train_config, model=model_config, **fields)


@dataclass
class TrainedRecommender:
    path: Path
    state: TrainingState  # recommender.trainer.TrainingState: step, best_step, best_ndcg, stop_reason, ...
    already_done: bool = False  # the run had finished before this call
    recipe: str | None = None  # the recipe trained with (None: already done)
    notice: str | None = None  # the one-line recipe notice printed at the start
    fusion: dict | None = None  # the chosen fusion weight and each weight's validation metrics


def _finished(out: Path, meta: dict, fusion: dict | None) -> TrainedRecommender:
    """A training run that had finished before this call, from its genrec.json."""
    from genrec.recommender.trainer import TrainingState

    state = TrainingState(step=meta["steps"], best_step=meta["best_step"], best_ndcg=meta["best_valid_ndcg@10"],
                          best_ndcg_se=meta.get("best_valid_ndcg@10_se") or 0.0, stop_reason=meta.get("stop_reason"),
                          done=True)
    return TrainedRecommender(out, state, already_done=True, fusion=fusion)


@dataclass
class _Run:
    """Where a training run writes and how its fusion is chosen: what both trainings share."""

    out: Path
    dataset_dir: Path
    restart: bool
    fusion_grids: dict[str, tuple[float, ...]]
    fusion_users: int
    seed: int
    sasrec: str | Path | None = None  # the SASRec the T5 fuses (None: DATASET/sasrec)

    def __post_init__(self):
        check_grids(self.fusion_grids)  # before anything starts

    def choose_fusion(self) -> dict:
        return choose_fusion(self.out, self.dataset_dir, self.fusion_grids, self.fusion_users, self.seed, self.sasrec)


def _train_or_finish(run: _Run, train: Callable[[], TrainingState],
                     beside: list[str] | None = None) -> TrainedRecommender:
    """The skeleton of both trainings: --restart; a finished run's result (finishing what it left
    undone: the SASRec beside it, the fusion choice); else ``train()`` (resuming from the checkpoint),
    with ``beside`` (a SASRec's command) in a child process, then the fusion choice."""
    from genrec.recommender.recommender import META_FILE

    if run.restart:
        remove_training_output(run.out)
    log = run.dataset_dir / SASREC_LOG
    if (run.out / META_FILE).is_file():  # finished (the trainer removes its checkpoint then)
        meta = read_json(run.out / META_FILE)
        with training_beside(beside, log):
            pass
        # a SASRec trained only now is fused by choosing again
        fusion = None if beside is not None else meta.get("fusion")
        return _finished(run.out, meta, fusion or run.choose_fusion())
    with training_beside(beside, log), full_disk_as_enospc(run.out):
        state = train()
    return TrainedRecommender(run.out, state, fusion=run.choose_fusion())


def train_recommender(config: RecommenderTrainingConfig) -> TrainedRecommender:
    """Train (resuming from ``out``'s checkpoint if one is there) and write the recommender."""
    from genrec.recommender.recipes import recipe_configs, recipe_notice, resolve_recipe

    dataset_dir = resolve_dataset_dir(as_str(config.dataset))
    out = _output_folder(as_path(config.out) or dataset_dir / RECOMMENDER_DIR)
    recipe, reason = resolve_recipe(config.recipe)
    recipe_train, recipe_model = recipe_configs(recipe)
    train_config = copy.deepcopy(config.train) if config.train is not None else recipe_train
    model_config = copy.deepcopy(config.model) if config.model is not None else recipe_model
    run = _Run(out, dataset_dir, config.restart, config.fusion_grids, config.fusion_users, train_config.seed,
               config.sasrec)
    beside = _sasrec_beside(config, dataset_dir, train_config)
    if beside is not None and train_config.threads == 0:  # leave SASRec its core
        train_config.threads = max(1, (os.cpu_count() or 2) - 1)
    notice = recipe_notice(recipe, reason, train_config, model_config)
    result = _train_or_finish(run, lambda: _train_t5(config, run, train_config, model_config, recipe, notice),
                              beside)
    return result if result.already_done else dataclasses.replace(result, recipe=recipe, notice=notice)


def _train_t5(config: RecommenderTrainingConfig, run: _Run, train_config: TrainConfig, model_config: RecommenderConfig,
              recipe: str, notice: str) -> TrainingState:
    from genrec.core.seeding import seed_everything
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.train import train_recommender as run_training
    from genrec.tokenizer.artifact import load_semantic_ids

    if is_main_process():  # accelerate launch: one line, not one per process
        print(notice, flush=True)
    seed_everything(train_config.seed)
    dataset = load_processed_dataset(run.dataset_dir)
    tokenizer_dir = as_path(config.tokenizer) or run.dataset_dir / TOKENIZER_DIR
    sids = load_semantic_ids(tokenizer_dir)
    if sids.num_items != dataset.num_items:
        raise GenrecError(f"tokenizer {tokenizer_dir} has SIDs for {sids.num_items} items but {run.dataset_dir} "
                          f"has {dataset.num_items}")
    text, meta = None, {"recipe": recipe}
    if model_config.item_text or model_config.code_init == "centroids":
        text, meta["item_text_encoder"] = _text_vectors(run.dataset_dir, dataset.num_items, config.progress)
    return run_training(dataset, sids, run.out, model_config, train_config, progress=config.progress, meta=meta,
                        text=text)


def _output_folder(out: Path) -> Path:
    """``out``, unless something other than a folder is there (a one-line error, not a traceback)."""
    if out.exists() and not out.is_dir():
        raise GenrecError(f"{out} is a file; the trained model needs a folder there (pass another --out)")
    return out


def _sasrec_beside(config: RecommenderTrainingConfig, dataset_dir: Path, train_config) -> list[str] | None:
    """The command of the SASRec to train beside the T5; None when none is asked for, it is trained
    already, or this is not the main process (under accelerate launch only the main one starts it)."""
    from genrec.recommender.recommender import META_FILE

    sasrec_dir = as_path(config.sasrec) or dataset_dir / SASREC_DIR
    if config.sasrec_beside is None or (sasrec_dir / META_FILE).is_file() or not is_main_process():
        return None
    command = sasrec_command(config.sasrec_beside, dataset_dir, sasrec_dir, train_config.time_budget_minutes)
    if config.progress:  # after the options were checked: no such line before an error about them
        print(f"training SASRec beside the T5 (one CPU thread; log {dataset_dir / SASREC_LOG}); "
              "--t5-only trains the T5 alone", flush=True)
    return command


def _text_vectors(dataset_dir: Path, num_items: int, progress: bool,
                  encoder: str | None = None) -> tuple[np.ndarray, str]:
    """The dataset's item text embeddings [M, d] (computed once and cached by ``embed``) and their encoder."""
    embeddings = embed(EmbedConfig(dataset_dir, encoder=encoder, progress=progress))
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


@dataclass
class SASRecTrainingConfig:
    dataset: str | Path | None = None
    out: str | Path | None = None  # default DATASET/sasrec
    train: SASRecTrainConfig = field(default_factory=SASRecTrainConfig)
    model: SASRecConfig = field(default_factory=SASRecConfig)  # num_items, text_dim: set from the dataset
    text: bool = True  # item vectors read the items' text embeddings (False: learned ids only)
    encoder: str | None = None  # the text encoder (default as `genrec embed`)
    restart: bool = False  # discard checkpoints in ``out``
    progress: bool = True
    # After training, the weight of the item-transition prior fused with SASRec's scores is chosen
    # on ``fusion_users`` validation users (as for train-recommender); (0,) = SASRec alone.
    fusion_grids: dict[str, tuple[float, ...]] = field(default_factory=lambda: {"prior": FUSION_GRIDS["prior"]})
    fusion_users: int = 5000

    @classmethod
    def from_options(cls, dataset: str | Path | None = None, *, train: dict | None = None, model: dict | None = None,
                     **fields) -> SASRecTrainingConfig:
        """SASRec's defaults with the fields of ``train`` / ``model`` on top (a config file's sections)."""
        train_config, model_config = sasrec_configs(train, model)
        return cls(dataset, train=train_config, model=model_config, **fields)


def train_sasrec(config: SASRecTrainingConfig) -> TrainedRecommender:
    """Train (resuming from ``out``'s checkpoint if one is there) and write a SASRec model."""
    dataset_dir = resolve_dataset_dir(as_str(config.dataset))
    out = _output_folder(as_path(config.out) or dataset_dir / SASREC_DIR)
    with _one_writer(out):  # two runs on one SASRec folder (two train-recommender at once) take turns
        train_config = copy.deepcopy(config.train)
        train_config.check()
        run = _Run(out, dataset_dir, config.restart, config.fusion_grids, config.fusion_users, train_config.seed)
        return _train_or_finish(run, lambda: _train_sasrec(config, run, train_config))


def _train_sasrec(config: SASRecTrainingConfig, run: _Run, train_config: SASRecTrainConfig) -> TrainingState:
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.sasrec_train import train_sasrec as run_training

    dataset = load_processed_dataset(run.dataset_dir)
    text, text_encoder = None, None
    if config.text:
        text, text_encoder = _text_vectors(run.dataset_dir, dataset.num_items, config.progress, config.encoder)
    model_config = dataclasses.replace(config.model, num_items=dataset.num_items,
                                       text_dim=0 if text is None else text.shape[1])
    model_config.check()
    return run_training(dataset, run.out, model_config, train_config, text, progress=config.progress,
                        meta={"text": config.text, "encoder": text_encoder})


@contextlib.contextmanager
def _one_writer(out: Path):
    """One run at a time trains into ``out``: a second one waits (saying so), then finds the first one's
    result or checkpoint. Not under a distributed launch, whose processes write ``out`` together."""
    from genrec.core.io import file_lock

    if world_size() > 1:
        yield
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(out.parent / f".{out.name}.lock", waiting=f"another run is training {out}; waiting for it ..."):
        yield
