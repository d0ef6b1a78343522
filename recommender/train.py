"""Training loop (accelerate: CPU, one GPU, or many via ``accelerate launch``), resumable.

Every ``eval_every`` steps: validation NDCG@10 with constrained beam search on a fixed user
sample, the best model kept, and a checkpoint (model, optimizer, scheduler, RNG states, step,
epoch and batch position) written atomically. Killing the process and rerunning the same
command continues from the last checkpoint; the batches of an epoch are a pure function of
(seed, epoch) (recommender.data.epoch_batches), so the resumed run sees the same batches the
uninterrupted one would have.

With several processes (``accelerate launch``), each global batch of ``batch_size`` examples is
split across processes (so ``batch_size`` and the step count mean the same on 1 or N devices),
the main process runs the validation beam search and broadcasts the result.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from genrec.data_prep.dataset import ProcessedDataset
from genrec.core.allocator import keep_freed_memory
from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, atomic_write_text, read_json
from genrec.recommender.data import epoch_batches, training_examples
from genrec.recommender.fast_dropout import use_fast_dropout
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.recommender import Recommender
from genrec.recommender.vocab import SidVocab
from genrec.tokenizer.artifact import SemanticIds

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
LOG_FILE = "metrics.jsonl"
LOG_EVERY = 50  # steps between loss entries in the log / progress bar


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
    sort_window: int = 50  # batches sorted together by length (1 = no length bucketing)
    seed: int = 0
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it) | no | bf16 | fp16
    fast_dropout: bool = True  # CPU: cheap dropout masks (recommender.fast_dropout); same model, same p


def total_steps(config: TrainConfig, batches_per_epoch: int) -> int:
    return math.ceil(config.epochs * batches_per_epoch) if config.epochs > 0 else config.max_steps


def lr_lambda(warmup_steps: int, steps: int):
    """Linear warmup, then cosine decay to 10% of the peak learning rate at ``steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


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
    for key in ("recall@10", "ndcg@10"):
        right.plot([r["step"] for r in evals], [r["valid"][key] for r in evals], marker="o", label=key)
    right.set(xlabel="step", title="validation (sampled users)")
    right.legend()
    for axis in (left, right):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def train_recommender(dataset: ProcessedDataset, sids: SemanticIds, out: Path, model_config: RecommenderConfig,
                      config: TrainConfig, progress: bool = True, stop_after_steps: int | None = None) -> dict:
    """Train (or resume) and write the artifact to ``out``. ``stop_after_steps`` simulates a kill (tests)."""
    from accelerate import Accelerator
    from accelerate.utils import broadcast_object_list, set_seed

    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no "Writing model shards" bar inside ours
    keep_freed_memory()
    out = Path(out)
    checkpoint = out / CHECKPOINT_DIR
    # The scheduler steps once per optimizer step: a step is one global batch on any number of devices.
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision),
                              cpu=not torch.cuda.is_available(), step_scheduler_with_optimizer=False)
    set_seed(config.seed)
    vocab = SidVocab.for_semantic_ids(sids, model_config.num_user_buckets)
    model = build_model(model_config, vocab)
    recommender = Recommender(model, sids, model_config)  # the validation decoder, sharing the weights
    train = recommender.builder.build(training_examples(dataset))
    if len(train) == 0:
        raise GenrecError(f"{dataset.path}: no training examples (every user needs at least 4 items)")
    eval_users = np.arange(1, dataset.num_users + 1)
    if config.eval_users and config.eval_users < len(eval_users):
        eval_users = np.sort(np.random.default_rng(config.seed).choice(eval_users, config.eval_users, replace=False))
    batches_per_epoch = len(epoch_batches(train.lengths, config.batch_size, config.seed, 0, config.sort_window))
    steps = total_steps(config, batches_per_epoch)

    if config.fast_dropout:
        use_fast_dropout(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config.warmup_steps, steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_ndcg@10": -1.0, "best_step": 0,
             "bad_evals": 0, "done": False, "train_seconds": 0.0, "total_steps": steps,
             "examples": len(train), "batches_per_epoch": batches_per_epoch,
             "train_config": asdict(config), "model_config": asdict(model_config)}
    if (checkpoint / STATE_FILE).is_file():
        saved = read_json(checkpoint / STATE_FILE)
        if saved.get("model_config") != asdict(model_config) or saved.get("total_steps") != steps:
            raise GenrecError(f"{checkpoint} was written with other settings; rerun with the same options, "
                              "or pass --restart to discard it")
        accelerator.load_state(str(checkpoint / "state"))
        state.update(saved)
        accelerator.print(f"resuming from step {state['step']} (epoch {state['epoch']}, batch {state['batch_in_epoch']})")
    accelerator.print(f"{len(train):,} training examples, {batches_per_epoch:,} batches of {config.batch_size} per epoch, "
                      f"{steps:,} steps on {accelerator.num_processes} process(es), {accelerator.device}, "
                      f"mixed precision {accelerator.mixed_precision}")
    log_path = out / LOG_FILE
    out.mkdir(parents=True, exist_ok=True)
    log = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.is_file() and state["step"] else []
    log = [r for r in log if r["step"] <= state["step"]]  # drop entries written after the last checkpoint

    bar = tqdm(total=steps, initial=state["step"], desc="train recommender", dynamic_ncols=True,
               disable=not progress or not accelerator.is_main_process)
    started = time.perf_counter() - state["train_seconds"]
    running_loss = torch.zeros((), device=accelerator.device)  # summed on device: no sync per step
    running_steps, last_eval, last_loss = 0, {}, "-"

    def save_checkpoint():
        """All processes save their part (RNG states are per process); the main one swaps it in."""
        state["train_seconds"] = time.perf_counter() - started
        tmp = out / f".{CHECKPOINT_DIR}.tmp"
        if accelerator.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
        accelerator.wait_for_everyone()
        # torch pickles, not safetensors: safetensors drops the tied embedding copies with a warning
        accelerator.save_state(str(tmp / "state"), safe_serialization=False)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            best = checkpoint / "best"
            if best.exists():
                shutil.copytree(best, tmp / "best")
            atomic_write_json(tmp / STATE_FILE, state)
            old = out / f".{CHECKPOINT_DIR}.old"
            shutil.rmtree(old, ignore_errors=True)
            if checkpoint.exists():
                os.replace(checkpoint, old)
            os.replace(tmp, checkpoint)
            shutil.rmtree(old, ignore_errors=True)
            atomic_write_text(log_path, "".join(json.dumps(r) + "\n" for r in log))
        accelerator.wait_for_everyone()

    def validate() -> dict:
        result = [None]
        if accelerator.is_main_process:
            recommender.model = accelerator.unwrap_model(model)
            result[0] = recommender.evaluate(dataset, "valid", eval_users, config.eval_beams)
        if accelerator.num_processes > 1:
            broadcast_object_list(result)
        return result[0]

    while not state["done"]:
        batches = epoch_batches(train.lengths, config.batch_size, config.seed, state["epoch"], config.sort_window)
        for batch_index in range(state["batch_in_epoch"], len(batches)):
            index = batches[batch_index]
            state["batch_in_epoch"] = batch_index + 1
            if len(index) < accelerator.num_processes:
                continue  # a remainder batch too small to split over the processes
            model.train()
            batch = train.batch(index[accelerator.process_index :: accelerator.num_processes], accelerator.device)
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            running_loss += loss.detach()
            running_steps += 1
            bar.update(1)
            if state["step"] % LOG_EVERY == 0:
                mean_loss = running_loss.item() / running_steps
                last_loss = f"{mean_loss:.3f}"
                log.append({"step": state["step"], "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                            "seconds": round(time.perf_counter() - started, 1)})
                bar.set_postfix(loss=last_loss, **last_eval)
                running_loss.zero_()
                running_steps = 0
            finished = state["step"] >= steps
            if state["step"] % config.eval_every == 0 or finished:
                metrics = validate()
                last_eval = {"R@10": f"{metrics['recall@10']:.4f}", "N@10": f"{metrics['ndcg@10']:.4f}"}
                log.append({"step": state["step"], "valid": metrics, "seconds": round(time.perf_counter() - started, 1)})
                if metrics["ndcg@10"] > state["best_ndcg@10"]:
                    state.update({"best_ndcg@10": metrics["ndcg@10"], "best_step": state["step"], "bad_evals": 0})
                    if accelerator.is_main_process:
                        accelerator.unwrap_model(model).save_pretrained(checkpoint / "best.tmp")
                        shutil.rmtree(checkpoint / "best", ignore_errors=True)
                        os.replace(checkpoint / "best.tmp", checkpoint / "best")
                else:
                    state["bad_evals"] += 1
                bar.set_postfix(loss=last_loss, **last_eval)
                if not progress:  # a log line per evaluation instead of the bar (quiet runs, log files)
                    accelerator.print(f"step {state['step']:,}/{steps:,} loss {last_loss} valid R@10 "
                                      f"{metrics['recall@10']:.4f} NDCG@10 {metrics['ndcg@10']:.4f} (best "
                                      f"{state['best_ndcg@10']:.4f} at {state['best_step']:,}), "
                                      f"{time.perf_counter() - started:.0f} s", flush=True)
                if finished or state["bad_evals"] >= config.patience:
                    state["done"] = True
                save_checkpoint()
                if state["done"]:
                    break
            if stop_after_steps is not None and state["step"] >= stop_after_steps:
                bar.close()
                return state
        else:
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    bar.close()
    if accelerator.is_main_process:
        finalize(out, checkpoint, sids, model_config, dataset, state, log)
        # The finished artifact holds the best model and genrec.json the run's summary; the resume
        # checkpoint (optimizer state, last weights: several times the model's size) has no use left.
        shutil.rmtree(checkpoint)
    accelerator.wait_for_everyone()
    return state


def finalize(out: Path, checkpoint: Path, sids: SemanticIds, model_config: RecommenderConfig,
             dataset: ProcessedDataset, state: dict, log: list) -> None:
    """The best model, its tokenizer copy and metadata into ``out`` (Recommender.save writes
    genrec.json last, so its presence means the artifact is complete)."""
    from transformers import T5ForConditionalGeneration

    best = T5ForConditionalGeneration.from_pretrained(checkpoint / "best")
    plot_curves(log, out / "training_curves.png")
    Recommender(best, sids, model_config).save(out, meta={
        "dataset": str(Path(dataset.path).resolve()),
        "tokenizer": str(Path(sids.path).resolve()) if sids.path else None,
        "best_step": state["best_step"],
        "best_valid_ndcg@10": state["best_ndcg@10"],
        "steps": state["step"],
        "epochs": round(state["step"] / state["batches_per_epoch"], 2),
        "train_seconds": round(state["train_seconds"], 1),
        "train_config": state["train_config"],
        "model_config": state["model_config"],
        "examples": state["examples"],
        "total_steps": state["total_steps"],
    })
