"""Ranking metrics and the popularity baseline against brute-force reference code."""

import numpy as np
import pytest

from genrec.data_prep.dataset import load_processed_dataset
from genrec.eval.popularity import popularity_metrics
from genrec.eval.ranking_metrics import ranking_metrics, target_ranks
from tests.recommender_fixtures import write_dataset


def brute_force(ranked, targets, k):
    """Textbook definitions, one user at a time: one relevant item, ideal DCG = 1."""
    recall = ndcg = mrr = 0.0
    for row, target in zip(ranked, targets):
        for position, item in enumerate(row, start=1):
            if item == target:
                mrr += 1 / position
                if position <= k:
                    recall += 1
                    ndcg += 1 / np.log2(position + 1)
                break
    n = len(targets)
    return recall / n, ndcg / n, mrr / n


def test_ranking_metrics_match_brute_force_on_made_up_rankings():
    rng = np.random.default_rng(0)
    ranked = np.stack([rng.permutation(50)[:30] for _ in range(300)])
    targets = rng.integers(0, 50, size=300)  # ~40% of targets are outside the 30 ranked items
    metrics = ranking_metrics(ranked, targets)
    for k in (5, 10, 20, 30):
        recall, ndcg, mrr = brute_force(ranked, targets, k)
        assert metrics[f"recall@{k}"] == pytest.approx(recall)
        assert metrics[f"ndcg@{k}"] == pytest.approx(ndcg)
    assert metrics["mrr"] == pytest.approx(mrr)
    assert 0 < metrics["recall@5"] < metrics["recall@30"] < 1


def test_hand_computed_case_and_misses():
    ranked = np.array([[7, 3, 9], [1, 2, 3], [4, 5, 6], [0, 0, 8]])  # 0 = empty beam slot
    targets = np.array([3, 1, 99, 8])
    np.testing.assert_array_equal(target_ranks(ranked, targets), [2, 1, 0, 3])
    metrics = ranking_metrics(ranked, targets, ks=(1, 3))
    assert metrics["recall@1"] == pytest.approx(1 / 4)
    assert metrics["recall@3"] == pytest.approx(3 / 4)
    assert metrics["ndcg@3"] == pytest.approx((1 / np.log2(3) + 1 + 1 / np.log2(4)) / 4)
    assert metrics["mrr"] == pytest.approx((1 / 2 + 1 + 0 + 1 / 3) / 4)


def test_popularity_baseline_matches_brute_force(tmp_path):
    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=30, num_items=12, seed=3))
    for split in ("valid", "test"):
        counts = {}
        for user in range(1, dataset.num_users + 1):
            for item in dataset.split(user, split)[0]:  # only what was seen before the split's targets
                counts[item] = counts.get(item, 0) + 1
        top = sorted(counts, key=lambda item: (-counts[item], item))[:30]
        targets = [dataset.split(user, split)[1] for user in range(1, dataset.num_users + 1)]
        expected = ranking_metrics(np.tile(np.array(top + [0] * (30 - len(top))), (len(targets), 1)), np.array(targets))
        got = popularity_metrics(dataset, split)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value), (split, key)
