"""Tokenizer fit + SID assignment time and memory: on a dataset's item embeddings (target: <= 2
minutes on 12k items), or on synthetic catalogues of any size (memory bounded by the batch size)."""

from __future__ import annotations

import time

import numpy as np

from bench.common import rss_mb

TOKENIZER_METHODS = ("r3vae", "rkmeans")


def synthetic_embeddings(n: int, d: int, seed: int = 0, clusters: int = 2000, chunk: int = 100_000) -> np.ndarray:
    """Unit-norm mixture of Gaussians around random centres (like sentence embeddings), made in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = centres[rng.integers(0, clusters, stop - start)] + 0.6 * rng.normal(size=(stop - start, d))
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def synthetic_options(method: str, codebook_size: int, batch: int, steps: int) -> dict:
    """Options for the scale case: mini-batch K-Means initialization and mini-batch training."""
    seeding = "kmeans++" if codebook_size <= 1024 else "random"  # k-means++ makes M sequential passes
    if method == "rkmeans":
        return {"codebook_size": codebook_size, "kmeans_batch_size": batch, "kmeans_iters": 1, "init": seeding}
    return {"codebook_size": codebook_size, "kmeans_batch_size": batch, "kmeans_iters": 1, "batch_size": batch,
            "epochs": 1, "max_steps": steps, "kmeans_seeding": seeding}


def tokenizer_case(payload: dict) -> dict:
    """Fit + encode one method on the dataset's embeddings, or on ``items`` synthetic ones."""
    from genrec.tokenizer.registry import build_tokenizer

    settings, method = payload["settings"], payload["method"]
    items, size = payload.get("items"), payload.get("codebook_size", 256)
    if items:
        x = synthetic_embeddings(items, 384, seed=settings["seed"])
        options = synthetic_options(method, size, settings["synthetic_batch_size"], settings["synthetic_steps"])
        source = "synthetic"
    else:
        from genrec.data_prep.embeddings import load_or_compute_item_embeddings

        x = load_or_compute_item_embeddings(settings["dataset"], show_progress=False).vectors
        options, source = {"seed": settings["seed"]}, "dataset"
    rss_data = rss_mb()
    tokenizer = build_tokenizer(method, options)
    started = time.perf_counter()
    tokenizer.fit(x, progress=False)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    codes = tokenizer.encode(x)
    encode_seconds = time.perf_counter() - started
    usage = [float(len(np.unique(codes[:, level])) / size) for level in range(codes.shape[1])]
    return {"method": method, "source": source, "items": int(x.shape[0]), "dim": int(x.shape[1]), "codebook_size": size,
            "fit_seconds": fit_seconds, "encode_seconds": encode_seconds, "usage": usage,
            "data_mb": round(x.nbytes / 2**20, 1), "rss_after_data_mb": round(rss_data, 1), "options": options}
