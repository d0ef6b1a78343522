"""Shared K-Means: separated clusters, nearest centroid, balanced assignment."""

import math

import torch

from genrec.tokenizer.kmeans import assign, balanced_assign, kmeans, nearest
from tests.tokenizer_fixtures import single_thread  # noqa: F401  (autouse)


def blobs(n_per=50, k=4, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g) * 10
    x = torch.cat([c + 0.1 * torch.randn(n_per, d, generator=g) for c in centers])
    return x, centers, torch.arange(k).repeat_interleave(n_per)


def same_partition(a, b):
    return len({(int(i), int(j)) for i, j in zip(a, b)}) == len(set(a.tolist())) == len(set(b.tolist()))


def test_kmeans_recovers_separated_clusters_full_and_minibatch():
    x, _, truth = blobs()
    assert same_partition(kmeans(x, 4, seed=0).labels, truth)
    assert same_partition(kmeans(x, 4, seed=0, batch_size=32, iters=5).labels, truth)


def test_nearest_matches_brute_force():
    x, c = torch.randn(37, 5), torch.randn(6, 5)
    labels, dists = nearest(x, c, chunk=8)
    brute = ((x[:, None] - c[None]) ** 2).sum(-1)
    assert torch.equal(labels, brute.argmin(1))
    assert torch.allclose(dists, brute.min(1).values, atol=1e-4)


def test_balanced_assignment_respects_capacity():
    dist = torch.rand(103, 10)
    labels = balanced_assign(dist, capacity=math.ceil(103 / 10))
    assert torch.bincount(labels, minlength=10).max() <= 11 and (labels >= 0).all()
    # Everyone wants cluster 0: capacity forces a spread.
    dist = torch.ones(20, 4)
    dist[:, 0] = 0
    assert torch.bincount(balanced_assign(dist, 5), minlength=4).tolist() == [5, 5, 5, 5]


def test_assign_nearest_or_balanced_with_matching_distances():
    x = torch.randn(30, 3)
    c = torch.tensor([[0.0, 0, 0], [50.0, 50, 50], [-50.0, -50, -50]])  # everyone is nearest to c[0]
    labels, dists = assign(x, c, capacity=None)
    assert (labels == 0).all()
    labels, dists = assign(x, c, capacity=10)
    assert torch.bincount(labels, minlength=3).tolist() == [10, 10, 10]
    assert torch.allclose(dists, ((x - c[labels]) ** 2).sum(1), rtol=1e-4)
    # kmeans(balanced=True) ends on such an assignment: at most ceil(n / k) per cluster.
    result = kmeans(blobs(n_per=20, k=3)[0], 4, seed=0, balanced=True)
    assert torch.bincount(result.labels, minlength=4).max() <= 15
