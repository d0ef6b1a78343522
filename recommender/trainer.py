"""The training loop every model shares (accelerate: CPU, one GPU, or many via ``accelerate launch``), resumable.

A ``TrainingTask`` says what one kind of model computes (recommender.train.T5Task,
recommender.sasrec_train.SASRecTask); ``Trainer`` runs it. Every ``eval_every`` steps: validation
NDCG@10 on a fixed user sample, the best model kept, and a checkpoint (model, optimizer, scheduler,
RNG states, the ``TrainingState``, the best model so far and the metrics log) written as one folder
that replaces the previous one (genrec.core.io.swap_directory), so the best weights, the state and
the log always belong to the same step. Killing the process and rerunning the same command
continues from the last checkpoint; the batches of an epoch are a pure function of (seed, epoch)
(recommender.data.epoch_batches), so the resumed run sees the same batches the uninterrupted one
would have. A resume with settings that change what the run computes (batch size, learning rate,
seed, model, ...) is refused; only RESUMABLE_CHANGES may differ.

With several processes (``accelerate launch``), each global batch of ``batch_size`` examples is
split across processes (so ``batch_size`` and the step count mean the same on 1 or N devices), each
process computes its share, and the main process runs validation and broadcasts the result.

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
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, atomic_write_text, read_json, restore_swapped_directory, swap_directory
from genrec.recommender.model_config import RecommenderConfig
from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.train_config import TrainConfig

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
LOG_FILE = "metrics.jsonl"
LOG_EVERY = 50  # steps between loss entries in the log / progress bar
ESTIMATE_USERS = 256  # validation users timed up front under a time budget (one evaluation batch)
# Settings a resumed run may change: how long it may run and on how many CPU threads, not what a
# step computes. Any other difference from the checkpoint's settings is refused.
RESUMABLE_CHANGES = ("time_budget_minutes", "threads")
# TrainingState fields whose JSON keys (the checkpoint's, genrec.json's) are not Python names.
JSON_KEYS = {"best_ndcg": "best_ndcg@10", "best_ndcg_se": "best_ndcg@10_se"}


@dataclass
class TrainingState:
    """Where a run stands: written into every checkpoint (STATE_FILE, ``as_json``), read back on
    resume (``from_json``), and returned when the run ends."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0  # batches of ``epoch`` already taken
    best_ndcg: float = -1.0  # the best validation NDCG@10 so far ("best_ndcg@10")
    best_ndcg_se: float = 0.0  # its standard error over the sampled users
    best_step: int = 0
    bad_evals: int = 0  # validations since the best one (patience)
    done: bool = False
    stop_reason: str | None = None  # "steps", "time budget" or "patience"
    train_seconds: float = 0.0  # training wall time, every attempt included
    eval_seconds: float = 0.0  # the last validation + checkpoint's duration (or the first one's estimate)
    warmup_end_seconds: float | None = None  # when warmup ended: the budget cosine's zero
    total_steps: int = 0
    examples: int = 0
    batches_per_epoch: int = 0
    # The run's settings; in trainer_state.json as objects, compared on resume (``changed_settings``).
    train_config: TrainConfig | None = None
    model_config: RecommenderConfig | SASRecConfig | None = None

    def as_json(self) -> dict:
        return {JSON_KEYS.get(name, name): value for name, value in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict, train_config: TrainConfig | None = None,
                  model_config: RecommenderConfig | SASRecConfig | None = None) -> TrainingState:
        """The state saved as ``data``, with the run's own settings (those of ``data`` were checked
        against them by ``changed_settings``)."""
        names = {f.name for f in fields(cls)} - {"train_config", "model_config"}
        python = {name: data[key] for name, key in ((n, JSON_KEYS.get(n, n)) for n in names) if key in data}
        return cls(**python, train_config=train_config, model_config=model_config)


class TrainingTask(Protocol):
    """What the loop needs from one kind of model: its module, the batches of an epoch, a training
    step's loss, validation and the finished artifact."""

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

    def finalize(self, out: Path, best: Path, state: TrainingState, log: list, meta: dict | None) -> None:
        """Write the finished artifact into ``out`` from the best weights in ``best``."""


def total_steps(config, batches_per_epoch: int) -> int:
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


