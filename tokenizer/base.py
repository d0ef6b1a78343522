"""One faiss-like interface for every item tokenizer (the registry that builds them by name is
tokenizer.registry):

    tok = build_tokenizer("r3vae", {"num_levels": 3, "codebook_size": 256})
    history = tok.fit(embeddings)          # float32 [n, d]; returns the training curves
    codes = tok.encode(embeddings)         # int64 [n, L]
    approx = tok.decode(codes)             # float32 [n, d], back in the input embedding space
    tok.save(folder); tok = load_tokenizer(folder)

``save`` writes ``config.json`` (method, num_levels, codebook_sizes, embedding_dim, method_config)
and ``model.safetensors``; tokenizer.artifact adds the Semantic IDs and metrics beside them.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_bytes, atomic_write_json

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


@dataclass
class TokenizerConfig:
    """The fields every method's config has; each method's dataclass adds its own (all defaulted)."""

    # 3 x 256 (the papers' shape) kept on validation: bench/results/tokenizer-shape-beauty/ (4 x 64 behind)
    num_levels: int = 3  # L, the SID length before the collision suffix
    codebook_size: int = 256  # M, codewords per level
    seed: int = 0

    def validate(self) -> None:
        """Raise GenrecError on a bad value; methods extend it with their own checks."""
        if self.num_levels < 1:
            raise GenrecError(f"num_levels must be >= 1, got {self.num_levels}")
        if self.codebook_size < 2:
            raise GenrecError(f"codebook_size must be >= 2, got {self.codebook_size}")
        if getattr(self, "kmeans_iters", 1) < 1:  # the methods that fit codebooks with K-Means have it
            raise GenrecError(f"kmeans_iters must be >= 1, got {self.kmeans_iters}")


@dataclass
class TrainingHistory:
    """Per-epoch training curves (paper Figure 4): loss and codebook usage per level."""

    epoch: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    usage: list[list[float]] = field(default_factory=list)  # [epochs][levels]: fraction of codewords used
    parts: list[dict[str, float]] = field(default_factory=list)  # loss components per epoch
    seconds: float = 0.0

    def record(self, epoch: int, loss: float, usage: list[float], parts: dict[str, float] | None = None) -> None:
        self.epoch.append(int(epoch))
        self.loss.append(float(loss))
        self.usage.append([float(u) for u in usage])
        self.parts.append({k: float(v) for k, v in (parts or {}).items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_embeddings(embeddings: Any, expected_dim: int | None = None, name: str = "embeddings") -> np.ndarray:
    """Validate and convert to a C-contiguous float32 [n, d] array; every problem is a GenrecError."""
    array = np.asarray(embeddings)
    if array.ndim != 2:
        raise GenrecError(f"{name}: expected a 2-D array [items, dim], got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise GenrecError(f"{name}: empty array of shape {array.shape}")
    if not np.issubdtype(array.dtype, np.number):
        raise GenrecError(f"{name}: expected numbers, got dtype {array.dtype}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if not all(np.isfinite(array[i:i + 65536]).all() for i in range(0, len(array), 65536)):  # chunked: bounded memory
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise GenrecError(f"{name}: {bad} row(s) contain NaN or infinite values; recompute them (`genrec embed`)")
    if expected_dim is not None and array.shape[1] != expected_dim:
        raise GenrecError(f"{name}: dimension {array.shape[1]} does not match the tokenizer's {expected_dim} "
                          "(embeddings from another encoder?)")
    return array


def check_codes(codes: Any, codebook_sizes: tuple[int, ...]) -> np.ndarray:
    array = np.asarray(codes)
    if array.ndim != 2 or array.shape[1] != len(codebook_sizes):
        raise GenrecError(f"codes: expected shape [n, {len(codebook_sizes)}], got {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        raise GenrecError(f"codes: expected integers, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if (array < 0).any() or (array >= np.asarray(codebook_sizes)).any():
        raise GenrecError(f"codes: values outside the codebook sizes {list(codebook_sizes)}")
    return array


class Tokenizer(ABC):
    """Maps item embeddings to L discrete codes and back. Subclasses set ``method`` and ``config_class``.

    Every config is a TokenizerConfig (``num_levels``, ``codebook_size``, ``seed``); ``fit`` seeds torch from
    ``config.seed`` (and restores the global RNG afterwards), so the same seed gives the same codes.
    """

    method: ClassVar[str]
    config_class: ClassVar[type[TokenizerConfig]]

    def __init__(self, config: TokenizerConfig) -> None:
        self.config = config
        self.embedding_dim: int | None = None
        self.history = TrainingHistory()

    # -- hooks for subclasses -----------------------------------------------------------------
    @abstractmethod
    def _fit(self, x: torch.Tensor, progress: bool) -> None: ...

    @abstractmethod
    def _encode(self, x: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _decode(self, codes: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]: ...

    @abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None: ...

    @abstractmethod
    def codebooks(self) -> list[torch.Tensor]:
        """Each level's codeword vectors [M_l, d_l], in the space that level quantizes (for PD, eq 10)."""

    # -- the interface --------------------------------------------------------------------------
    @property
    def codebook_sizes(self) -> tuple[int, ...]:
        return (int(self.config.codebook_size),) * int(self.config.num_levels)

    @property
    def num_levels(self) -> int:
        return len(self.codebook_sizes)

    def fit(self, embeddings: Any, progress: bool = True) -> TrainingHistory:
        x = check_embeddings(embeddings)
        if x.shape[0] < max(self.codebook_sizes):
            raise GenrecError(f"{x.shape[0]} items are fewer than the codebook size {max(self.codebook_sizes)}; "
                              "use a smaller --codebook-size")
        self.embedding_dim = int(x.shape[1])
        self.history = TrainingHistory()
        state = torch.random.get_rng_state()
        torch.manual_seed(self.config.seed)
        try:
            self._fit(torch.from_numpy(x), progress)
        finally:
            torch.random.set_rng_state(state)
        return self.history

    def encode(self, embeddings: Any, batch_size: int = 8192) -> np.ndarray:
        """int64 [n, L] codes (no collision suffix; see tokenizer.semantic_ids). Batched: bounded memory."""
        self._check_fitted()
        x = check_embeddings(embeddings, self.embedding_dim)
        with torch.no_grad():
            parts = [self._encode(torch.from_numpy(x[i:i + batch_size])) for i in range(0, len(x), batch_size)]
        return torch.cat(parts).to(torch.int64).numpy()

    def decode(self, codes: Any, batch_size: int = 8192) -> np.ndarray:
        """float32 [n, d]: the embeddings approximated from their codes alone."""
        self._check_fitted()
        array = check_codes(codes, self.codebook_sizes)
        with torch.no_grad():
            parts = [self._decode(torch.from_numpy(array[i:i + batch_size])) for i in range(0, len(array), batch_size)]
        return torch.cat(parts).float().numpy()

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "num_levels": self.num_levels, "codebook_sizes": list(self.codebook_sizes),
                "embedding_dim": self.embedding_dim, "method_config": dataclasses.asdict(self.config)}

    def save(self, folder: str | Path, extra_config: dict[str, Any] | None = None) -> None:
        """Write model.safetensors and config.json (``extra_config`` keys are added to config.json)."""
        from safetensors.torch import save

        self._check_fitted()
        folder = Path(folder)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        atomic_write_bytes(folder / WEIGHTS_FILE, save(state))
        atomic_write_json(folder / CONFIG_FILE, {**self.describe(), **(extra_config or {})})

    def _check_fitted(self) -> None:
        if self.embedding_dim is None:
            raise GenrecError(f"{self.method} tokenizer is not trained yet: call fit() or load_tokenizer() first")
