"""The one training loop for gradient-trained tokenizers (R3-VAE, RQ-VAE, VQ-VAE), and their base class.

A module implements ``training_loss(batch) -> (loss, parts, codes)``; this loop runs AdamW over
shuffled mini-batches, and logs per epoch the mean loss, its parts and the codebook usage per level
(fraction of codewords chosen by at least one item during the epoch), with a live progress bar.
``ModuleTokenizer`` is a Tokenizer whose whole state is one such torch module, configured by a
``GradientConfig``.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from genrec.core.errors import GenrecError
from genrec.tokenizer.base import Tokenizer, TokenizerConfig, TrainingHistory


@dataclass
class GradientConfig(TokenizerConfig):
    """The fields ``train_module`` reads (AdamW over shuffled mini-batches); methods set their defaults."""

    lr: float = 1e-3
    weight_decay: float = 1e-5
    epochs: int = 60
    batch_size: int = 1024
    max_steps: int | None = None  # stop after this many optimizer steps

    def validate(self) -> None:
        super().validate()
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise GenrecError(f"{name} must be >= 1, got {getattr(self, name)}")


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


class ModuleTokenizer(Tokenizer):
    """A tokenizer whose state is ``self.model``: a torch module with ``initialize(x)`` (codebook init),
    ``training_loss``, ``encode(x)``, ``decode(codes)`` and a ``codebooks`` parameter [books, M, d].

    Its config is a GradientConfig. Subclasses only say how to build the module.
    """

    @abstractmethod
    def _build_model(self, dim: int) -> torch.nn.Module: ...

    def _fit(self, x: torch.Tensor, progress: bool) -> None:
        cfg = self.config
        self.model = self._build_model(x.shape[1])
        self.model.initialize(x)
        train_module(self.model, x, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                     weight_decay=cfg.weight_decay, seed=cfg.seed, codebook_sizes=self.codebook_sizes,
                     history=self.history, progress=progress, desc=f"train {self.method}", max_steps=cfg.max_steps)

    def _encode(self, x):
        return self.model.encode(x)

    def _decode(self, codes):
        return self.model.decode(codes)

    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, state):
        self.model = self._build_model(self.embedding_dim)
        self.model.load_state_dict(state)
        self.model.eval()

    def codebooks(self):
        return [book.detach() for book in self.model.codebooks]