def changed_settings(saved: dict, config: dict, model_config: dict, examples: int) -> list[str]:
    """``name old -> new`` for each setting of ``saved`` (a checkpoint's state as JSON) that the current
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


def write_log(log: list[dict], path: Path) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in log))


def _with_se(metrics: dict, key: str) -> str:
    """``0.0412±0.0031``: a sampled-user metric with its standard error."""
    return f"{metrics[key]:.4f}±{metrics.get(f'{key}_se', 0.0):.4f}"


class Trainer:
    """One run of ``task``: AdamW with warmup and cosine, resumable checkpoints, the time budget,
    periodic validation on a fixed user sample with the best weights kept, and the artifact
    written by ``task.finalize``. ``model_config``: the model's settings (a checkpoint written with
    others is refused)."""

    def __init__(self, task: TrainingTask, out: Path, config: TrainConfig, model_config: RecommenderConfig | SASRecConfig,
                 num_users: int,
                 progress: bool = True, meta: dict | None = None):
        from accelerate import Accelerator

        self.task, self.out, self.config, self.progress, self.meta = task, Path(out), config, progress, meta
        self.checkpoint = self.out / CHECKPOINT_DIR
        # The scheduler steps once per optimizer step: a step is one global batch on any number of devices.
        self.accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision),
                                       cpu=not torch.cuda.is_available(), step_scheduler_with_optimizer=False)
        use_tf32_on_cuda(self.accelerator.device)
        users = np.arange(1, num_users + 1)
        if config.eval_users and config.eval_users < len(users):
            users = np.sort(np.random.default_rng(config.seed).choice(users, config.eval_users, replace=False))
        self.eval_users = users
        batches_per_epoch = len(task.epoch_plan(0))
        self.steps = total_steps(config, batches_per_epoch)
        self.budget = 60.0 * config.time_budget_minutes  # seconds; 0 = no budget
        self.state = TrainingState(total_steps=self.steps, examples=task.examples,
                                   batches_per_epoch=batches_per_epoch, train_config=config,
                                   model_config=model_config)
        self.started: float | None = None  # perf_counter() at which this run's training time (all attempts) is 0
        self.synced: float | None = None  # several processes: the main process's elapsed(), synced once a step
        optimizer = torch.optim.AdamW(task.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(config.warmup_steps, self.steps, self.budget_progress if self.budget > 0 else None))
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(task.model, optimizer, scheduler)
        self.log: list[dict] = []

    # -- clocks ---------------------------------------------------------------------------------

    def elapsed(self) -> float:
        """Training wall time of the run so far, every attempt included."""
        return self.synced if self.synced is not None else time.perf_counter() - self.started

    def budget_progress(self) -> float:
        """Share of the budget's post-warmup time used (the cosine's clock under a budget)."""
        if self.started is None or self.state.warmup_end_seconds is None:
            return 0.0
        start = self.state.warmup_end_seconds
        return (self.elapsed() - start) / max(1e-9, self.budget - start)

    def over_budget(self) -> bool:
        """Out of time once what is left would not cover one more validation and checkpoint (the
        last one's duration, or before the first the estimate), so the final validation still ends
        inside the budget."""
        from accelerate.utils import broadcast

        out_of_time = self.budget > 0 and self.elapsed() + self.state.eval_seconds >= self.budget
        if self.budget > 0 and self.accelerator.num_processes > 1:  # one decision for all: the main process's
            out_of_time = bool(broadcast(torch.tensor([out_of_time], device=self.accelerator.device)).item())
        return out_of_time

    def sync_clock(self) -> None:
        """Several processes under a budget: one learning-rate clock for all, the main process's."""
        from accelerate.utils import broadcast

        if self.budget > 0 and self.accelerator.num_processes > 1:
            self.synced = None
            self.synced = float(broadcast(torch.tensor([self.elapsed()], dtype=torch.float64,
                                                       device=self.accelerator.device)).item())

    # -- checkpoints ----------------------------------------------------------------------------

    def resume(self) -> None:
        """Continue from the checkpoint in ``out`` if there is one (refused if its settings differ),
        with its metrics log up to its step."""
        accelerator, config = self.accelerator, self.config
        if accelerator.is_main_process:
            restore_swapped_directory(self.checkpoint)  # a crash between the two renames of a checkpoint swap
        accelerator.wait_for_everyone()
        if (self.checkpoint / STATE_FILE).is_file():
            saved = read_json(self.checkpoint / STATE_FILE)
            changes = changed_settings(saved, asdict(config), asdict(self.state.model_config), self.task.examples)
            if changes:
                raise GenrecError(f"{self.checkpoint} was written with other settings ({'; '.join(changes)}); "
                                  "rerun with the same options, or pass --restart to discard it")
            accelerator.load_state(str(self.checkpoint / "state"))
            # this run's settings: e.g. a longer --time-budget for the rest of the run
            self.state = TrainingState.from_json({**self.state.as_json(), **saved}, config, self.state.model_config)
            accelerator.print(f"resuming from step {self.state.step} (epoch {self.state.epoch}, "
                              f"batch {self.state.batch_in_epoch})")
        saved_log = self.checkpoint / LOG_FILE if (self.checkpoint / LOG_FILE).is_file() else self.out / LOG_FILE
        if saved_log.is_file() and self.state.step:
            log = [json.loads(line) for line in saved_log.read_text().splitlines()]
            self.log = [r for r in log if r["step"] <= self.state.step]  # drop entries after the checkpoint

    def save_checkpoint(self, new_best: bool) -> None:
        """All processes save their part (RNG states are per process); the main one adds the best
        model (the current weights if ``new_best``, else the live checkpoint's) and the log, then
        swaps the folder in: state, best and log change together."""
        accelerator = self.accelerator
        self.state.train_seconds = self.elapsed()
        tmp = self.out / f".{CHECKPOINT_DIR}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        # torch pickles, not safetensors: safetensors drops the tied embedding copies with a warning
        accelerator.save_state(str(tmp / "state"), safe_serialization=False)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if new_best:
                self.task.save_best(accelerator.unwrap_model(self.model), tmp / "best")
            elif (self.checkpoint / "best").exists():
                shutil.copytree(self.checkpoint / "best", tmp / "best")
            write_log(self.log, tmp / LOG_FILE)
            atomic_write_json(tmp / STATE_FILE, self.state.as_json())
            swap_directory(tmp, self.checkpoint)
            write_log(self.log, self.out / LOG_FILE)  # the copy to watch while training runs
        accelerator.wait_for_everyone()

    # -- validation -----------------------------------------------------------------------------

    def validate(self, users: np.ndarray) -> dict:
        from accelerate.utils import broadcast_object_list

        result = [None]
        if self.accelerator.is_main_process:
            result[0] = self.task.validate(self.accelerator.unwrap_model(self.model), users)
        if self.accelerator.num_processes > 1:
            broadcast_object_list(result)
        return result[0]

    def estimate_validation_seconds(self) -> float:
        """A first validation's duration: one evaluation batch of the validation users timed, scaled
        to all of them (its cost does not depend on the weights)."""
        sample = self.eval_users[:ESTIMATE_USERS]
        started = time.perf_counter()
        self.validate(sample)
        return (time.perf_counter() - started) * len(self.eval_users) / len(sample)

    def evaluate(self, out_of_time: bool, last_loss: str) -> dict:
        """Validate, keep the best, decide whether to stop (steps, budget, patience) and checkpoint;
        returns the metrics."""
        state, config = self.state, self.config
        eval_started = time.perf_counter()
        metrics = self.validate(self.eval_users)
        self.log.append({"step": state.step, "valid": metrics, "lr": self.scheduler.get_last_lr()[0],
                         "seconds": round(self.elapsed(), 1)})
        new_best = metrics["ndcg@10"] > state.best_ndcg
        if new_best:
            state.best_ndcg, state.best_ndcg_se = metrics["ndcg@10"], metrics["ndcg@10_se"]
            state.best_step, state.bad_evals = state.step, 0
        else:
            state.bad_evals += 1
        if not self.progress:  # a log line per evaluation instead of the bar (quiet runs, log files)
            used = f" of {self.budget:,.0f} s budget" if self.budget > 0 else ""
            self.accelerator.print(
                f"step {state.step:,}/{self.steps:,} loss {last_loss} valid R@10 {_with_se(metrics, 'recall@10')} "
                f"NDCG@10 {_with_se(metrics, 'ndcg@10')} (± 1 s.e., {len(self.eval_users):,} users; best "
                f"{state.best_ndcg:.4f} at {state.best_step:,}), {self.elapsed():.0f} s{used}", flush=True)
        if state.step >= self.steps:
            state.stop_reason = "steps"
        elif out_of_time:
            state.stop_reason = "time budget"
        elif state.bad_evals >= config.patience:
            state.stop_reason = "patience"
        state.done = state.stop_reason is not None
        self.save_checkpoint(new_best)
        state.eval_seconds = time.perf_counter() - eval_started  # validation + checkpoint
        return metrics

    # -- the loop -------------------------------------------------------------------------------

    def train_step(self, index: np.ndarray) -> torch.Tensor | None:
        """One optimizer step on the batch ``index`` (None: a remainder batch too small to split)."""
        accelerator, state = self.accelerator, self.state
        if len(index) < accelerator.num_processes:
            return None
        self.model.train()
        # Each process takes its share of the random batch, then the task cuts that into micro-batches.
        loss = self.task.step(self.model, index[accelerator.process_index :: accelerator.num_processes], accelerator)
        self.sync_clock()
        self.optimizer.step()
        if state.warmup_end_seconds is None and state.step + 1 >= self.config.warmup_steps:
            state.warmup_end_seconds = self.elapsed()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        state.step += 1
        return loss

    def run(self) -> TrainingState:
        """Train to the end (resuming first), write the artifact, drop the checkpoint."""
        accelerator, config = self.accelerator, self.config
        self.resume()
        state = self.state
        limit = f", time budget {config.time_budget_minutes:g} min" if self.budget > 0 else ""
        accelerator.print(f"{self.task.examples:,} training examples, {state.batches_per_epoch:,} batches of "
                          f"{config.batch_size} per epoch, {self.steps:,} steps{limit} on "
                          f"{accelerator.num_processes} process(es), {accelerator.device}, mixed precision "
                          f"{accelerator.mixed_precision}{self.task.batching}")
        self.out.mkdir(parents=True, exist_ok=True)
        bar = tqdm(total=self.steps, initial=state.step, desc=self.task.name, dynamic_ncols=True,
                   disable=not self.progress or not accelerator.is_main_process)
        self.started = time.perf_counter() - state.train_seconds
        running_loss = torch.zeros((), device=accelerator.device)  # summed on device: no sync per step
        running_steps, last_eval, last_loss = 0, {}, "-"
        if self.budget > 0 and not state.eval_seconds:
            state.eval_seconds = self.estimate_validation_seconds()
        while not state.done:
            batches = self.task.epoch_plan(state.epoch)
            for batch_index in range(state.batch_in_epoch, len(batches)):
                state.batch_in_epoch = batch_index + 1
                loss = self.train_step(batches[batch_index])
                if loss is None:
                    continue
                running_loss += loss
                running_steps += 1
                bar.update(1)
                if state.step % LOG_EVERY == 0:
                    mean_loss = running_loss.item() / running_steps
                    last_loss = f"{mean_loss:.3f}"
                    self.log.append({"step": state.step, "loss": mean_loss, "lr": self.scheduler.get_last_lr()[0],
                                     "seconds": round(self.elapsed(), 1)})
                    left = {"left": f"{max(0.0, self.budget - self.elapsed()) / 60:.0f} min"} if self.budget > 0 else {}
                    bar.set_postfix(loss=last_loss, **last_eval, **left)
                    running_loss.zero_()
                    running_steps = 0
                out_of_time = self.over_budget()
                if state.step % config.eval_every == 0 or state.step >= self.steps or out_of_time:
                    metrics = self.evaluate(out_of_time, last_loss)
                    last_eval = {"R@10": f"{metrics['recall@10']:.4f}", "N@10": _with_se(metrics, "ndcg@10")}
                    bar.set_postfix(loss=last_loss, **last_eval)
                    if state.done:
                        break
            else:
                state.epoch += 1
                state.batch_in_epoch = 0
        bar.close()
        if accelerator.is_main_process:
            write_log(self.log, self.out / LOG_FILE)  # a crash after the last checkpoint's swap may have left it behind
            self.task.finalize(self.out, self.checkpoint / "best", state, self.log, self.meta)
            # The finished artifact holds the best model and genrec.json the run's summary; the resume
            # checkpoint (optimizer state, last weights: several times the model's size) has no use left.
            shutil.rmtree(self.checkpoint)
        accelerator.wait_for_everyone()
        return state


def run_training(task: TrainingTask, out: Path, config: TrainConfig, model_config: RecommenderConfig | SASRecConfig,
                 num_users: int, progress: bool = True, meta: dict | None = None) -> TrainingState:
    """Run ``task`` to the end (``Trainer``); its final state."""
    return Trainer(task, out, config, model_config, num_users, progress, meta).run()
