"""OPQ: optimized product quantization (Ge et al. 2013, non-parametric variant) with K-Means codebooks.

x is rotated by an orthogonal R (d x d), the rotated vector is split into L contiguous sub-vectors
(the SID levels), and each sub-vector is quantized by its own K-Means codebook of M codewords.
Training alternates (``opq_iters`` times): (1) K-Means on each sub-space of xR (warm-started from
the previous codebooks), (2) R = U V^T from the SVD of x^T y_hat (orthogonal Procrustes: the rotation
that best maps x onto its current reconstruction y_hat). Implemented in torch; faiss would add a
dependency for a few lines of linear algebra at our scale.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from genrec.core.errors import GenrecError
from genrec.tokenizer.base import Tokenizer, TokenizerConfig
from genrec.tokenizer.kmeans import kmeans, nearest


@dataclass
class OPQConfig(TokenizerConfig):  # num_levels = number of sub-spaces
    opq_iters: int = 8
    kmeans_iters: int = 10  # Lloyd iterations per OPQ iteration
    kmeans_batch_size: int | None = None


class OPQTokenizer(Tokenizer):
    method = "opq"
    config_class = OPQConfig

    def _split(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.tensor_split(y, self.config.num_levels, dim=1)

    def _fit(self, x: torch.Tensor, progress: bool) -> None:
        cfg = self.config
        started = time.perf_counter()
        self.rotation = torch.eye(x.shape[1])
        if x.shape[1] < cfg.num_levels:
            raise GenrecError(f"opq needs embedding dim >= num_levels ({cfg.num_levels}), got {x.shape[1]}")
        books: list = [None] * cfg.num_levels
        for step in range(cfg.opq_iters):
            y = x @ self.rotation
            parts, codes = [], []
            for level, sub in enumerate(self._split(y)):
                init = books[level] if books[level] is not None else "kmeans++"
                result = kmeans(sub, cfg.codebook_size, iters=cfg.kmeans_iters, init=init,
                                seed=cfg.seed + level, batch_size=cfg.kmeans_batch_size)
                books[level] = result.centroids
                parts.append(result.centroids[result.labels])
                codes.append(result.labels)
            y_hat = torch.cat(parts, 1)
            u, _, vh = torch.linalg.svd(x.T.double() @ y_hat.double())
            self.rotation = (u @ vh).float()
            error = float(((x @ self.rotation - y_hat) ** 2).sum(1).mean())
            usage = [float(torch.bincount(c, minlength=cfg.codebook_size).gt(0).float().mean()) for c in codes]
            self.history.record(step + 1, error, usage, {"rec": error})
        # Final codebooks for the final rotation.
        y = x @ self.rotation
        self._books = [kmeans(sub, cfg.codebook_size, iters=cfg.kmeans_iters, init=books[level],
                              seed=cfg.seed + level, batch_size=cfg.kmeans_batch_size).centroids
                       for level, sub in enumerate(self._split(y))]
        self.history.seconds = time.perf_counter() - started

    def _encode(self, x):
        return torch.stack([nearest(sub, book)[0] for sub, book in zip(self._split(x @ self.rotation), self._books)], 1)

    def _decode(self, codes):
        y_hat = torch.cat([book[codes[:, level]] for level, book in enumerate(self._books)], 1)
        return y_hat @ self.rotation.T

    def state_dict(self):
        state = {"rotation": self.rotation}
        state.update({f"codebook_{level}": book for level, book in enumerate(self._books)})
        return state

    def load_state_dict(self, state):
        self.rotation = state["rotation"].float()
        self._books = [state[f"codebook_{level}"].float() for level in range(self.config.num_levels)]

    def codebooks(self):
        return list(self._books)
