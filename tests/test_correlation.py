import itertools

import numpy as np
import pytest

from genrec.eval.correlation import average_ranks, spearman


def brute_force_spearman(x, y):
    """Textbook formula 1 - 6 sum d^2 / (n (n^2 - 1)), valid when there are no ties."""
    n = len(x)
    rank = lambda v: {value: r + 1 for r, value in enumerate(sorted(v))}
    rx, ry = rank(x), rank(y)
    d2 = sum((rx[a] - ry[b]) ** 2 for a, b in zip(x, y))
    return 1 - 6 * d2 / (n * (n * n - 1))


def test_matches_textbook_formula_without_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        x, y = rng.permutation(9).astype(float), rng.normal(size=9)
        assert spearman(x, y) == pytest.approx(brute_force_spearman(list(x), list(y)))


def test_ties_get_average_ranks():
    np.testing.assert_allclose(average_ranks([3.0, 1.0, 3.0, 2.0]), [3.5, 1.0, 3.5, 2.0])


def test_perfect_and_reversed_and_constant():
    x = [0.1, 0.4, 0.2, 0.9]
    assert spearman(x, [1, 4, 2, 9]) == pytest.approx(1.0)
    assert spearman(x, [-1, -4, -2, -9]) == pytest.approx(-1.0)
    assert np.isnan(spearman(x, [5, 5, 5, 5]))


def test_invariant_to_monotone_transform():
    for x in itertools.permutations(range(5)):
        y = np.array([2, 0, 4, 1, 3], dtype=float)
        assert spearman(np.exp(np.array(x, dtype=float)), y) == pytest.approx(spearman(list(x), y))
