"""Micro-batches with gradient accumulation: the least-padding split of a batch, and a step over the
micro-batches has the gradient of the whole padded batch (also when the batch is sharded across
processes first)."""

import itertools

import numpy as np
import torch

from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.data import ExampleBuilder, epoch_batches, micro_batches, training_examples
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.train import accumulate_gradients
from genrec.recommender.train_config import TrainConfig
from genrec.recommender.vocab import SidVocab
from genrec.tokenizer.artifact import load_semantic_ids
from tests.recommender_fixtures import write_dataset, write_tokenizer

NO_DROPOUT = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                               dropout=0.0, max_history=5)


def _padded(parts, lengths):
    return sum(len(p) * lengths[p].max() for p in parts)


def _least_padding(lengths, parts):
    """Brute force over every way to cut the sorted lengths into at most ``parts`` runs."""
    srt, n, best = np.sort(lengths), len(lengths), np.inf
    for k in range(1, min(parts, n) + 1):
        for cuts in itertools.combinations(range(1, n), k - 1):
            bounds = [0, *cuts, n]
            best = min(best, sum((b - a) * srt[b - 1] for a, b in zip(bounds[:-1], bounds[1:])))
    return best


def test_micro_batches_cover_the_batch_sorted_with_the_least_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 40, size=50)
    for _ in range(150):
        index = rng.choice(50, size=int(rng.integers(1, 10)), replace=False)
        parts = int(rng.integers(1, 5))
        pieces = micro_batches(index, lengths, parts)
        assert len(pieces) <= parts and sorted(np.concatenate(pieces).tolist()) == sorted(index.tolist())
        if parts > 1:
            flat = lengths[np.concatenate(pieces)]
            assert (np.diff(flat) >= 0).all()  # consecutive runs of the length-sorted batch
            assert _padded(pieces, lengths) == _least_padding(lengths[index], parts)
    index = rng.choice(50, size=9, replace=False)
    assert [p.tolist() for p in micro_batches(index, lengths, 1)] == [index.tolist()]  # 1 = the batch as it is
    assert all((a == b).all() for a, b in zip(micro_batches(index, lengths, 3), micro_batches(index, lengths, 3)))


def test_default_batches_are_plain_random_batches_of_the_epoch():
    """The default feeds each step a plain random batch (no length bucketing); order = f(seed, epoch)."""
    config = TrainConfig()
    assert config.sort_window == 1 and config.micro_batches > 1
    lengths = np.random.default_rng(1).integers(5, 81, size=600)
    batches = epoch_batches(lengths, 32, seed=4, epoch=1, sort_window=config.sort_window)
    order = np.random.default_rng([4, 1]).permutation(600)
    expected = [order[i : i + 32] for i in range(0, 600, 32)]
    assert sorted(len(b) for b in batches) == sorted(len(b) for b in expected)
    assert {tuple(b) for b in batches} == {tuple(b) for b in expected}


def _grads(model):
    return {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.grad is not None}


def test_accumulated_gradient_equals_the_whole_padded_batch(tmp_path):
    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=40))
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok"))
    vocab = SidVocab.for_semantic_ids(sids)
    train = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, NO_DROPOUT.max_history).build(training_examples(dataset))
    torch.manual_seed(0)
    model = build_model(NO_DROPOUT, vocab).train()
    index = np.random.default_rng(0).choice(len(train), size=24, replace=False)
    assert len(set(train.lengths[index])) > 2  # the batch really has padding to cut

    whole = model(**train.batch(index)).loss  # one batch padded to its longest input
    whole.backward()
    expected = _grads(model)
    model.zero_grad(set_to_none=True)

    pieces = micro_batches(index, train.lengths, 3)
    assert len(pieces) == 3 and _padded(pieces, train.lengths) < len(index) * train.lengths[index].max()
    loss = accumulate_gradients(model, train, index, 3)
    torch.testing.assert_close(loss, whole.detach())
    got = _grads(model)
    assert got.keys() == expected.keys() and len(got) == len(list(model.parameters()))
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], msg=name)

    # accelerate with 2 processes: each takes every other example of the batch and micro-batches its
    # share; DDP averages the two gradients, which is again the whole batch's.
    shares = []
    for rank in range(2):
        model.zero_grad(set_to_none=True)
        accumulate_gradients(model, train, index[rank::2], 2)
        shares.append(_grads(model))
    for name in expected:
        torch.testing.assert_close((shares[0][name] + shares[1][name]) / 2, expected[name], msg=name)
