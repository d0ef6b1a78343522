"""``train_tokenizer``: item embeddings (optionally with collaborative vectors) -> Semantic IDs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from genrec.core.errors import GenrecError
from genrec.core.layout import TOKENIZER_DIR, portable_path, resolve_dataset_dir
from genrec.pipeline.common import as_path, as_str
from genrec.pipeline.data import EmbedConfig, embed

if TYPE_CHECKING:  # torch-free at import
    import numpy as np

    from genrec.tokenizer.base import Tokenizer, TokenizerConfig


@dataclass
class TokenizerTrainingConfig:
    dataset: str | Path | None = None
    # R3-VAE, the paper this project is built on. In the pipeline users run (T5 + SASRec + prior) it is
    # level with OPQ on Beauty validation (fused NDCG@10 0.0871 vs 0.0874, 3 seeds each:
    # bench/results/hour-beauty-r3vae/amazon-beauty-r3vae-cpu-60min-seeds.md, amazon-beauty-cpu-60min-seeds.md; validation
    # split), so the tie goes to the method the project is; OPQ, ahead with the T5 alone, is --method opq.
    method: str = "r3vae"
    # The method's config (its dataclass, e.g. tokenizer.rkmeans.RKMeansConfig, or
    # tokenizer.registry.method_config(method, {...})); None: the method's defaults.
    options: TokenizerConfig | None = None
    out: str | Path | None = None  # default DATASET/tokenizer
    encoder: str | None = None
    progress: bool = True
    # > 0: the tokenizer reads [text, W * collaborative vectors] (data_prep.collaborative: PPMI-SVD of
    # the training sequences' co-occurrence, collaborative_dim wide); 0 = text embeddings only. That
    # the input helps was chosen on validation (bench/results/compare-beauty-steps); W = 1 on validation
    # too (bench/results/collaborative-weight-beauty: W = 2 level with it over 3 seeds); 64 dimensions
    # and a window of 3 steps on validation (bench/results/tokenizer-shape-beauty: 128 / 5 not ahead).
    collaborative_weight: float = 1.0
    collaborative_dim: int = 64
    collaborative_window: int = 3  # items within this many steps of each other co-occur


# what the tokenizer reads, not how it fits
TOKENIZER_INPUT_FIELDS = ("collaborative_weight", "collaborative_dim", "collaborative_window")


def tokenizer_config_from(section: dict[str, Any], **fields) -> TokenizerTrainingConfig:
    """A config file's "tokenizer" section as a TokenizerTrainingConfig: "method", the input fields
    (TOKENIZER_INPUT_FIELDS), everything else the method's config fields."""
    from genrec.tokenizer.registry import method_config

    options = dict(section)
    method = options.pop("method", TokenizerTrainingConfig.method)
    inputs = {name: options.pop(name) for name in TOKENIZER_INPUT_FIELDS if name in options}
    return TokenizerTrainingConfig(method=method, options=method_config(method, options), **{**inputs, **fields})


@dataclass
class FittedTokenizer:
    tokenizer: Tokenizer
    sids: np.ndarray  # int64 [items, L + 1]: codes plus the collision suffix
    metrics: dict


def sid_metrics_for(tokenizer, embeddings, codes) -> dict:
    """SID quality (eval.sid_metrics) of ``codes`` [items, L] made by ``tokenizer`` from ``embeddings``."""
    from genrec.eval.sid_metrics import compute_sid_metrics

    return compute_sid_metrics(codes, embeddings, tokenizer.codebooks(), tokenizer.codebook_sizes,
                               reconstruction=tokenizer.decode(codes))


def fit_tokenizer(embeddings, method: str, options: TokenizerConfig | dict[str, Any] | None = None,
                  progress: bool = True) -> FittedTokenizer:
    """Fit on ``embeddings`` [items, d], encode every item, add collision suffixes, measure SIDs."""
    from genrec.tokenizer.registry import build_tokenizer
    from genrec.tokenizer.semantic_ids import add_collision_suffix

    tokenizer = build_tokenizer(method, options)
    started = time.perf_counter()
    tokenizer.fit(embeddings, progress=progress)
    fit_seconds = time.perf_counter() - started
    codes = tokenizer.encode(embeddings)
    metrics = sid_metrics_for(tokenizer, embeddings, codes)
    metrics["training_seconds"] = fit_seconds
    metrics["method"] = method
    return FittedTokenizer(tokenizer, add_collision_suffix(codes), metrics)


@dataclass
class TrainedTokenizerArtifact:
    path: Path
    metrics: dict
    encoder: str


def train_tokenizer(config: TokenizerTrainingConfig) -> TrainedTokenizerArtifact:
    from genrec.tokenizer.artifact import write_artifact
    from genrec.tokenizer.registry import build_tokenizer

    dataset = resolve_dataset_dir(as_str(config.dataset))
    out = as_path(config.out) or dataset / TOKENIZER_DIR
    build_tokenizer(config.method, config.options)  # reject bad options before the (slow) embedding step
    if config.collaborative_weight < 0 or config.collaborative_dim < 1 or config.collaborative_window < 1:
        raise GenrecError("collaborative_weight must be >= 0, collaborative_dim >= 1 and collaborative_window >= 1")
    embeddings = embed(EmbedConfig(dataset, encoder=config.encoder, progress=config.progress))
    started = time.perf_counter()
    vectors, extra, arrays = embeddings.vectors, {"dataset": portable_path(dataset, out)}, {}
    if config.collaborative_weight > 0:
        from genrec.data_prep.collaborative import COLLABORATIVE_FILE, collaborative_vectors, tokenizer_vectors
        from genrec.data_prep.dataset import load_processed_dataset

        data = load_processed_dataset(dataset)
        if data.num_items != len(vectors):
            raise GenrecError(f"{dataset}: {data.num_items} items but {len(vectors)} embeddings; rerun `genrec embed`")
        collaborative = collaborative_vectors(data.train_sequences(), data.num_items, dim=config.collaborative_dim,
                                              window=config.collaborative_window)
        vectors = tokenizer_vectors(vectors, collaborative, config.collaborative_weight)
        extra["collaborative"] = {"weight": config.collaborative_weight, "dim": config.collaborative_dim,
                                  "window": config.collaborative_window}
        arrays[COLLABORATIVE_FILE] = collaborative
    result = fit_tokenizer(vectors, config.method, config.options, progress=config.progress)
    result.metrics["total_seconds"] = time.perf_counter() - started
    result.metrics["encoder"] = embeddings.encoder
    write_artifact(out, result.tokenizer, result.sids, result.metrics, embeddings.encoder, extra=extra, arrays=arrays)
    return TrainedTokenizerArtifact(out, result.metrics, embeddings.encoder)
