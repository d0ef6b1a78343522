"""Collaborative item vectors from the training interactions, to sit beside the text embeddings
when a tokenizer builds Semantic IDs (``genrec train-tokenizer --collaborative-weight W``).

Items a user reaches one after another (within ``window`` steps of each other in a training
sequence, weighted 1/distance) co-occur; the positive pointwise mutual information of that
co-occurrence matrix, factored by a truncated SVD (U sqrt(S), rows unit length), gives each item a
``dim``-vector in which items with the same neighbours lie close. Only training sequences are read
(items[:-2] of each user under leave-one-out), so no validation or test target leaks into the SIDs.
Items without any co-occurrence get the zero vector: their SIDs come from text alone.

The tokenizer input is then [text / |text|, W * collaborative] (``tokenizer_vectors``): W = 0 is
text only, W = 1 weighs behaviour like text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

COLLABORATIVE_FILE = "collaborative.npy"  # in a tokenizer artifact: the vectors it was trained with


def cooccurrence_matrix(sequences: list[list[int]], num_items: int, window: int = 3):
    """Symmetric sparse counts [num_items, num_items] (item ids 1..N as rows 0..N-1): each pair of
    items at distance d <= ``window`` in a sequence adds 1/d."""
    import scipy.sparse as sp

    rows, cols, values = [], [], []
    for sequence in sequences:
        items = np.asarray(sequence, dtype=np.int64) - 1
        for distance in range(1, min(window, len(items) - 1) + 1):
            left, right = items[:-distance], items[distance:]
            rows += [left, right]
            cols += [right, left]
            values += [np.full(len(left), 1.0 / distance)] * 2
    if not rows:
        return sp.csr_matrix((num_items, num_items))
    return sp.coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(num_items, num_items)).tocsr()


def ppmi(counts):
    """Positive pointwise mutual information of a symmetric count matrix (zero where PMI <= 0)."""
    import scipy.sparse as sp

    coo = counts.tocoo()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    pmi = np.log(coo.data * counts.sum() / (totals[coo.row] * totals[coo.col]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def collaborative_vectors(sequences: list[list[int]], num_items: int, dim: int = 64, window: int = 3,
                          seed: int = 0) -> np.ndarray:
    """Unit-length item vectors [num_items, dim] (float32) from PPMI + truncated SVD; zero rows for
    items that co-occur with nothing. Deterministic for a given ``seed``."""
    from scipy.sparse.linalg import svds

    matrix = ppmi(cooccurrence_matrix(sequences, num_items, window))
    rank = min(dim, min(matrix.shape) - 1)
    out = np.zeros((num_items, dim), dtype=np.float32)
    if rank < 1 or matrix.nnz == 0:
        return out
    start = np.random.default_rng(seed).standard_normal(min(matrix.shape))
    u, s, _ = svds(matrix, k=rank, v0=start)
    order = np.argsort(-s)  # largest singular value first
    vectors = u[:, order] * np.sqrt(s[order])[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out[:, :rank] = np.where(norms > 1e-12, vectors / np.maximum(norms, 1e-12), 0.0)
    return out


def tokenizer_vectors(text: np.ndarray, collaborative: np.ndarray | None, weight: float) -> np.ndarray:
    """What the tokenizer reads: unit text vectors, then ``weight`` x the collaborative vectors. Rows
    of ``text`` beyond ``collaborative`` (items added after training) get zeros there."""
    if collaborative is None or weight <= 0:
        return text
    unit = text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
    padded = np.zeros((len(text), collaborative.shape[1]), dtype=np.float32)
    padded[: len(collaborative)] = collaborative[: len(text)]
    return np.concatenate([unit, weight * padded], axis=1).astype(np.float32)


def artifact_input(text: np.ndarray, tokenizer_dir: str | Path) -> np.ndarray:
    """What a trained tokenizer artifact reads for items with these text embeddings: the text
    alone, or text + its stored collaborative vectors at its weight (zeros for items it never saw)."""
    from genrec.core.io import read_json

    folder = Path(tokenizer_dir)
    weight = read_json(folder / "config.json").get("collaborative", {}).get("weight", 0.0)
    path = folder / COLLABORATIVE_FILE
    return tokenizer_vectors(text, np.load(path) if path.is_file() else None, weight)
