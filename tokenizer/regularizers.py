"""The SID quality measures of the R3-VAE paper (§3.4) as differentiable torch functions.

R3-VAE trains with them (eq 12: L = L_rec + lambda (-SC + PD)); genrec.eval.sid_metrics reports
them with the same code, so a training loss and a reported metric cannot drift apart.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _floating(t: torch.Tensor) -> torch.Tensor:
    return t if t.is_floating_point() else t.float()


def semantic_cohesion(vectors: torch.Tensor, labels: torch.Tensor, return_per_cluster: bool = False):
    """SC, eqs 8-9: mean over clusters of size >= 2 of the mean pairwise cosine similarity.

    Eq 8's 2 / (|G|^2 - |G|) is read as the mean over unordered pairs, so SC is in [-1, 1].
    Sum over i != j of cos(q_i, q_j) = ||sum of unit vectors||^2 - |G|, so clusters are handled with
    one scatter-add (O(n d), no pair loop). Singletons are skipped (eq 8 divides by 0 for them);
    NaN when no cluster has two members.
    """
    unit = F.normalize(_floating(vectors), dim=-1)
    _, inverse = torch.unique(labels, return_inverse=True)
    count = int(inverse.max()) + 1 if inverse.numel() else 0
    sums = torch.zeros(count, unit.shape[1], dtype=unit.dtype).index_add(0, inverse, unit)
    sizes = torch.bincount(inverse, minlength=count).to(unit.dtype)
    keep = sizes >= 2
    per_cluster = ((sums[keep] ** 2).sum(1) - sizes[keep]) / (sizes[keep] ** 2 - sizes[keep])
    value = per_cluster.mean() if per_cluster.numel() else torch.tensor(float("nan"))
    return (value, per_cluster) if return_per_cluster else value


def preference_discrimination(centroids: torch.Tensor, t: float = 2.0, chunk: int = 2048) -> torch.Tensor:
    """PD, eq 10: log of the mean over pairs a < b of exp(-t (1 - cos(p_a, p_b))); lower = more distinct.

    Evaluated with a chunked log-sum-exp, so memory is O(chunk x M). NaN for fewer than 2 centroids.
    """
    unit = F.normalize(_floating(centroids), dim=-1)
    m = unit.shape[0]
    if m < 2:
        return torch.tensor(float("nan"))
    partial = []
    columns = torch.arange(m)
    for start in range(0, m - 1, chunk):
        rows = torch.arange(start, min(start + chunk, m))
        values = -t * (1.0 - unit[rows] @ unit.T)
        values = values.masked_fill(columns[None, :] <= rows[:, None], float("-inf"))  # pairs a < b only
        partial.append(torch.logsumexp(values.flatten(), 0))
    return torch.logsumexp(torch.stack(partial), 0) - math.log(m * (m - 1) / 2)
