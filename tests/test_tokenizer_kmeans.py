"""Shared K-Means and residual quantization."""

import math

import numpy as np
import pytest
import torch

from genrec.tokenizer.kmeans import balanced_assign, kmeans, nearest, residual_decode, residual_encode, residual_fit


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """These tensors are tiny: one thread avoids waiting on a busy second core (2-core CI)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


def test_residual_encode_is_greedy_nearest_per_level():
    x = torch.randn(60, 4)
    books = [torch.randn(5, 4), torch.randn(5, 4) * 0.3]
    codes, quantized = residual_encode(x, books)
    r = x.clone()
    for level, book in enumerate(books):
        expect = ((r[:, None] - book[None]) ** 2).sum(-1).argmin(1)
        assert torch.equal(codes[:, level], expect)
        r = r - book[expect]
    assert torch.allclose(quantized, residual_decode(codes, books), atol=1e-5)


def test_residual_fit_shrinks_error_each_level():
    x, _, _ = blobs(k=6, d=4)
    books, _ = residual_fit(x, 3, 6, seed=0)
    errors = [float(((x - residual_decode(residual_encode(x, books[:l])[0], books[:l])) ** 2).sum(1).mean())
              for l in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]
