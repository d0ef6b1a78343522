"""Semantic ID quality metrics (R3-VAE paper §3.4, Table 6) for the reported ``metrics.json``. SC and
PD are the differentiable functions R3-VAE trains with (genrec.tokenizer.regularizers), so the
reported numbers and the training losses are one implementation.

Exactly what each reported metric uses (the paper is loose here; these are our definitions):

* ``semantic_cohesion`` (SC, eqs 8-9, higher = better): vectors = the items' *input* embeddings x
  (method-agnostic: every method is judged in the same space); clusters = items sharing the SID
  prefix of length l; SC_l = mean over clusters with |G| >= 2 of the mean pairwise cosine; the
  reported value is the mean of SC_1..SC_L (``semantic_cohesion_per_level`` has each). Singletons
  are skipped: eq 8 divides by |G|^2 - |G| = 0 for them. A level where every item has a prefix of its
  own (typically the last one: no collisions) has no pair to compare: its SC is None (printed n/a)
  and left out of the mean; likewise PD of a level with fewer than two used codewords. We read eq 8's 2/(|G|^2-|G|) as the mean
  over unordered pairs (the sum over ordered pairs i != j divided by |G|^2 - |G|), so SC is in [-1, 1].
  Computed per cluster as (||sum of unit vectors||^2 - |G|) / (|G|^2 - |G|): O(n d), no pair loop.
* ``preference_discrimination`` (PD, eq 10, t = 2, lower = more distinct): per level, eq 10 over
  the codewords that at least one item uses (the cluster centres p_G of that level, in the space the
  method quantizes: R3-VAE residual space, RQ-VAE latent space, OPQ sub-space, ...); reported value
  = mean over levels. ``preference_discrimination_input`` is the method-agnostic variant: eq 10 over
  the centroids of the input embeddings of the first-level clusters.
* ``collision_rate``: items / distinct L-code SIDs (Table 6; 1.0 = no collisions).
  ``largest_bucket``: most items sharing one L-code SID (= the suffix vocabulary needed).
* ``gini``: Gini coefficient of the number of items per occupied L-code SID (0 = all equal);
  ``gini_per_level``: Gini of items over all M codewords of each level (unused ones count as 0).
* ``codebook_usage``: per level, fraction of codewords used by >= 1 item; ``perplexity``: per level,
  exp(entropy of the code distribution) (M = perfectly uniform use).
* ``reconstruction_mse``: mean over items of ||x - decode(codes)||^2 (eq 11's squared error, from
  the codes alone, in the input space).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from genrec.tokenizer.regularizers import preference_discrimination, semantic_cohesion


def cluster_centroids(vectors: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean vector of each non-empty cluster."""
    _, inverse = torch.unique(labels, return_inverse=True)
    count = int(inverse.max()) + 1
    sums = torch.zeros(count, vectors.shape[1], dtype=torch.float32).index_add(0, inverse, vectors.float())
    return sums / torch.bincount(inverse, minlength=count).float()[:, None]


def gini(counts: Any) -> float:
    """Gini coefficient of non-negative counts: 0 = all equal, -> 1 = all mass on one entry."""
    x = np.sort(np.asarray(counts, dtype=np.float64))
    n = len(x)
    if n == 0 or x.sum() == 0:
        return 0.0
    return float(((2 * np.arange(1, n + 1) - n - 1) * x).sum() / (n * x.sum()))


def bucket_sizes(codes: np.ndarray) -> np.ndarray:
    """Number of items per distinct L-code SID."""
    return np.unique(np.asarray(codes), axis=0, return_counts=True)[1]


def level_usage(codes: np.ndarray, codebook_sizes: tuple[int, ...]) -> tuple[list[float], list[float], list[float]]:
    """Per level: fraction of codewords used, perplexity exp(H(code)), Gini over all codewords."""
    usage, perplexity, ginis = [], [], []
    for level, size in enumerate(codebook_sizes):
        counts = np.bincount(codes[:, level], minlength=size)
        p = counts[counts > 0] / counts.sum()
        usage.append(float((counts > 0).mean()))
        perplexity.append(float(np.exp(-(p * np.log(p)).sum())))
        ginis.append(gini(counts))
    return usage, perplexity, ginis


