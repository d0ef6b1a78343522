"""The T5 recommender's training task (``T5Task``) for the shared loop (recommender.trainer), and
``TrainConfig`` (recommender.train_config), the loop's settings.

A step takes a plain random batch of ``batch_size`` examples, sorts it by input length and cuts it
into at most ``micro_batches`` micro-batches with the least padding (recommender.data.micro_batches);
forward/backward runs on each with its loss weighted by its share of the batch's target tokens, then
one optimizer step: the gradient is the plain padded batch's. On Beauty (2 cores, small T5) that ran
at 2-2.6x the padded batch's samples/s and 76-100% of length-bucketed batches' (``sort_window > 1``,
the old default, kept as an option: faster by the per-micro-batch overhead, but its batches group
examples of similar history length). Validation is trie-constrained beam search on sampled users.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from genrec.data_prep.dataset import ProcessedDataset
from genrec.core.allocator import keep_freed_memory
from genrec.core.errors import GenrecError
from genrec.recommender.data import PrefixExamples, TokenizedExamples, epoch_batches, micro_batches, streamed_training_examples
from genrec.recommender.fast_dropout import use_fast_dropout
from genrec.recommender.item_causal import build_sequence_examples, one_pass_loss, prefix_loss, sequence_batches
from genrec.recommender.model import RecommenderConfig, build_model, load_model
from genrec.recommender.recommender import Recommender
from genrec.recommender.train_config import TrainConfig
from genrec.recommender.trainer import TrainingState, run_training
from genrec.recommender.vocab import SidVocab
from genrec.tokenizer.artifact import SemanticIds


def weighted_micro_steps(model, pieces: list[np.ndarray], counts: list[int], piece_loss,
                         device: torch.device | str = "cpu", backward=None, no_sync=None) -> torch.Tensor:
    """Forward and backward over the micro-batches ``pieces`` of one batch, each mean loss
    ``piece_loss(piece)`` weighted by its share ``counts`` of the batch's targets, so the summed
    gradients are those of the whole batch's mean loss; returns that loss (detached).

    ``backward`` (default ``Tensor.backward``; the trainer passes ``accelerator.backward``) and
    ``no_sync`` (``accelerator.no_sync``: no gradient all-reduce until the last micro-batch) let the
    same code run under accelerate.
    """
    backward = backward or torch.Tensor.backward
    total = sum(counts)
    batch_loss = torch.zeros((), device=device)
    for i, (piece, count) in enumerate(zip(pieces, counts)):
        last = i == len(pieces) - 1
        with nullcontext() if last or no_sync is None else no_sync(model):
            loss = piece_loss(piece) * (count / total)
            backward(loss)
        batch_loss += loss.detach()
    return batch_loss


def accumulate_gradients(model, train: TokenizedExamples | PrefixExamples, index: np.ndarray, parts: int,
                         device: torch.device | str = "cpu", backward=None, no_sync=None) -> torch.Tensor:
    """T5's step over the micro-batches of the batch ``index`` (recommender.data.micro_batches:
    sorted by input length, cut into at most ``parts`` runs with the least padding). T5's loss is the
    mean over target tokens, so weighting each run by its target tokens gives the gradient of the
    whole padded batch's loss (``weighted_micro_steps``)."""
    pieces = micro_batches(index, train.lengths, parts)
    counts = [int((train.targets[piece] != -100).sum()) for piece in pieces]
    return weighted_micro_steps(model, pieces, counts, lambda piece: prefix_loss(model, **train.batch(piece, device)),
                                device, backward, no_sync)


def plot_curves(log: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in log if "valid" in r]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot([r["step"] for r in log if "loss" in r], [r["loss"] for r in log if "loss" in r])
    left.set(xlabel="step", ylabel="training loss", title="loss")
    for key in ("recall@10", "ndcg@10"):  # error bars: the standard error over the sampled users
        right.errorbar([r["step"] for r in evals], [r["valid"][key] for r in evals], marker="o", label=key,
                       yerr=[r["valid"].get(f"{key}_se", 0.0) for r in evals], capsize=3)
    right.set(xlabel="step", title="validation (sampled users, ± 1 s.e.)")
    right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


