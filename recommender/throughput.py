"""Training throughput: genrec's batching against a plain HF training loop on the same model and data.

Both run the same step (``model(**batch).loss``, backward, AdamW) on the same model size, from the
same initial weights. They differ only in what the step is fed:

* plain: a ``torch.utils.data.DataLoader`` over the examples padded to the longest input
  (max_history * (L + 1) + 1 tokens), shuffled, collated per batch on the hot path;
* genrec: the precomputed token arrays, length-bucketed batches (recommender.data.epoch_batches)
  cut to their own longest input (dynamic padding).

Bench code calls :func:`training_throughput`; samples/s is examples per second of wall time over
``steps`` timed steps after ``warmup`` untimed ones. Step time grows about linearly with the input
width, so compare ``genrec.mean_input_width`` with ``epoch_mean_input_width`` before extrapolating
the speedup of a short run to a whole epoch.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from data_prep.dataset import ProcessedDataset
from recommender.data import ExampleBuilder, TokenizedExamples, epoch_batches, training_examples
from recommender.model import RecommenderConfig, build_model
from recommender.vocab import PAD_TOKEN, SidVocab
from tokenizer.artifact import SemanticIds


def _timed_steps(model, optimizer, batches, warmup: int) -> tuple[float, int, float]:
    """Run every batch; return (seconds, examples, mean input width) over the batches after ``warmup``."""
    seconds, examples, widths = 0.0, 0, []
    for i, batch in enumerate(batches):
        started = time.perf_counter()
        batch = batch()  # building the batch counts as part of the step
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
        if i >= warmup:
            seconds += time.perf_counter() - started
            examples += batch["input_ids"].shape[0]
            widths.append(batch["input_ids"].shape[1])
    return seconds, examples, float(np.mean(widths))


def _plain_batches(train: TokenizedExamples, batch_size: int, count: int, seed: int):
    """A DataLoader over padded-to-max tensors, as a plain HF training script would build it."""
    inputs = torch.from_numpy(train.inputs)
    targets = torch.from_numpy(train.targets)
    dataset = torch.utils.data.TensorDataset(inputs, targets)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    iterator = iter(loader)

    def collate():
        input_ids, labels = next(iterator)
        return {"input_ids": input_ids, "attention_mask": (input_ids != PAD_TOKEN).long(), "labels": labels}

    return [collate] * count


def training_throughput(dataset: ProcessedDataset, sids: SemanticIds, model_config: RecommenderConfig,
                        batch_size: int = 256, steps: int = 20, warmup: int = 3, seed: int = 0,
                        threads: int | None = None) -> dict:
    """Samples/s of the plain loop and of genrec's batching (same model, data, optimizer, step count)."""
    if threads:
        torch.set_num_threads(threads)
    vocab = SidVocab.for_semantic_ids(sids, model_config.num_user_buckets)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, model_config.max_history)
    train = builder.build(training_examples(dataset))
    results = {"examples": len(train), "batch_size": batch_size, "steps": steps, "warmup": warmup,
               "threads": torch.get_num_threads(), "device": "cpu"}
    epoch = epoch_batches(train.lengths, batch_size, seed, 0)
    ours = epoch[: steps + warmup]  # the batch order is random, so these are a sample of the epoch
    # A short run's sample of batch widths can be off; this says how the timed batches compare.
    results["epoch_mean_input_width"] = float(np.mean([train.lengths[index].max() for index in epoch]))
    variants = {
        "plain": _plain_batches(train, batch_size, steps + warmup, seed),
        "genrec": [lambda index=index: train.batch(index) for index in ours],
    }
    for name, batches in variants.items():
        torch.manual_seed(seed)
        model = build_model(model_config, vocab).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        seconds, examples, width = _timed_steps(model, optimizer, batches, warmup)
        results[name] = {"samples_per_second": examples / seconds, "mean_input_width": width, "seconds": seconds}
    results["speedup"] = results["genrec"]["samples_per_second"] / results["plain"]["samples_per_second"]
    return results
