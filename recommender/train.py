"""Training loop (accelerate: CPU, one GPU, or many via ``accelerate launch``), resumable.

Every ``eval_every`` steps: validation NDCG@10 with constrained beam search on a fixed user
sample, the best model kept, and a checkpoint (model, optimizer, scheduler, RNG states, step,
epoch and batch position, the best model so far and the metrics log) written as one folder that
replaces the previous one (genrec.core.io.swap_directory), so the best weights, the state and the
log always belong to the same step. Killing the process and rerunning the same command continues
from the last checkpoint; the batches of an epoch are a pure function of (seed, epoch)
(recommender.data.epoch_batches), so the resumed run sees the same batches the uninterrupted one
would have. A resume with settings that change what the run computes (batch size, learning rate,
seed, model, ...) is refused; only RESUMABLE_CHANGES may differ.

A step takes a plain random batch of ``batch_size`` examples, sorts it by input length and cuts it
into at most ``micro_batches`` micro-batches with the least padding (recommender.data.micro_batches);
forward/backward runs on each with its loss weighted by its share of the batch's target tokens, then
one optimizer step: the gradient is the plain padded batch's. On Beauty (2 cores, small T5) that ran
at 2-2.6x the padded batch's samples/s and 76-100% of length-bucketed batches' (``sort_window > 1``,
the old default, kept as an option: faster by the per-micro-batch overhead, but its batches group
examples of similar history length).

With several processes (``accelerate launch``), each global batch of ``batch_size`` examples is
split across processes (so ``batch_size`` and the step count mean the same on 1 or N devices), each
process micro-batches its share, and the main process runs the validation beam search and
broadcasts the result.

``time_budget_minutes``: training stops once its wall time (earlier attempts included) plus the
last validation's duration reaches the budget, then validates a last time, keeps the best
checkpoint and finishes like a run that did all its steps. Before the first validation, its
duration is estimated by timing one evaluation batch of the validation users up front, so a run
the budget stops before its first validation still ends inside the budget. With several processes
the main process's clock decides when to stop. The learning-rate cosine then runs on whichever is
further along, steps or the post-warmup share of the budget (``lr_lambda``).
Validation metrics carry their standard error over the sampled users (``ndcg@10_se``, ...).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from genrec.data_prep.dataset import ProcessedDataset
from genrec.core.allocator import keep_freed_memory
from genrec.core.errors import GenrecError
from genrec.core.io import (atomic_write_json, atomic_write_text, read_json, restore_swapped_directory,
                            swap_directory)
from genrec.recommender.data import PrefixExamples, TokenizedExamples, epoch_batches, micro_batches, streamed_training_examples
from genrec.recommender.fast_dropout import use_fast_dropout
from genrec.recommender.item_causal import build_sequence_examples, one_pass_loss, prefix_loss, sequence_batches
from genrec.recommender.model import RecommenderConfig, build_model, load_model
from genrec.recommender.recommender import Recommender
from genrec.recommender.vocab import SidVocab
from genrec.tokenizer.artifact import SemanticIds

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
LOG_FILE = "metrics.jsonl"
LOG_EVERY = 50  # steps between loss entries in the log / progress bar
ESTIMATE_USERS = 256  # validation users timed up front under a time budget (one evaluation batch)
# Settings a resumed run may change: how long it may run and on how many CPU threads, not what a
# step computes. Any other difference from the checkpoint's settings is refused.
RESUMABLE_CHANGES = ("time_budget_minutes", "threads")


@dataclass
class TrainConfig:
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    max_steps: int = 20000
    epochs: float = 0.0  # > 0: train this many epochs (overrides max_steps)
    eval_every: int = 1000
    eval_users: int = 2000  # validation users sampled for the periodic check (0 = all)
    eval_beams: int = 20
    patience: int = 4  # evaluations without NDCG@10 improvement before stopping
    micro_batches: int = 6  # per step: the batch sorted by length, cut into <= this many (1 = one padded batch)
    sort_window: int = 1  # > 1: length-bucketed batches, this many sorted together (the old default, 50)
    time_budget_minutes: float = 0.0  # > 0: stop by this much training wall time (all attempts); 0 = off
    seed: int = 0
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it) | no | bf16 | fp16
    fast_dropout: bool = True  # CPU: cheap dropout masks (recommender.fast_dropout); same model, same p
    threads: int = 0  # torch CPU threads (0 = torch's default, one per core; 1 on a machine other jobs share)


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


def total_steps(config: TrainConfig, batches_per_epoch: int) -> int:
    return math.ceil(config.epochs * batches_per_epoch) if config.epochs > 0 else config.max_steps


def lr_lambda(warmup_steps: int, steps: int, budget_progress=None):
    """Linear warmup, then cosine decay to 10% of the peak learning rate at ``steps``.

    Under a time budget, ``budget_progress()`` is the share of the budget's post-warmup time used
    so far, and the cosine follows whichever is further along, steps or time: a run the budget cuts
    short still decays to (about) the floor when it stops, and a run that finishes its steps well
    inside the budget gets exactly the step schedule (so it stays reproducible and resumable).
    """

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        if budget_progress is not None:
            progress = max(progress, budget_progress())
        progress = min(1.0, progress)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def use_tf32_on_cuda(device: torch.device) -> bool:
    """On a CUDA device let float32 matmuls use TF32 tensor cores (Ampere and later; what autocast
    leaves in float32, e.g. the loss and softmax inputs, then runs faster at ~1e-3 relative error).
    CPU runs keep full float32. Returns whether TF32 was switched on."""
    if torch.device(device).type != "cuda":
        return False
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    return True


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


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


def changed_settings(saved: dict, config: dict, model_config: dict, examples: int) -> list[str]:
    """``name old -> new`` for each setting of ``saved`` (a checkpoint's state) that the current
    run (``config`` and ``model_config`` as dicts) has otherwise, RESUMABLE_CHANGES excepted;
    ``examples`` is the number of training examples (another dataset or tokenizer gives another number)."""
    changes = []
    for section, current in (("train_config", config), ("model_config", model_config)):
        before = saved.get(section) or {}
        for name, value in current.items():
            if before.get(name) != value and not (section == "train_config" and name in RESUMABLE_CHANGES):
                changes.append(f"{name} {before.get(name)!r} -> {value!r}")
    if saved.get("examples") != examples:
        changes.append(f"training examples {saved.get('examples')} -> {examples}")
    return changes


class TrainingTask(Protocol):
    """What the generic loop (``run_training``) needs from one kind of model: its module, the
    batches of an epoch, a training step's loss, validation and the finished artifact."""

    model: torch.nn.Module
    examples: int  # training examples (targets) per epoch, for the log
    name: str  # the progress bar's label
    batching: str  # how a step is computed, for the start line (", micro-batches <= 6")

    def epoch_plan(self, epoch: int) -> list[np.ndarray]:
        """The batches of one epoch as index arrays; a pure function of (seed, epoch)."""

    def step(self, model, index: np.ndarray, accelerator) -> torch.Tensor:
        """Forward and backward (``accelerator.backward``) over this process's share ``index`` of
        a batch; returns the detached loss."""

    def validate(self, model, users: np.ndarray) -> dict:
        """Validation metrics (``ndcg@10``, ``recall@10`` and their ``_se``) of the unwrapped model."""

    def save_best(self, model, path: Path) -> None:
        """Write the unwrapped model's weights to ``path`` (a new folder)."""

    def finalize(self, out: Path, best: Path, state: dict, log: list, meta: dict | None) -> None:
        """Write the finished artifact into ``out`` from the best weights in ``best``."""


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

    def finalize(self, out: Path, best: Path, state: dict, log: list, meta: dict | None) -> None:
        finalize(out, best, self.sids, self.model_config, self.dataset, state, log, meta)


def train_recommender(dataset: ProcessedDataset, sids: SemanticIds, out: Path, model_config: RecommenderConfig,
                      config: TrainConfig, progress: bool = True, meta: dict | None = None,
                      text: np.ndarray | None = None) -> dict:
    """Train (or resume) the T5 recommender and write its artifact to ``out``; ``meta`` goes into
    its genrec.json (e.g. the recipe); ``text``: the items' text embeddings (``item_text``)."""
    prepare_process(config)
    set_seed_everywhere(config.seed)
    task = T5Task(dataset, sids, model_config, config, text)
    return run_training(task, out, config, asdict(model_config), dataset.num_users, progress, meta)


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


def run_training(task: TrainingTask, out: Path, config: TrainConfig, model_config: dict, num_users: int,
                 progress: bool = True, meta: dict | None = None) -> dict:
    """The training loop shared by every model (``TrainingTask``): accelerate, AdamW with warmup
    and cosine, resumable checkpoints, the time budget, periodic validation on a fixed user
    sample with the best weights kept, and the artifact written by ``task.finalize``.
    ``model_config``: the model's settings as a dict (a checkpoint written with others is refused)."""
    from accelerate import Accelerator
    from accelerate.utils import broadcast, broadcast_object_list

    out = Path(out)
    checkpoint = out / CHECKPOINT_DIR
    # The scheduler steps once per optimizer step: a step is one global batch on any number of devices.
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision),
                              cpu=not torch.cuda.is_available(), step_scheduler_with_optimizer=False)
    use_tf32_on_cuda(accelerator.device)
    model = task.model
    eval_users = np.arange(1, num_users + 1)
    if config.eval_users and config.eval_users < len(eval_users):
        eval_users = np.sort(np.random.default_rng(config.seed).choice(eval_users, config.eval_users, replace=False))
    epoch_plan = task.epoch_plan
    batches_per_epoch = len(epoch_plan(0))
    steps = total_steps(config, batches_per_epoch)
    budget = 60.0 * config.time_budget_minutes  # seconds; 0 = no budget

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_ndcg@10": -1.0, "best_ndcg@10_se": 0.0,
             "best_step": 0, "bad_evals": 0, "done": False, "stop_reason": None, "train_seconds": 0.0,
             "eval_seconds": 0.0, "warmup_end_seconds": None, "total_steps": steps, "examples": task.examples,
             "batches_per_epoch": batches_per_epoch, "train_config": asdict(config),
             "model_config": model_config}
    clock = {"started": None}  # perf_counter() at which this run's training time (all attempts) is 0

    def elapsed() -> float:  # several processes under a budget: the main process's clock, synced once a step
        return clock["synced"] if "synced" in clock else time.perf_counter() - clock["started"]

    def budget_progress() -> float:
        """Share of the budget's post-warmup time used (the cosine's clock under a budget)."""
        if clock["started"] is None or state["warmup_end_seconds"] is None:
            return 0.0
        start = state["warmup_end_seconds"]
        return (elapsed() - start) / max(1e-9, budget - start)

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(config.warmup_steps, steps, budget_progress if budget > 0 else None))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    if accelerator.is_main_process:
        restore_swapped_directory(checkpoint)  # a crash between the two renames of a checkpoint swap
    accelerator.wait_for_everyone()
    if (checkpoint / STATE_FILE).is_file():
        saved = read_json(checkpoint / STATE_FILE)
        changes = changed_settings(saved, asdict(config), model_config, task.examples)
        if changes:
            raise GenrecError(f"{checkpoint} was written with other settings ({'; '.join(changes)}); rerun with "
                              "the same options, or pass --restart to discard it")
        accelerator.load_state(str(checkpoint / "state"))
        state.update(saved)
        state["train_config"] = asdict(config)  # e.g. a longer --time-budget for the rest of the run
        accelerator.print(f"resuming from step {state['step']} (epoch {state['epoch']}, batch {state['batch_in_epoch']})")
    limit = f", time budget {config.time_budget_minutes:g} min" if budget > 0 else ""
    accelerator.print(f"{task.examples:,} training examples, {batches_per_epoch:,} batches of {config.batch_size} per epoch, "
                      f"{steps:,} steps{limit} on {accelerator.num_processes} process(es), {accelerator.device}, "
                      f"mixed precision {accelerator.mixed_precision}{task.batching}")
    log_path = out / LOG_FILE
    out.mkdir(parents=True, exist_ok=True)
    saved_log = checkpoint / LOG_FILE if (checkpoint / LOG_FILE).is_file() else log_path  # the checkpoint's own
    resumed = saved_log.is_file() and state["step"]
    log = [json.loads(line) for line in saved_log.read_text().splitlines()] if resumed else []
    log = [r for r in log if r["step"] <= state["step"]]  # drop entries written after the last checkpoint

    bar = tqdm(total=steps, initial=state["step"], desc=task.name, dynamic_ncols=True,
               disable=not progress or not accelerator.is_main_process)
    clock["started"] = time.perf_counter() - state["train_seconds"]
    running_loss = torch.zeros((), device=accelerator.device)  # summed on device: no sync per step
    running_steps, last_eval, last_loss = 0, {}, "-"

    def save_checkpoint(new_best: bool):
        """All processes save their part (RNG states are per process); the main one adds the best
        model (the current weights if ``new_best``, else the live checkpoint's) and the log, then
        swaps the folder in: state, best and log change together."""
        state["train_seconds"] = elapsed()
        tmp = out / f".{CHECKPOINT_DIR}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        # torch pickles, not safetensors: safetensors drops the tied embedding copies with a warning
        accelerator.save_state(str(tmp / "state"), safe_serialization=False)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if new_best:
                task.save_best(accelerator.unwrap_model(model), tmp / "best")
            elif (checkpoint / "best").exists():
                shutil.copytree(checkpoint / "best", tmp / "best")
            write_log(log, tmp / LOG_FILE)
            atomic_write_json(tmp / STATE_FILE, state)
            swap_directory(tmp, checkpoint)
            write_log(log, log_path)  # the copy to watch while training runs
        accelerator.wait_for_everyone()

    def validate(users: np.ndarray) -> dict:
        result = [None]
        if accelerator.is_main_process:
            result[0] = task.validate(accelerator.unwrap_model(model), users)
        if accelerator.num_processes > 1:
            broadcast_object_list(result)
        return result[0]

    def estimate_validation_seconds() -> float:
        """A first validation's duration: one evaluation batch of the validation users timed, scaled
        to all of them (its cost does not depend on the weights)."""
        sample = eval_users[:ESTIMATE_USERS]
        started = time.perf_counter()
        validate(sample)
        return (time.perf_counter() - started) * len(eval_users) / len(sample)

    def over_budget() -> bool:
        """Out of time once what is left would not cover one more validation and checkpoint (the
        last one's duration, or before the first the estimate), so the final validation still ends
        inside the budget."""
        out_of_time = budget > 0 and elapsed() + state["eval_seconds"] >= budget
        if budget > 0 and accelerator.num_processes > 1:  # one decision for all: the main process's clock
            out_of_time = bool(broadcast(torch.tensor([out_of_time], device=accelerator.device)).item())
        return out_of_time

    if budget > 0 and not state["eval_seconds"]:
        state["eval_seconds"] = estimate_validation_seconds()

    while not state["done"]:
        batches = epoch_plan(state["epoch"])
        for batch_index in range(state["batch_in_epoch"], len(batches)):
            index = batches[batch_index]
            state["batch_in_epoch"] = batch_index + 1
            if len(index) < accelerator.num_processes:
                continue  # a remainder batch too small to split over the processes
            model.train()
            # Each process takes its share of the random batch, then cuts that into micro-batches.
            share = index[accelerator.process_index :: accelerator.num_processes]
            loss = task.step(model, share, accelerator)
            if budget > 0 and accelerator.num_processes > 1:  # one learning-rate clock for all processes
                clock.pop("synced", None)
                clock["synced"] = float(broadcast(torch.tensor([elapsed()], dtype=torch.float64,
                                                           device=accelerator.device)).item())
            optimizer.step()
            if state["warmup_end_seconds"] is None and state["step"] + 1 >= config.warmup_steps:
                state["warmup_end_seconds"] = elapsed()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            running_loss += loss
            running_steps += 1
            bar.update(1)
            if state["step"] % LOG_EVERY == 0:
                mean_loss = running_loss.item() / running_steps
                last_loss = f"{mean_loss:.3f}"
                log.append({"step": state["step"], "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                            "seconds": round(elapsed(), 1)})
                bar.set_postfix(loss=last_loss, **last_eval,
                                **({"left": f"{max(0.0, budget - elapsed()) / 60:.0f} min"} if budget > 0 else {}))
                running_loss.zero_()
                running_steps = 0
            out_of_time = over_budget()
            finished = state["step"] >= steps or out_of_time
            if state["step"] % config.eval_every == 0 or finished:
                eval_started = time.perf_counter()
                metrics = validate(eval_users)
                last_eval = {"R@10": f"{metrics['recall@10']:.4f}", "N@10": _with_se(metrics, "ndcg@10")}
                log.append({"step": state["step"], "valid": metrics, "lr": scheduler.get_last_lr()[0],
                            "seconds": round(elapsed(), 1)})
                new_best = metrics["ndcg@10"] > state["best_ndcg@10"]
                if new_best:
                    state.update({"best_ndcg@10": metrics["ndcg@10"], "best_ndcg@10_se": metrics["ndcg@10_se"],
                                  "best_step": state["step"], "bad_evals": 0})
                else:
                    state["bad_evals"] += 1
                bar.set_postfix(loss=last_loss, **last_eval)
                if not progress:  # a log line per evaluation instead of the bar (quiet runs, log files)
                    used = f" of {budget:,.0f} s budget" if budget > 0 else ""
                    accelerator.print(f"step {state['step']:,}/{steps:,} loss {last_loss} valid R@10 "
                                      f"{_with_se(metrics, 'recall@10')} NDCG@10 {_with_se(metrics, 'ndcg@10')} "
                                      f"(± 1 s.e., {len(eval_users):,} users; best {state['best_ndcg@10']:.4f} at "
                                      f"{state['best_step']:,}), {elapsed():.0f} s{used}", flush=True)
                if state["step"] >= steps:
                    state["stop_reason"] = "steps"
                elif out_of_time:
                    state["stop_reason"] = "time budget"
                elif state["bad_evals"] >= config.patience:
                    state["stop_reason"] = "patience"
                state["done"] = state["stop_reason"] is not None
                save_checkpoint(new_best)
                state["eval_seconds"] = time.perf_counter() - eval_started  # validation + checkpoint
                if state["done"]:
                    break
        else:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    bar.close()
    if accelerator.is_main_process:
        write_log(log, out / LOG_FILE)  # a crash after the last checkpoint's swap may have left it behind
        task.finalize(out, checkpoint / "best", state, log, meta)
        # The finished artifact holds the best model and genrec.json the run's summary; the resume
        # checkpoint (optimizer state, last weights: several times the model's size) has no use left.
        shutil.rmtree(checkpoint)
    accelerator.wait_for_everyone()
    return state


def write_log(log: list[dict], path: Path) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in log))