class T5Task:
    """The T5 generative recommender: every-prefix (or one-pass) examples, micro-batched steps,
    validation by trie-constrained beam search."""

    name = "train recommender"

    def __init__(self, dataset: ProcessedDataset, sids: SemanticIds, model_config: RecommenderConfig,
                 config: TrainConfig, text: np.ndarray | None = None):
        self.dataset, self.sids, self.model_config, self.config = dataset, sids, model_config, config
        vocab = SidVocab.for_semantic_ids(sids, model_config.num_user_buckets)
        self.model = build_model(model_config, vocab, vocab.item_tokens(sids.codes), text)
        if config.fast_dropout:
            use_fast_dropout(self.model)
        self.recommender = Recommender(self.model, sids, model_config)  # the validation decoder
        self.one_pass = model_config.encoder_attention == "item_causal"  # one encoder pass per user sequence
        if self.one_pass:
            self.train = build_sequence_examples(self.recommender.builder, [
                (user, dataset.train_sequence(user)) for user in range(1, dataset.num_users + 1)])
        else:
            self.train = streamed_training_examples(self.recommender.builder, dataset)
        if len(self.train) == 0:
            raise GenrecError(f"{dataset.path}: no training examples (every user needs at least 4 items)")
        self.examples = len(self.train)
        self.batching = f", micro-batches <= {config.micro_batches}" if config.micro_batches > 1 else ""
        self.batching += f", length bucketing {config.sort_window}" if config.sort_window > 1 else ""

    def epoch_plan(self, epoch: int) -> list[np.ndarray]:
        """Example indices, or with one pass chunk indices (about batch_size targets each)."""
        if self.one_pass:
            return sequence_batches(self.train.counts, self.config.batch_size, self.config.seed, epoch)
        return epoch_batches(self.train.lengths, self.config.batch_size, self.config.seed, epoch,
                             self.config.sort_window)

    def step(self, model, index: np.ndarray, accelerator) -> torch.Tensor:
        if self.one_pass:  # chunks already have about their own length: no micro-batches
            with accelerator.autocast():  # its encoder pass runs outside the model's (autocast) forward
                loss = one_pass_loss(model, self.train.batch(index, accelerator.device))
            accelerator.backward(loss)
            return loss.detach()
        return accumulate_gradients(model, self.train, index, self.config.micro_batches, accelerator.device,
                                    backward=accelerator.backward, no_sync=accelerator.no_sync)

    def validate(self, model, users: np.ndarray) -> dict:
        self.recommender.model = model
        return self.recommender.evaluate(self.dataset, "valid", users, self.config.eval_beams)

    def save_best(self, model, path: Path) -> None:
        model.save_pretrained(path)

    def finalize(self, out: Path, best: Path, state: TrainingState, log: list, meta: dict | None) -> None:
        finalize(out, best, self.sids, self.model_config, self.dataset, state, log, meta)


def train_recommender(dataset: ProcessedDataset, sids: SemanticIds, out: Path, model_config: RecommenderConfig,
                      config: TrainConfig, progress: bool = True, meta: dict | None = None,
                      text: np.ndarray | None = None) -> TrainingState:
    """Train (or resume) the T5 recommender and write its artifact to ``out``; ``meta`` goes into
    its genrec.json (e.g. the recipe); ``text``: the items' text embeddings (``item_text``)."""
    prepare_process(config)
    set_seed_everywhere(config.seed)
    task = T5Task(dataset, sids, model_config, config, text)
    return run_training(task, out, config, model_config, dataset.num_users, progress, meta)


def prepare_process(config: TrainConfig, largest_kept: int = 1 << 30) -> None:
    """Process-wide settings for a training run: quiet transformers bars, kept allocator memory
    (blocks below ``largest_kept`` bytes; ``keep_freed_memory``), the torch thread count."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Writing model shards" bar inside ours
    keep_freed_memory(largest_kept)
    if config.threads > 0:
        torch.set_num_threads(config.threads)


def set_seed_everywhere(seed: int) -> None:
    from accelerate.utils import set_seed

    set_seed(seed)


def finalize(out: Path, best_dir: Path, sids: SemanticIds, model_config: RecommenderConfig,
             dataset: ProcessedDataset, state: TrainingState, log: list, meta: dict | None = None) -> None:
    """The best model, its tokenizer copy and metadata into ``out`` (Recommender.save writes
    genrec.json last, so its presence means the artifact is complete)."""
    best = load_model(best_dir, sids)
    plot_curves(log, out / "training_curves.png")
    Recommender(best, sids, model_config).save(out, meta={
        **training_summary(dataset, state),
        "tokenizer": str(Path(sids.path).resolve()) if sids.path else None,
        **(meta or {}),
    })


def training_summary(dataset: ProcessedDataset, state: TrainingState) -> dict:
    """What a finished artifact's genrec.json records of its training run (any model kind)."""
    return {
        "dataset": str(Path(dataset.path).resolve()),  # recorded relative to the model folder by its save()
        "catalogue": dataset.catalogue(),  # the catalogue version it knows (ProcessedDataset.catalogue)
        "best_step": state.best_step,
        "best_valid_ndcg@10": state.best_ndcg,
        "best_valid_ndcg@10_se": state.best_ndcg_se,
        "stop_reason": state.stop_reason,
        "steps": state.step,
        "epochs": round(state.step / state.batches_per_epoch, 2),
        "train_seconds": round(state.train_seconds, 1),
        "train_config": asdict(state.train_config),
        "model_config": asdict(state.model_config),
        "examples": state.examples,
        "total_steps": state.total_steps,
    }
