"""The sparse transition prior (recommender/fusion.py, recommender/prefix_scores.py) against the dense
path it replaced: keeping every successor gives the same probabilities, the same top-10 and the
same prefix masses; keeping the top N keeps exactly each item's N most frequent followers."""

import numpy as np
import pytest
import torch

from genrec.core.errors import GenrecError
from genrec.data_prep.prepare import prepare_dataset
from genrec.data_prep.dataset import load_processed_dataset
from genrec.data_prep.synthetic import SyntheticConfig
from genrec.recommender.fast_beam import constrained_beam_search
from genrec.recommender.fusion import DecodingPolicy, TransitionPrior, keep_top_successors, prefix_log_prior, prefix_states
from genrec.recommender.trie import SidPrefixTable
from tests.test_fast_beam import make_catalog, make_model


def dense_probabilities(prior: TransitionPrior, histories):
    """The dense path as it was: a catalogue-wide float64 row per history, filled in a Python loop."""
    q = np.zeros((len(histories), prior.num_items + 1))
    for row, history in enumerate(histories):
        for k, item in enumerate(reversed(history[-prior.recent:])):
            if 0 < item <= prior.num_items:
                start, end = prior.counts.indptr[item], prior.counts.indptr[item + 1]
                q[row, prior.counts.indices[start:end]] += prior.counts.data[start:end] * prior.decay**k
    totals = q.sum(axis=1, keepdims=True)
    q = np.divide(q, totals, out=np.full_like(q, 1.0 / prior.num_items), where=totals > 0)
    q[:, 1:] = (q[:, 1:] + prior.smoothing) / (1.0 + prior.smoothing * prior.num_items)
    q[:, 0] = 0.0
    return q


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    import genrec.core.layout

    root = tmp_path_factory.mktemp("synthetic")
    old, genrec.core.layout.DATA_ROOT = genrec.core.layout.DATA_ROOT, root / "data-root"
    try:
        prepare_dataset("synthetic", root / "d", root, synthetic=SyntheticConfig(num_items=600, num_users=900, seed=5))
    finally:
        genrec.core.layout.DATA_ROOT = old
    return load_processed_dataset(root / "d")


def histories_of(dataset):
    histories = [dataset.split(user, "test")[0] for user in range(1, dataset.num_users + 1)]
    return histories + [[], [0], [dataset.num_items], [1, 1, 1]]  # no items, no counts, repeats


def test_keeping_every_successor_gives_the_dense_probabilities_and_top_10(synthetic):
    prior = TransitionPrior.fit(synthetic.train_sequences(), synthetic.num_items)
    histories = histories_of(synthetic)
    for start in range(0, len(histories), 256):
        batch = histories[start:start + 256]
        dense = dense_probabilities(prior, batch)
        np.testing.assert_array_equal(prior.probabilities(batch), dense)  # bit for bit
        expected = np.argsort(-np.where(np.arange(dense.shape[1]) == 0, -1.0, dense), axis=1, kind="stable")[:, :10]
        np.testing.assert_array_equal(prior.rank(batch, 10), expected)


def test_prefix_masses_equal_the_dense_ones(synthetic):
    rng = np.random.default_rng(3)
    codes = np.stack([rng.integers(0, 8, synthetic.num_items), rng.integers(0, 6, synthetic.num_items)], axis=1)
    from genrec.tokenizer.semantic_ids import add_collision_suffix

    codes = add_collision_suffix(codes)
    sizes = tuple(int(s) for s in codes.max(axis=0) + 1)
    table = SidPrefixTable.from_codes(codes, tuple(np.cumsum((2, *sizes[:-1]))), sizes)
    states = prefix_states(table)
    for smoothing in (1e-4, 0.0):
        prior = TransitionPrior.fit(synthetic.train_sequences(), synthetic.num_items, smoothing=smoothing)
        batch = histories_of(synthetic)[-40:]
        dense = prefix_log_prior(dense_probabilities(prior, batch), states, 1.7)
        sparse = prior.prefix_scores(batch, states, 1.7)
        for position, expected in enumerate(dense):
            every = torch.arange(expected.shape[1]).expand(len(batch), -1)
            np.testing.assert_allclose(sparse.gather(position, every).numpy(), expected.numpy(), rtol=1e-6, atol=1e-5)


def test_a_fused_beam_finds_the_same_items_with_the_sparse_prior():
    codes, sizes, offsets = make_catalog(num_items=60)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    model = make_model(offsets[-1] + sizes[-1])
    rng = np.random.default_rng(4)
    prior = TransitionPrior.fit([list(rng.integers(1, 61, 8)) for _ in range(200)], 60)
    histories = [[5, 7, 9], [3, 4], [60], [11, 12, 13, 14]]
    ids = torch.tensor([[5, 7, 9, 1], [3, 4, 1, 0], [6, 1, 0, 0], [5, 6, 7, 1]])
    mask = (ids != 0).long()
    states = prefix_states(table)
    policy = DecodingPolicy.from_weights({"prior": 2.0}, {"prior": prior})
    dense = prefix_log_prior(prior.probabilities(histories), states, 2.0)
    for beams in (5, 20):
        want_items, want_scores = constrained_beam_search(model, ids, mask, table, beams, prior=dense)
        items, scores = constrained_beam_search(model, ids, mask, table, beams,
                                                prior=policy.prefix_log_prior(histories, states))
        np.testing.assert_array_equal(items.numpy(), want_items.numpy())
        np.testing.assert_allclose(scores.numpy(), want_scores.numpy(), rtol=1e-5, atol=1e-5)


def test_top_n_successors_are_each_items_most_frequent_followers(synthetic):
    every = TransitionPrior.fit(synthetic.train_sequences(), synthetic.num_items)
    counts = every.counts.toarray()
    for n in (1, 3, 10):
        kept = TransitionPrior.fit(synthetic.train_sequences(), synthetic.num_items, successors=n).counts
        assert kept.has_sorted_indices and np.diff(kept.indptr).max() <= n
        dense = kept.toarray()
        for item in range(1, synthetic.num_items + 1):
            order = np.lexsort((np.arange(counts.shape[1]), -counts[item]))[:n]  # count desc, then id
            order = order[counts[item, order] > 0]
            np.testing.assert_array_equal(np.nonzero(dense[item])[0], np.sort(order))
            np.testing.assert_array_equal(dense[item, order], counts[item, order])
    assert keep_top_successors(every.counts, 0) is every.counts
    with pytest.raises(GenrecError, match="successors"):
        TransitionPrior.fit([[1, 2]], 2, successors=-1)


def test_fit_in_chunks_counts_the_same(synthetic):
    whole = TransitionPrior.fit(synthetic.train_sequences(), synthetic.num_items).counts
    chunked = TransitionPrior.fit(synthetic.train_sequences(), synthetic.num_items, chunk_users=7).counts
    assert (whole != chunked).nnz == 0