def _with_se(metrics: dict, key: str) -> str:
    """``0.0412±0.0031``: a sampled-user metric with its standard error."""
    return f"{metrics[key]:.4f}±{metrics.get(f'{key}_se', 0.0):.4f}"


def finalize(out: Path, best_dir: Path, sids: SemanticIds, model_config: RecommenderConfig,
             dataset: ProcessedDataset, state: dict, log: list, meta: dict | None = None) -> None:
    """The best model, its tokenizer copy and metadata into ``out`` (Recommender.save writes
    genrec.json last, so its presence means the artifact is complete)."""
    best = load_model(best_dir, sids)
    plot_curves(log, out / "training_curves.png")
    Recommender(best, sids, model_config).save(out, meta={
        **training_summary(dataset, state),
        "tokenizer": str(Path(sids.path).resolve()) if sids.path else None,
        **(meta or {}),
    })


def training_summary(dataset: ProcessedDataset, state: dict) -> dict:
    """What a finished artifact's genrec.json records of its training run (any model kind)."""
    return {
        "dataset": str(Path(dataset.path).resolve()),  # recorded relative to the model folder by its save()
        "catalogue": dataset.catalogue(),  # the catalogue version it knows (ProcessedDataset.catalogue)
        "best_step": state["best_step"],
        "best_valid_ndcg@10": state["best_ndcg@10"],
        "best_valid_ndcg@10_se": state["best_ndcg@10_se"],
        "stop_reason": state["stop_reason"],
        "steps": state["step"],
        "epochs": round(state["step"] / state["batches_per_epoch"], 2),
        "train_seconds": round(state["train_seconds"], 1),
        "train_config": state["train_config"],
        "model_config": state["model_config"],
        "examples": state["examples"],
        "total_steps": state["total_steps"],
    }
