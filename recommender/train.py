"""Training loop (accelerate: CPU, one GPU, or many via ``accelerate launch``), resumable.

Every ``eval_every`` steps: validation NDCG@10 with constrained beam search on a fixed user
sample, the best model kept, and a checkpoint (model, optimizer, scheduler, RNG states, step,
epoch and batch position) written atomically. Killing the process and rerunning the same
command continues from the last checkpoint; the data order is a pure function of (seed, epoch),
so the resumed run sees the same batches the uninterrupted one would have.
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

from data_prep.dataset import ProcessedDataset
from eval.ranking_metrics import ranking_metrics
from genrec.io import atomic_write_json, atomic_write_text, read_json
from recommender.artifact import META_FILE, copy_tokenizer
from recommender.data import ExampleBuilder, TokenizedExamples, split_examples, training_examples
from recommender.decoding import recommend_items
from recommender.model import RecommenderConfig, build_model
from recommender.vocab import SidVocab
from tokenizer.artifact import SemanticIds

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "trainer_state.json"
LOG_FILE = "metrics.jsonl"


@dataclass
class TrainConfig:
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.01
    warmup_steps: int = 300
    max_steps: int = 20000
    eval_every: int = 1000
    eval_users: int = 2000  # validation users sampled for the periodic check (0 = all)
    eval_beams: int = 20
    patience: int = 4  # evaluations without NDCG@10 improvement before stopping
    seed: int = 0
    mixed_precision: str = "auto"  # auto (bf16 on a GPU that has it) | no | bf16 | fp16


def lr_lambda(config: TrainConfig):
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))  # cosine decay to 10%

    return factor


def _mixed_precision(choice: str) -> str:
    if choice != "auto":
        return choice
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def evaluate_users(model, builder: ExampleBuilder, table, dataset: ProcessedDataset, split: str,
                   users: np.ndarray, beams: int, batch_size: int = 256, progress: bool = False) -> dict:
    examples = split_examples(dataset, split, users)
    histories = [h for _, h, _ in examples]
    targets = np.asarray([t for _, _, t in examples])
    items, _ = recommend_items(model, builder, table, histories, beams, users=[u for u, _, _ in examples],
                               batch_size=batch_size, progress=progress)
    ks = tuple(k for k in (5, 10, 20, 30) if k <= beams)
    metrics = ranking_metrics(items, targets, ks)
    metrics["invalid_rate"] = float((items <= 0).mean())
    return metrics


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
    right.set(xlabel="step", title="validation")
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
    from accelerate.utils import set_seed

    out = Path(out)
    checkpoint = out / CHECKPOINT_DIR
    accelerator = Accelerator(mixed_precision=_mixed_precision(config.mixed_precision), cpu=not torch.cuda.is_available())
    set_seed(config.seed)
    vocab = SidVocab.for_semantic_ids(sids, model_config.num_user_buckets)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, model_config.max_history)
    train = builder.build(training_examples(dataset))
    table = vocab.prefix_table(sids.codes)
    rng = np.random.default_rng(config.seed)
    eval_users = np.arange(1, dataset.num_users + 1)
    if config.eval_users and config.eval_users < len(eval_users):
        eval_users = np.sort(rng.choice(eval_users, config.eval_users, replace=False))

    model = build_model(model_config, vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "best_ndcg@10": -1.0, "best_step": 0,
             "bad_evals": 0, "done": False, "train_seconds": 0.0,
             "train_config": asdict(config), "model_config": asdict(model_config)}
    if (checkpoint / STATE_FILE).is_file():
        saved = read_json(checkpoint / STATE_FILE)
        accelerator.load_state(str(checkpoint / "state"))
        state.update(saved)
        accelerator.print(f"resuming from step {state['step']} (epoch {state['epoch']}, batch {state['batch_in_epoch']})")
    log_path = out / LOG_FILE
    out.mkdir(parents=True, exist_ok=True)
    log = [json.loads(line) for line in log_path.read_text().splitlines()] if log_path.is_file() and state["step"] else []
    log = [r for r in log if r["step"] <= state["step"]]  # drop entries written after the last checkpoint

    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    bar = tqdm(total=config.max_steps, initial=state["step"], desc="train recommender", disable=not progress or not accelerator.is_main_process, dynamic_ncols=True)
    started = time.perf_counter() - state["train_seconds"]
    running, last_eval = [], {}

    def save_checkpoint():
        state["train_seconds"] = time.perf_counter() - started
        tmp = out / f".{CHECKPOINT_DIR}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        accelerator.save_state(str(tmp / "state"))
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

    while not state["done"]:
        order = np.random.default_rng([config.seed, state["epoch"]]).permutation(len(train))
        for batch_index in range(state["batch_in_epoch"], batches_per_epoch):
            model.train()
            index = order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]
            batch = train.batch(index, accelerator.device)
            loss = model(**batch).loss
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            state["batch_in_epoch"] = batch_index + 1
            running.append(loss.item())
            bar.update(1)
            if state["step"] % 50 == 0:
                log.append({"step": state["step"], "loss": float(np.mean(running)), "lr": scheduler.get_last_lr()[0]})
                bar.set_postfix(loss=f"{np.mean(running):.3f}", **{k: f"{v:.4f}" for k, v in last_eval.items()})
                running = []
            finished = state["step"] >= config.max_steps
            if state["step"] % config.eval_every == 0 or finished:
                unwrapped = accelerator.unwrap_model(model)
                metrics = evaluate_users(unwrapped, builder, table, dataset, "valid", eval_users, config.eval_beams)
                last_eval = {"R@10": metrics["recall@10"], "N@10": metrics["ndcg@10"]}
                log.append({"step": state["step"], "valid": metrics, "seconds": time.perf_counter() - started})
                if metrics["ndcg@10"] > state["best_ndcg@10"]:
                    state.update({"best_ndcg@10": metrics["ndcg@10"], "best_step": state["step"], "bad_evals": 0})
                    if accelerator.is_main_process:
                        unwrapped.save_pretrained(checkpoint / "best.tmp")
                        shutil.rmtree(checkpoint / "best", ignore_errors=True)
                        os.replace(checkpoint / "best.tmp", checkpoint / "best")
                else:
                    state["bad_evals"] += 1
                bar.set_postfix(loss=f"{np.mean(running) if running else float('nan'):.3f}", **{k: f"{v:.4f}" for k, v in last_eval.items()})
                if finished or state["bad_evals"] >= config.patience:
                    state["done"] = True
                if accelerator.is_main_process:
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
        finalize(out, checkpoint, sids, dataset, state, log)
    return state


def finalize(out: Path, checkpoint: Path, sids: SemanticIds, dataset: ProcessedDataset, state: dict, log: list) -> None:
    """Best model + tokenizer copy + metadata into ``out``; genrec.json is written last, so its
    presence means the artifact is complete."""
    for item in (checkpoint / "best").iterdir():
        shutil.copy2(item, out / f".{item.name}.tmp")
        os.replace(out / f".{item.name}.tmp", out / item.name)
    copy_tokenizer(sids, out)
    plot_curves(log, out / "training_curves.png")
    atomic_write_json(out / META_FILE, {
        "dataset": str(Path(dataset.path).resolve()),
        "tokenizer": str(Path(sids.path).resolve()) if sids.path else None,
        "tokenizer_checksum": sids.checksum,
        "best_step": state["best_step"],
        "best_valid_ndcg@10": state["best_ndcg@10"],
        "steps": state["step"],
        "train_seconds": round(state["train_seconds"], 1),
        "train_config": state["train_config"],
        "model_config": state["model_config"],
    })
