"""Semantic-ID token embeddings initialised from what the codes mean (issue: code embeddings from
the tokenizer's codebooks).

A residual quantizer's level-l codeword is the mean residual of the items it holds. The same
vectors are recovered from any tokenizer's codes and the items' embeddings (RQ-VAE / R3-VAE / OPQ
alike, no tokenizer internals): level by level, each code's centroid is the mean residual of its
items, which is then subtracted (r_0 = x - mean x, c_l = mean{r_l(i) : code_l(i) = c}, r_{l+1} =
r_l - c_l). Projected onto the embeddings' top ``d_model`` principal directions and scaled to the
embedding table's initial standard deviation, so the sum of an item's code embeddings starts as
its quantised embedding. The collision suffix has no meaning and keeps its random rows.
"""

from __future__ import annotations

import numpy as np
import torch

CODE_INIT = ("random", "centroids")


def code_centroids(item_tokens: np.ndarray, vectors: np.ndarray, num_levels: int, vocab_size: int) -> np.ndarray:
    """``[vocab_size, D]`` residual centroid of every code token of the first ``num_levels``
    columns of ``item_tokens`` [M, L + 1] over the items' ``vectors`` [M, D] (unit rows); other
    rows 0."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    residual = x - x.mean(axis=0)
    table = np.zeros((vocab_size, x.shape[1]))
    for level in range(num_levels):
        tokens = np.asarray(item_tokens[:, level], dtype=np.int64)
        sums = np.zeros((vocab_size, x.shape[1]))
        np.add.at(sums, tokens, residual)
        counts = np.bincount(tokens, minlength=vocab_size)[:, None]
        centroids = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
        table[counts[:, 0] > 0] = centroids[counts[:, 0] > 0]
        residual = residual - centroids[tokens]
    return table


def principal_directions(vectors: np.ndarray, dims: int) -> np.ndarray:
    """``[D, dims]`` top principal directions of the unit rows of ``vectors`` (zero-padded past D)."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    _, _, vt = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    out = np.zeros((x.shape[1], dims))
    kept = min(dims, vt.shape[0])
    out[:, :kept] = vt[:kept].T
    return out


@torch.no_grad()
def init_code_embeddings(embedding: torch.nn.Embedding, item_tokens: np.ndarray, vectors: np.ndarray,
                         num_levels: int) -> None:
    """Overwrite the code rows of ``embedding`` (the T5's shared token table) with the projected,
    scaled residual centroids (module docstring); every other row is left as it was."""
    vocab_size, d_model = embedding.weight.shape
    table = code_centroids(item_tokens, vectors, num_levels, vocab_size)
    rows = np.unique(np.asarray(item_tokens[:, :num_levels], dtype=np.int64))
    projected = table[rows] @ principal_directions(vectors, d_model)
    scale = embedding.weight.std().item() / max(projected.std(), 1e-12)
    embedding.weight[torch.from_numpy(rows)] = torch.from_numpy(projected * scale).to(embedding.weight.dtype)
