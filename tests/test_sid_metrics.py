"""SID metrics against brute-force reference code (eqs 8-10, collision rate, Gini, usage); SC and PD are
the training regularizers of genrec.tokenizer.regularizers."""

import itertools
import math

import numpy as np
import pytest
import torch

from genrec.eval.sid_metrics import cluster_centroids, compute_sid_metrics, format_metrics_table, gini, level_usage
from genrec.tokenizer.regularizers import preference_discrimination, semantic_cohesion
from tests.tokenizer_fixtures import single_thread  # noqa: F401  (autouse)


def cos(a, b):
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def brute_sc(vectors, labels):
    """Eqs 8-9 literally: pairs i != j inside each cluster; singletons skipped."""
    values = []
    for g in sorted(set(labels)):
        members = [i for i, l in enumerate(labels) if l == g]
        if len(members) < 2:
            continue
        pairs = [cos(vectors[i], vectors[j]) for i in members for j in members if i != j]
        values.append(sum(pairs) / (len(members) ** 2 - len(members)))
    return float(np.mean(values))


def brute_pd(centroids, t=2.0):
    m = len(centroids)
    total = sum(math.exp(-t * (1 - cos(centroids[a], centroids[b]))) for a, b in itertools.combinations(range(m), 2))
    return math.log(total * 2 / (m * (m - 1)))


def brute_gini(counts):
    x = np.asarray(counts, dtype=float)
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean()))


def test_semantic_cohesion_matches_brute_force():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 5)).astype(np.float32)
    labels = rng.integers(0, 9, size=40)
    labels[0] = 99  # a singleton cluster, skipped
    got = float(semantic_cohesion(torch.from_numpy(vectors), torch.from_numpy(labels)))
    assert got == pytest.approx(brute_sc(vectors, list(labels)), abs=1e-5)


def test_semantic_cohesion_hand_case_and_singletons():
    # Cluster A: two identical directions (cos 1); cluster B: orthogonal pair (cos 0) -> SC = 0.5.
    v = torch.tensor([[1.0, 0], [2.0, 0], [0, 1.0], [1.0, 0], [5.0, 5.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])
    assert float(semantic_cohesion(v, labels)) == pytest.approx(0.5)
    assert math.isnan(float(semantic_cohesion(v[:2], torch.tensor([0, 1]))))


def test_semantic_cohesion_is_differentiable():
    v = torch.randn(10, 4, requires_grad=True)
    semantic_cohesion(v, torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3])).backward()
    assert v.grad is not None and v.grad.abs().sum() > 0


@pytest.mark.parametrize("chunk", [1, 3, 2048])
def test_preference_discrimination_matches_brute_force(chunk):
    rng = np.random.default_rng(1)
    c = rng.normal(size=(7, 4)).astype(np.float32)
    got = float(preference_discrimination(torch.from_numpy(c), t=2.0, chunk=chunk))
    assert got == pytest.approx(brute_pd(c), abs=1e-5)


def test_preference_discrimination_hand_case():
    # Two orthogonal centroids: log(exp(-2 * (1 - 0))) = -2; identical: log(exp(0)) = 0.
    assert float(preference_discrimination(torch.tensor([[1.0, 0], [0, 1.0]]))) == pytest.approx(-2.0)
    assert float(preference_discrimination(torch.tensor([[1.0, 1.0], [2.0, 2.0]]))) == pytest.approx(0.0, abs=1e-6)


def test_gini_matches_mean_absolute_difference_formula():
    counts = [1, 1, 3, 7, 0, 2]
    assert gini(counts) == pytest.approx(brute_gini(counts))
    assert gini([4, 4, 4]) == pytest.approx(0.0)


def test_level_usage_and_perplexity():
    codes = np.array([[0, 1], [0, 1], [1, 1], [2, 1]])
    usage, perplexity, _ = level_usage(codes, (4, 2))
    assert usage == [0.75, 0.5]
    p = np.array([0.5, 0.25, 0.25])
    assert perplexity[0] == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))
    assert perplexity[1] == pytest.approx(1.0)


def test_cluster_centroids():
    v = torch.tensor([[1.0, 0], [3.0, 0], [0, 2.0]])
    assert torch.allclose(cluster_centroids(v, torch.tensor([5, 5, 1])), torch.tensor([[0, 2.0], [2.0, 0]]))


def test_compute_sid_metrics_against_brute_force():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 6)).astype(np.float32)
    codes = rng.integers(0, 3, size=(30, 2))
    codes[:4] = [[0, 0]] * 4  # a bucket of 4
    books = [torch.randn(3, 6), torch.randn(3, 6)]
    recon = x + 0.1
    m = compute_sid_metrics(codes, x, books, (3, 3), reconstruction=recon)
    keys = [tuple(r) for r in codes]
    buckets = {k: keys.count(k) for k in set(keys)}
    assert m["collision_rate"] == pytest.approx(30 / len(buckets))
    assert m["largest_bucket"] == max(buckets.values())
    assert m["gini"] == pytest.approx(brute_gini(list(buckets.values())))
    sc1 = brute_sc(x, list(codes[:, 0]))
    sc2 = brute_sc(x, [tuple(r) for r in codes])
    assert m["semantic_cohesion_per_level"] == pytest.approx([sc1, sc2], abs=1e-5)
    pd1 = brute_pd(books[0].numpy()[sorted(set(codes[:, 0]))])
    assert m["preference_discrimination_per_level"][0] == pytest.approx(pd1, abs=1e-5)
    cents = [x[codes[:, 0] == g].mean(0) for g in sorted(set(codes[:, 0]))]
    assert m["preference_discrimination_input"] == pytest.approx(brute_pd(cents), abs=1e-5)
    assert m["reconstruction_mse"] == pytest.approx(0.01 * 6, rel=1e-4)
    assert "collision rate" in format_metrics_table(m)


def test_a_level_without_collisions_has_no_sc_and_prints_no_nan():
    """Every item with its own full SID: the last level has no pair to compare (was NaN in the table)."""
    import json

    rng = np.random.default_rng(3)
    x = rng.normal(size=(8, 4)).astype(np.float32)
    codes = np.stack([np.repeat([0, 1], 4), np.arange(8)], axis=1)  # level 1: two groups; level 2: all distinct
    m = compute_sid_metrics(codes, x, [torch.randn(2, 4), torch.randn(8, 4)], (2, 8))
    assert m["semantic_cohesion_per_level"][1] is None
    assert m["semantic_cohesion"] == pytest.approx(m["semantic_cohesion_per_level"][0])
    json.dumps(m, allow_nan=False)  # valid JSON: no NaN anywhere
    table = format_metrics_table(m)
    assert "nan" not in table.lower() and "n/a" in table