def compute_sid_metrics(codes: np.ndarray, embeddings: np.ndarray, codebooks: list[torch.Tensor],
                        codebook_sizes: tuple[int, ...], reconstruction: np.ndarray | None = None,
                        t: float = 2.0) -> dict[str, Any]:
    """All reported metrics for L-code ``codes`` [n, L] of items with input ``embeddings`` [n, d]."""
    codes = np.asarray(codes, dtype=np.int64)
    n, levels = codes.shape
    x = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    sizes = bucket_sizes(codes)
    sc_levels, pd_levels = [], []
    with torch.no_grad():
        for level in range(levels):
            _, prefix = np.unique(codes[:, :level + 1], axis=0, return_inverse=True)
            sc_levels.append(float(semantic_cohesion(x, torch.from_numpy(prefix.reshape(-1)))))
            used = torch.from_numpy(np.unique(codes[:, level]))
            pd_levels.append(float(preference_discrimination(codebooks[level].detach().float()[used], t)))
        pd_input = float(preference_discrimination(cluster_centroids(x, torch.from_numpy(codes[:, 0])), t))
    usage, perplexity, ginis = level_usage(codes, codebook_sizes)
    sc_levels, pd_levels = _undefined_as_none(sc_levels), _undefined_as_none(pd_levels)
    finite_sc = [v for v in sc_levels if v is not None]
    finite_pd = [v for v in pd_levels if v is not None]
    metrics: dict[str, Any] = {
        "num_items": int(n),
        "semantic_cohesion": float(np.mean(finite_sc)) if finite_sc else float("nan"),
        "semantic_cohesion_per_level": sc_levels,
        "preference_discrimination": float(np.mean(finite_pd)) if finite_pd else float("nan"),
        "preference_discrimination_per_level": pd_levels,
        "preference_discrimination_input": pd_input,
        "collision_rate": float(n / len(sizes)),
        "distinct_sids": int(len(sizes)),
        "largest_bucket": int(sizes.max()),
        "gini": gini(sizes),
        "gini_per_level": ginis,
        "codebook_usage": usage,
        "perplexity": perplexity,
    }
    if reconstruction is not None:
        diff = np.asarray(reconstruction, dtype=np.float64) - np.asarray(embeddings, dtype=np.float64)
        metrics["reconstruction_mse"] = float((diff ** 2).sum(1).mean())
    return metrics


_NA_NOTE = " (n/a: every item has its own prefix there, no pair to compare)"


def _undefined_as_none(values: list[float]) -> list[float | None]:
    """NaN (no pair to compare at that level) as None: valid JSON, and plainly "not defined"."""
    return [None if math.isnan(v) else v for v in values]


def format_metrics_table(metrics: dict[str, Any]) -> str:
    def joined(values, fmt):
        return " / ".join("n/a" if v is None or v != v else format(v, fmt) for v in values)

    rows = [
        ("semantic cohesion SC (higher better)", f"{metrics['semantic_cohesion']:.4f}  per level "
                                                 f"{joined(metrics['semantic_cohesion_per_level'], '.3f')}"
                                                 f"{_NA_NOTE if None in metrics['semantic_cohesion_per_level'] else ''}"),
        ("preference discrimination PD (lower better)", f"{metrics['preference_discrimination']:.4f}  per level "
                                                        f"{joined(metrics['preference_discrimination_per_level'], '.3f')}"),
        ("PD of input centroids, level-1 clusters", f"{metrics['preference_discrimination_input']:.4f}"),
        ("collision rate (items / distinct SID)", f"{metrics['collision_rate']:.4f}"),
        ("distinct SIDs / largest bucket", f"{metrics['distinct_sids']} / {metrics['largest_bucket']}"),
        ("gini over SIDs / per level", f"{metrics['gini']:.4f} / {joined(metrics['gini_per_level'], '.3f')}"),
        ("codebook usage per level", joined(metrics["codebook_usage"], ".3f")),
        ("perplexity per level", joined(metrics["perplexity"], ".1f")),
    ]
    if "reconstruction_mse" in metrics:
        rows.append(("reconstruction error ||x - x_hat||^2", f"{metrics['reconstruction_mse']:.5f}"))
    for key, label in (("training_seconds", "training time (s)"),):
        if key in metrics:
            rows.append((label, f"{metrics[key]:.1f}"))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)
