"""K-Means in torch, written once and shared by every tokenizer.

* ``kmeans``: Lloyd iterations on the full data (chunked distance computation, so memory is
  O(chunk x k), not O(n x k)), or mini-batch K-Means (Sculley 2010: per-centroid learning rate
  1/count) when ``batch_size`` is set — memory then depends on the batch size only, which is how
  the tokenizers scale to millions of items.
* initialization: k-means++ on a random subsample (at most ``init_sample`` points; k sequential
  passes over the sample, so it costs O(k x sample x d)), or ``random`` distinct points (the cheap
  choice for very large codebooks, e.g. M = 8192).
* optional balanced assignment (every cluster holds at most ceil(n / k) points), used by
  balanced residual K-Means.

The residual loops built on it (residual K-Means, K-Means codebook initialization) are in
tokenizer.residual.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

DEFAULT_CHUNK = 8192


@dataclass
class KMeansResult:
    centroids: torch.Tensor  # float32 [k, d]
    labels: torch.Tensor  # int64 [n]
    inertia: float  # mean squared distance of points to their centroid


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """[n, k] squared Euclidean distances via ||x||^2 - 2 x.c + ||c||^2 (clamped at 0)."""
    d = (x * x).sum(1, keepdim=True) - 2.0 * (x @ centroids.T) + (centroids * centroids).sum(1)[None, :]
    return d.clamp_min_(0.0)


def nearest(x: torch.Tensor, centroids: torch.Tensor, chunk: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared distance to the nearest centroid of each row, in chunks of rows."""
    labels, dists = [], []
    for start in range(0, x.shape[0], chunk):
        d = squared_distances(x[start:start + chunk], centroids)
        best, idx = d.min(1)
        labels.append(idx)
        dists.append(best)
    return torch.cat(labels), torch.cat(dists)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): next centre drawn with prob ~ D(x)^2."""
    n = x.shape[0]
    first = int(torch.randint(n, (1,), generator=generator))
    centroids = [x[first]]
    norms = (x * x).sum(1)

    def to_point(i: int) -> torch.Tensor:  # squared distances of every row to row i (norms precomputed)
        return (norms - 2.0 * (x @ x[i]) + norms[i]).clamp_min_(0.0)

    closest = to_point(first)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than k: pad with random points
            idx = int(torch.randint(n, (1,), generator=generator))
        else:
            idx = int(torch.multinomial(closest / total, 1, generator=generator))
        centroids.append(x[idx])
        closest = torch.minimum(closest, to_point(idx))
    return torch.stack(centroids).clone()


def initial_centroids(x: torch.Tensor, k: int, init: str | torch.Tensor, generator: torch.Generator,
                      init_sample: int) -> torch.Tensor:
    n = x.shape[0]
    if isinstance(init, torch.Tensor):  # warm start (OPQ re-fits its sub-codebooks every iteration)
        return init.detach().float().clone()
    if init == "random":
        return x[torch.randperm(n, generator=generator)[:k]].clone()
    if init != "kmeans++":
        raise ValueError(f"unknown K-Means init {init!r}; use 'kmeans++' or 'random'")
    sample = x if n <= init_sample else x[torch.randperm(n, generator=generator)[:init_sample]]
    return kmeans_plus_plus(sample, k, generator)


def balanced_assign(dist: torch.Tensor, capacity: int, rounds: int = 16) -> torch.Tensor:
    """Assign n points to k clusters with at most ``capacity`` points each, greedily by distance.

    Round r: every unassigned point proposes to its r-th nearest cluster; each cluster accepts the
    closest proposers up to its remaining capacity (vectorized with a sort by (cluster, distance)).
    Points left after ``rounds`` go, one by one, to their nearest cluster that still has room.
    """
    n, k = dist.shape
    if capacity * k < n:
        raise ValueError("capacity too small for the number of points")
    candidates = dist.topk(min(k, rounds), dim=1, largest=False).indices
    labels = torch.full((n,), -1, dtype=torch.long)
    remaining = torch.full((k,), capacity, dtype=torch.long)
    for r in range(candidates.shape[1]):
        free = (labels < 0).nonzero().squeeze(1)
        if free.numel() == 0:
            break
        proposal = candidates[free, r]
        d = dist[free, proposal]
        # Sort by cluster, then distance: rank within each cluster = position - first position of that cluster.
        order = torch.argsort(d, stable=True)
        order = order[torch.argsort(proposal[order], stable=True)]
        sorted_prop = proposal[order]
        counts = torch.bincount(sorted_prop, minlength=k)
        starts = torch.cumsum(counts, 0) - counts
        rank = torch.arange(order.numel()) - starts[sorted_prop]
        accepted = rank < remaining[sorted_prop]
        labels[free[order[accepted]]] = sorted_prop[accepted]
        remaining -= torch.bincount(sorted_prop[accepted], minlength=k)
    for i in (labels < 0).nonzero().squeeze(1).tolist():
        masked = dist[i].masked_fill(remaining <= 0, float("inf"))
        j = int(masked.argmin())
        labels[i] = j
        remaining[j] -= 1
    return labels


def assign(x: torch.Tensor, centroids: torch.Tensor, capacity: int | None,
           chunk: int = DEFAULT_CHUNK) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and squared distances: nearest centroid, or balanced (at most ``capacity`` per cluster)."""
    if capacity is None:
        return nearest(x, centroids, chunk)
    dist = squared_distances(x, centroids)  # balanced assignment needs all [n, k] distances
    labels = balanced_assign(dist, capacity)
    return labels, dist.gather(1, labels[:, None]).squeeze(1)


