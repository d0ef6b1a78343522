"""Train a tokenizer on item embeddings and derive everything the artifact holds (one code path for
the CLI, benchmarks and tests)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from genrec.eval.sid_metrics import compute_sid_metrics
from genrec.tokenizer.base import Tokenizer
from genrec.tokenizer.registry import build_tokenizer
from genrec.tokenizer.semantic_ids import add_collision_suffix


@dataclass
class TrainedTokenizer:
    tokenizer: Tokenizer
    sids: np.ndarray  # int64 [n, L + 1]
    metrics: dict[str, Any]


def sid_metrics_for(tokenizer: Tokenizer, embeddings: np.ndarray, codes: np.ndarray) -> dict[str, Any]:
    return compute_sid_metrics(codes, embeddings, tokenizer.codebooks(), tokenizer.codebook_sizes,
                               reconstruction=tokenizer.decode(codes))


def train_tokenizer(embeddings: np.ndarray, method: str, config: dict[str, Any] | None = None,
                    progress: bool = True) -> TrainedTokenizer:
    tokenizer = build_tokenizer(method, config)
    started = time.perf_counter()
    tokenizer.fit(embeddings, progress=progress)
    fit_seconds = time.perf_counter() - started
    codes = tokenizer.encode(embeddings)
    sids = add_collision_suffix(codes)
    metrics = sid_metrics_for(tokenizer, embeddings, codes)
    metrics["training_seconds"] = fit_seconds
    metrics["method"] = method
    return TrainedTokenizer(tokenizer, sids, metrics)
