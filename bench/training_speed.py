"""Training throughput of one way of feeding and running the T5 recommender.

Every variant runs the same step (forward, backward, AdamW) on the same model size from the same
initial weights; they differ in what the step is fed and how it runs:

* batching ``padded``: a ``torch.utils.data.DataLoader`` over the examples padded to the longest
  possible input (max_history * (L + 1) + 1 tokens), shuffled, collated on the hot path: what a
  plain HF training script does;
* ``bucketing``: genrec's precomputed token arrays in length-bucketed batches
  (recommender.data.epoch_batches with sort_window 50) cut to their own longest input (dynamic padding);
* ``micro``: plain random batches, each sorted by length and cut into at most ``micro_batches``
  micro-batches with the least padding, gradients accumulated into one optimizer step
  (recommender.train.accumulate_gradients: the same gradient as the padded batch); genrec's default;
* ``fast_dropout``: recommender.fast_dropout instead of torch's CPU dropout;
* keep freed memory (genrec.core.allocator): process-wide, so the suite runs every variant in its
  own process and sets it there.

Samples/s is examples per second of wall time over ``steps`` timed steps after ``warmup`` untimed
ones, building each batch included. With bucketing, batch widths vary, so the timed batches are a
width-stratified sample of a whole epoch's batches (every k-th batch in order of width): their
mean width matches the epoch's, and so does the throughput. Random batches (padded, micro) are
alike, so consecutive ones are timed. "Mean width" is padded encoder tokens per example.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import load_inputs
from genrec.data_prep.dataset import ProcessedDataset
from genrec.recommender.data import ExampleBuilder, TokenizedExamples, epoch_batches, micro_batches, training_examples
from genrec.recommender.fast_dropout import use_fast_dropout
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.train import accumulate_gradients
from genrec.recommender.train_config import TrainConfig
from genrec.recommender.vocab import PAD_TOKEN, SidVocab
from genrec.tokenizer.artifact import SemanticIds

# name -> (batching, fast dropout, keep freed memory); the first is the baseline, "genrec" the defaults.
TRAIN_VARIANTS = {
    "plain": ("padded", False, False),
    "bucketing": ("bucketing", False, False),
    "bucketing+fast-dropout": ("bucketing", True, False),
    "genrec": ("micro", True, True),
}


def _timed_steps(model, optimizer, steps, warmup: int) -> tuple[float, int, float]:
    """Run every step (a callable: forward + backward, returning (loss, examples, padded tokens));
    return (seconds, examples, mean padded width) over the steps after ``warmup``."""
    seconds, examples, tokens = 0.0, 0, 0
    for i, step in enumerate(steps):
        started = time.perf_counter()
        loss, count, padded = step(model)  # building the batch counts as part of the step
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        if i >= warmup:
            seconds += time.perf_counter() - started
            examples += count
            tokens += padded
    return seconds, examples, tokens / examples


def _whole_batch_step(make_batch):
    def step(model):
        batch = make_batch()
        loss = model(**batch).loss
        loss.backward()
        return loss, batch["input_ids"].shape[0], batch["input_ids"].numel()

    return step


def _micro_batch_step(train: TokenizedExamples, index: np.ndarray, parts: int):
    def step(model):
        loss = accumulate_gradients(model, train, index, parts)
        pieces = micro_batches(index, train.lengths, parts)
        return loss, len(index), int(sum(len(p) * train.lengths[p].max() for p in pieces))

    return step


def _plain_batches(train: TokenizedExamples, batch_size: int, count: int, seed: int):
    """A DataLoader over padded-to-max tensors, as a plain HF training script would build it."""
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(train.inputs), torch.from_numpy(train.targets))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    iterator = iter(loader)

    def collate():
        input_ids, labels = next(iterator)
        return {"input_ids": input_ids, "attention_mask": (input_ids != PAD_TOKEN).long(), "labels": labels}

    return [collate] * count


def stratified_batches(batches: list[np.ndarray], widths: np.ndarray, count: int) -> list[np.ndarray]:
    """``count`` batches spread evenly over the width order, shuffled: a sample with the epoch's widths."""
    order = np.argsort(widths, kind="stable")
    picked = order[np.linspace(0, len(order) - 1, num=min(count, len(order))).round().astype(int)]
    return [batches[i] for i in np.random.default_rng(0).permutation(picked)]


def training_throughput(dataset: ProcessedDataset, sids: SemanticIds, model_config: RecommenderConfig,
                        batching: str, fast_dropout: bool, batch_size: int = 256, steps: int = 30,
                        warmup: int = 3, seed: int = 0, micro_batches: int = TrainConfig.micro_batches) -> dict:
    """Samples/s of one variant (see the module docstring); ``batching``: padded, bucketing or micro."""
    vocab = SidVocab.for_semantic_ids(sids, model_config.num_user_buckets)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, model_config.max_history)
    train = builder.build(training_examples(dataset))
    epoch = epoch_batches(train.lengths, batch_size, seed, 0, sort_window=50)
    epoch_widths = np.asarray([train.lengths[index].max() for index in epoch])
    if batching == "bucketing":
        timed = stratified_batches(epoch, epoch_widths, steps)
        batches = [_whole_batch_step(lambda index=index: train.batch(index)) for index in epoch[:warmup] + timed]
    elif batching == "micro":
        plain = epoch_batches(train.lengths, batch_size, seed, 0, sort_window=1)
        plain = [plain[i % len(plain)] for i in range(warmup + steps)]
        batches = [_micro_batch_step(train, index, micro_batches) for index in plain]
    elif batching == "padded":
        batches = [_whole_batch_step(make) for make in _plain_batches(train, batch_size, warmup + steps, seed)]
    else:
        raise ValueError(f"unknown batching {batching!r}")
    torch.manual_seed(seed)
    model = build_model(model_config, vocab).train()
    if fast_dropout:
        use_fast_dropout(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seconds, examples, width = _timed_steps(model, optimizer, batches, warmup)
    return {"samples_per_second": examples / seconds, "seconds": seconds, "steps": len(batches) - warmup,
            "warmup": warmup, "batch_size": batch_size, "batching": batching, "mean_input_width": width,
            "micro_batches": micro_batches if batching == "micro" else 1,
            "epoch_mean_input_width": float(epoch_widths.mean()), "examples_per_epoch": len(train),
            "threads": torch.get_num_threads()}


def train_case(payload: dict) -> dict:
    """One variant (run in its own process by the suite, with the variant's allocator setting)."""
    settings, variant = payload["settings"], payload["variant"]
    batching, fast_dropout, _ = TRAIN_VARIANTS[variant]
    dataset, sids = load_inputs(settings)
    steps = settings["plain_train_steps"] if batching == "padded" else settings["train_steps"]
    result = training_throughput(dataset, sids, RecommenderConfig(**settings["model_config"]), batching=batching,
                                 fast_dropout=fast_dropout, batch_size=settings["batch_size"], steps=steps,
                                 warmup=settings["warmup_steps"], seed=settings["seed"])
    return {"variant": variant, **result}