def _reseed_empty(x: torch.Tensor, centroids: torch.Tensor, counts: torch.Tensor, dists: torch.Tensor) -> None:
    """Move empty centroids onto the points farthest from their current centroid."""
    empty = (counts == 0).nonzero().squeeze(1)
    if empty.numel():
        far = dists.topk(min(empty.numel(), x.shape[0])).indices
        centroids[empty[:far.numel()]] = x[far]


def kmeans(x: torch.Tensor, k: int, *, iters: int = 20, init: str | torch.Tensor = "kmeans++", seed: int = 0,
           batch_size: int | None = None, balanced: bool = False, init_sample: int = 65536,
           chunk: int = DEFAULT_CHUNK, tol: float = 1e-6) -> KMeansResult:
    """Cluster rows of ``x`` (float32 [n, d]) into ``k`` centroids.

    ``batch_size`` set and smaller than n: mini-batch K-Means with ``iters`` epochs of batches
    (bounded memory). Otherwise full-batch Lloyd for at most ``iters`` iterations (stops when the
    relative inertia change is below ``tol``). ``balanced``: capacity-constrained assignment
    (full-batch only; it needs all distances of the current data).
    """
    x = x.detach().float()
    n = x.shape[0]
    if k > n:
        raise ValueError(f"cannot make {k} clusters from {n} points")
    generator = torch.Generator().manual_seed(seed)
    centroids = initial_centroids(x, k, init, generator, init_sample)
    if batch_size is not None and batch_size < n and not balanced:
        counts = torch.zeros(k)
        for _ in range(iters):
            for idx in torch.randperm(n, generator=generator).split(batch_size):
                batch = x[idx]
                labels, _ = nearest(batch, centroids, chunk)
                batch_counts = torch.bincount(labels, minlength=k).float()
                sums = torch.zeros_like(centroids).index_add_(0, labels, batch)
                counts += batch_counts
                hit = batch_counts > 0
                # Sculley's per-centre step 1/count, applied to the batch mean in closed form.
                rate = (batch_counts[hit] / counts[hit])[:, None]
                centroids[hit] = (1 - rate) * centroids[hit] + rate * sums[hit] / batch_counts[hit][:, None]
        labels, dists = nearest(x, centroids, chunk)
        return KMeansResult(centroids, labels, float(dists.mean()))

    capacity = math.ceil(n / k) if balanced else None
    previous = math.inf
    for _ in range(max(iters, 1)):
        labels, dists = assign(x, centroids, capacity, chunk)
        inertia = float(dists.mean())
        counts = torch.bincount(labels, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled][:, None]
        _reseed_empty(x, centroids, counts, dists)
        if previous - inertia <= tol * max(previous, 1e-12):
            break
        previous = inertia
    labels, dists = assign(x, centroids, capacity, chunk)
    return KMeansResult(centroids, labels, float(dists.mean()))
