"""Collision suffixes and trie tables from one lexicographic sort give exactly what a plain loop over
the items (suffixes) and the per-prefix np.unique build (tables) gave, on random codes."""

import numpy as np
import pytest

from genrec.recommender.trie import SidPrefixTable
from genrec.tokenizer.semantic_ids import add_collision_suffix


def loop_suffix(codes):
    """The definition: each item numbered after the earlier items with the same codes."""
    seen, out = {}, []
    for row in np.asarray(codes).tolist():
        key = tuple(row)
        out.append(seen.get(key, 0))
        seen[key] = out[-1] + 1
    return np.concatenate([codes, np.asarray(out, dtype=np.int64)[:, None]], axis=1)


def unique_tables(codes, sizes):
    """The trie tables as built before: one np.unique(axis=0) per prefix length."""
    num_items, length = codes.shape
    state_of = [np.zeros(num_items, dtype=np.int64)]
    for d in range(1, length):
        state_of.append(np.unique(codes[:, :d], axis=0, return_inverse=True)[1].reshape(-1))
    state_of.append(np.arange(1, num_items + 1))
    tables = []
    for d in range(length):
        table = np.full((int(state_of[d].max()) + 1, sizes[d]), -1, dtype=np.int64)
        table[state_of[d], codes[:, d]] = state_of[d + 1]
        tables.append(table)
    return tables


@pytest.mark.parametrize("seed,items,levels,size", [(0, 1, 1, 2), (1, 50, 1, 3), (2, 500, 2, 4), (3, 3000, 3, 8),
                                                     (4, 2000, 4, 3)])
def test_suffix_and_tables_equal_the_reference(seed, items, levels, size):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, size, (items, levels)) if seed % 2 else (rng.zipf(1.6, (items, levels)) - 1) % size
    sids = add_collision_suffix(codes)
    np.testing.assert_array_equal(sids, loop_suffix(codes))
    sizes = tuple(int(s) for s in sids.max(axis=0) + 1)
    table = SidPrefixTable.from_codes(sids, tuple(np.cumsum((2, *sizes[:-1]))), sizes)
    for built, expected in zip(table.next_state, unique_tables(sids, sizes)):
        np.testing.assert_array_equal(built.numpy(), expected)


def test_a_shared_full_sid_is_refused():
    codes = np.array([[0, 1, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="share a full Semantic ID"):
        SidPrefixTable.from_codes(codes, (2, 4, 6), (2, 2, 1))


@pytest.mark.parametrize("per_item,buckets,eos,max_history", [(False, 0, True, 20), (True, 0, True, 3),
                                                              (False, 7, False, 2), (True, 5, True, 4)])
def test_streamed_training_examples_give_the_materialised_batches(tmp_path, per_item, buckets, eos, max_history):
    """PrefixExamples builds each batch when drawn; every batch equals the one cut from the padded
    array of all examples (ExampleBuilder.build), in the same example order."""
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.data import ExampleBuilder, streamed_training_examples, training_examples
    from genrec.recommender.vocab import SidVocab
    from genrec.tokenizer.artifact import load_semantic_ids
    from tests.recommender_fixtures import write_dataset, write_tokenizer

    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=40))
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok"))
    vocab = SidVocab.for_semantic_ids(sids, buckets)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, max_history, eos=eos, per_item=per_item)
    materialised = builder.build(training_examples(dataset))
    streamed = streamed_training_examples(builder, dataset)
    assert len(streamed) == len(materialised)
    np.testing.assert_array_equal(streamed.lengths, materialised.lengths)
    np.testing.assert_array_equal(streamed.users, materialised.users)
    rng = np.random.default_rng(0)
    for index in [np.arange(len(streamed)), rng.permutation(len(streamed))[:17], np.array([3])]:
        got, want = streamed.batch(index), materialised.batch(index)
        for key in want:
            np.testing.assert_array_equal(got[key].numpy(), want[key].numpy())
        np.testing.assert_array_equal(streamed.targets[index], materialised.targets[index])
