"""The one training loop for gradient-trained tokenizers (R3-VAE, RQ-VAE, VQ-VAE).

A module implements ``training_loss(batch) -> (loss, parts, codes)``; this loop runs AdamW over
shuffled mini-batches, and logs per epoch the mean loss, its parts and the codebook usage per level
(fraction of codewords chosen by at least one item during the epoch), with a live progress bar.
"""

from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from genrec.tokenizer.base import TrainingHistory


def train_module(module: torch.nn.Module, x: torch.Tensor, *, epochs: int, batch_size: int, lr: float,
                 weight_decay: float, seed: int, codebook_sizes: tuple[int, ...], history: TrainingHistory,
                 progress: bool = True, desc: str = "train", max_steps: int | None = None) -> None:
    optimizer = torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    steps = 0
    bar = tqdm(range(1, epochs + 1), desc=desc, disable=not progress, dynamic_ncols=True, unit="epoch")
    module.train()
    for epoch in bar:
        counts = [torch.zeros(size, dtype=torch.long) for size in codebook_sizes]
        total, parts_total, batches = 0.0, {}, 0
        for index in torch.randperm(x.shape[0], generator=generator).split(batch_size):
            loss, parts, codes = module.training_loss(x[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
            for key, value in parts.items():
                parts_total[key] = parts_total.get(key, 0.0) + float(value)
            for level, count in enumerate(counts):
                count += torch.bincount(codes[:, level], minlength=count.numel())
            batches += 1
            steps += 1
            if max_steps is not None and steps >= max_steps:
                break
        usage = [float((count > 0).float().mean()) for count in counts]
        history.record(epoch, total / batches, usage, {k: v / batches for k, v in parts_total.items()})
        bar.set_postfix(loss=f"{total / batches:.4f}", usage="/".join(f"{u:.2f}" for u in usage))
        if max_steps is not None and steps >= max_steps:
            break
    module.eval()
    history.seconds = time.perf_counter() - started
