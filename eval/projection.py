"""The reference-vector projection seen from outside (R3-VAE paper §4.7, Figure 2).

``e0 = x - alpha r`` (eqs 1-2) removes each item's component along the learned reference vector.
The paper shows 3D PCA views of the embeddings before and after, and their Preference
Discrimination (eq 10 with t = 2): -0.284 before, -1.917 after on its data. Those values match eq 10
taken over the item vectors themselves (log of the mean over item pairs of exp(-2 (1 - cos))):
-0.284 is what a mean pairwise cosine near 0.86 gives, the usual anisotropy of Sentence-T5
vectors. We report that item-level PD, and eq 10 over the centroids of the level-1 clusters as well.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genrec.eval.sid_metrics import cluster_centroids, preference_discrimination


def pca_3d(vectors: np.ndarray) -> np.ndarray:
    """First three principal components of the L2-normalized vectors (the paper's 'spherical' view)."""
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    centred = unit - unit.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    return centred @ components[:3].T


def projection_report(x: np.ndarray, e0: np.ndarray, level1_codes: np.ndarray, t: float = 2.0) -> dict:
    """PD of the items and of their level-1 cluster centroids, before (x) and after (e0) projection."""
    result = {}
    with torch.no_grad():
        for name, vectors in (("original", x), ("projected", e0)):
            tensor = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32))
            unit = torch.nn.functional.normalize(tensor, dim=-1)
            mean_cos = float(((unit.sum(0) ** 2).sum() - len(unit)) / (len(unit) ** 2 - len(unit)))
            result[name] = {
                "pd_items": float(preference_discrimination(tensor, t)),
                "pd_level1_centroids": float(preference_discrimination(
                    cluster_centroids(tensor, torch.from_numpy(level1_codes)), t)),
                "mean_pairwise_cosine": mean_cos,
            }
    return result


def plot_projection(x: np.ndarray, e0: np.ndarray, level1_codes: np.ndarray, report: dict, path: Path,
                    sample: int = 4000, seed: int = 0) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x), min(sample, len(x)), replace=False)
    fig = plt.figure(figsize=(11, 5))
    for column, (name, vectors) in enumerate((("original", x), ("projected", e0))):
        points = pca_3d(vectors)[pick]
        axis = fig.add_subplot(1, 2, column + 1, projection="3d")
        axis.scatter(*points.T, c=level1_codes[pick] % 20, cmap="tab20", s=2, alpha=0.6)
        title = "original x" if name == "original" else "projected e0 = x - alpha r"
        axis.set_title(f"{title}\nPD items {report[name]['pd_items']:.3f}, "
                       f"mean cos {report[name]['mean_pairwise_cosine']:.3f}", fontsize=9)
        axis.set(xlabel="PC1", ylabel="PC2", zlabel="PC3")
    fig.suptitle("3D PCA of unit-normalized item embeddings (colour: level-1 code), paper Figure 2", fontsize=10)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
