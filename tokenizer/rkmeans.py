"""Residual K-Means (RQ-KMeans): codebook l = K-Means centroids of what levels 1..l-1 left over.

No training beyond clustering. ``balanced=True`` fits each level with capacity-constrained K-Means
(every codeword holds at most ceil(n / M) training items), which spreads items over codewords;
``encode`` always assigns the nearest codeword (a faiss-like encoder cannot see the other items),
so the SIDs of the training items follow the balanced centroids but not the exact capacities.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from genrec.tokenizer.base import Tokenizer, TokenizerConfig
from genrec.tokenizer.residual import codeword_sum, kmeans_fit, nearest_codeword, residual_fit, residual_quantize


@dataclass
class RKMeansConfig(TokenizerConfig):
    kmeans_iters: int = 25
    init: str = "kmeans++"  # kmeans++ | random
    balanced: bool = False
    kmeans_batch_size: int | None = None  # mini-batch K-Means (bounded memory) when set


class RKMeansTokenizer(Tokenizer):
    method = "rkmeans"
    config_class = RKMeansConfig

    def _fit(self, x: torch.Tensor, progress: bool) -> None:
        cfg = self.config
        started = time.perf_counter()
        fit = kmeans_fit(cfg.codebook_size, seed=cfg.seed, iters=cfg.kmeans_iters, init=cfg.init,
                         balanced=cfg.balanced, batch_size=cfg.kmeans_batch_size)
        books, labels = residual_fit(x, cfg.num_levels, fit)
        self._books = books
        codes = torch.stack(labels, 1)
        error = sum(float(((x[i:i + 65536] - codeword_sum(codes[i:i + 65536], books)) ** 2).sum())
                    for i in range(0, x.shape[0], 65536)) / x.shape[0]
        usage = [float(torch.bincount(l, minlength=cfg.codebook_size).gt(0).float().mean()) for l in labels]
        self.history.record(1, error, usage, {"rec": error})
        self.history.seconds = time.perf_counter() - started

    def _encode(self, x):
        return residual_quantize(x, self.num_levels, nearest_codeword(self._books)).codes

    def _decode(self, codes):
        return codeword_sum(codes, self._books)

    def state_dict(self):
        return {"codebooks": torch.stack(self._books)}

    def load_state_dict(self, state):
        self._books = list(state["codebooks"].float())

    def codebooks(self):
        return list(self._books)
