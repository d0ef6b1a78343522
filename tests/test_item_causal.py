"""One pass per user sequence equals every-prefix training under the same item-causal masking:
same loss, same gradients; and the item-causal encoder really is causal by item."""

import numpy as np
import pytest
import torch

from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.data import ExampleBuilder, training_examples
from genrec.recommender.item_causal import (build_sequence_examples, encoder_hidden, one_pass_loss, prefix_loss,
                                            sequence_batches)
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.vocab import SidVocab
from genrec.tokenizer.artifact import load_semantic_ids
from tests.recommender_fixtures import write_dataset, write_tokenizer


def setup(tmp_path, user_buckets=0, max_history=5):
    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=12, num_items=30, seed=3))
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok"))
    config = RecommenderConfig(num_encoder_layers=2, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                               dropout=0.0, max_history=max_history, num_user_buckets=user_buckets,
                               encoder_attention="item_causal")
    vocab = SidVocab.for_semantic_ids(sids, user_buckets)
    torch.manual_seed(0)
    model = build_model(config, vocab)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, max_history, eos=False)
    return dataset, model, builder


def gradients(model, loss):
    model.zero_grad()
    loss.backward()
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("user_buckets", [0, 3])
def test_one_pass_equals_every_prefix_with_the_same_masking(tmp_path, user_buckets):
    dataset, model, builder = setup(tmp_path, user_buckets)
    sequences = [(u, dataset.train_sequence(u)) for u in range(1, dataset.num_users + 1)]
    one_pass = build_sequence_examples(builder, sequences)
    # The reference: one row per target, the encoder re-run on that target's own chunk prefix.
    rows = []
    for chunk, position in zip(one_pass.target_chunk, one_pass.target_position):
        tokens = one_pass.inputs[chunk, :one_pass.lengths[chunk]]
        keep = builder.extra + position * builder.table.shape[1]
        rows.append(tokens[:keep])
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.from_numpy(r)
    reference = prefix_loss(model, ids, (ids != 0).long(), torch.from_numpy(one_pass.targets))
    expected = gradients(model, reference)
    batch = one_pass.batch(np.arange(len(one_pass.lengths)))
    loss = one_pass_loss(model, batch)
    got = gradients(model, loss)
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    assert expected.keys() == got.keys()
    for name in expected:
        torch.testing.assert_close(got[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_every_training_target_appears_once(tmp_path):
    dataset, _, builder = setup(tmp_path, max_history=3)
    sequences = [(u, dataset.train_sequence(u)) for u in range(1, dataset.num_users + 1)]
    one_pass = build_sequence_examples(builder, sequences)
    every_prefix = training_examples(dataset)
    assert len(one_pass) == len(every_prefix)
    assert sorted(map(tuple, one_pass.targets.tolist())) == sorted(map(tuple, builder.table[[t for _, _, t in every_prefix]].tolist()))
    assert one_pass.lengths.max() <= builder.extra + 3 * builder.table.shape[1]  # at most max_history items of context
    batches = sequence_batches(one_pass.counts, 16, seed=0, epoch=0)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(one_pass.lengths)))
    assert [b.tolist() for b in batches] == [b.tolist() for b in sequence_batches(one_pass.counts, 16, 0, 0)]
    assert max(one_pass.counts[b].sum() for b in batches[:-1]) < 16 + one_pass.counts.max()


def test_item_causal_encoder_ignores_later_items(tmp_path):
    _, model, builder = setup(tmp_path)
    model.eval()
    short = torch.from_numpy(builder.encode_history([1, 2, 3]))[None]
    long = torch.from_numpy(builder.encode_history([1, 2, 3, 7, 9]))[None]
    with torch.no_grad():
        a = encoder_hidden(model, short, torch.ones_like(short))
        b = encoder_hidden(model, long, torch.ones_like(long))
    torch.testing.assert_close(a[0], b[0, :short.shape[1]], rtol=1e-5, atol=1e-6)  # items 1-3: same encodings
    assert not torch.allclose(b[0, -1], a[0, -1])


def test_an_item_causal_recommender_trains_one_pass_saves_and_decodes_like_generate(tmp_path):
    from genrec.recommender.decoding import generate_reference, pad_rows
    from genrec.recommender.fast_beam import constrained_beam_search
    from genrec.recommender.recommender import Recommender
    from genrec.recommender.train import train_recommender
    from genrec.recommender.train_config import TrainConfig

    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=30, num_items=30, seed=4))
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok"))
    config = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                               dropout=0.1, max_history=5, encoder_attention="item_causal")
    state = train_recommender(dataset, sids, tmp_path / "model", config,
                              TrainConfig(batch_size=16, max_steps=6, eval_every=3, eval_users=0, eval_beams=10,
                                          warmup_steps=1), progress=False)
    assert state.step == 6 and state.examples == len(training_examples(dataset))
    recommender = Recommender.load(tmp_path / "model")
    assert recommender.config.encoder_attention == "item_causal" and not recommender.builder.eos
    histories = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]]
    ids, mask = pad_rows([recommender.builder.encode_history(h) for h in histories], "cpu")
    fast_items, fast_scores = constrained_beam_search(recommender.model, ids, mask, recommender.table, 8)
    ref_items, ref_scores = generate_reference(recommender.model, ids, mask, recommender.table, 8)
    np.testing.assert_array_equal(fast_items.numpy(), ref_items.numpy())
    np.testing.assert_allclose(fast_scores.numpy(), ref_scores.numpy(), atol=1e-4)


def test_a_batch_of_chunks_in_any_order_carries_exactly_their_targets(tmp_path):
    dataset, _, builder = setup(tmp_path, max_history=3)
    one_pass = build_sequence_examples(builder, [(u, dataset.train_sequence(u)) for u in range(1, dataset.num_users + 1)])
    chunks = np.array([5, 0, 3])
    batch = one_pass.batch(chunks)
    local = batch["target_chunk"].numpy()
    for i, chunk in enumerate(chunks):
        expected = one_pass.targets[one_pass.target_chunk == chunk]
        np.testing.assert_array_equal(batch["labels"].numpy()[local == i], expected)
        np.testing.assert_array_equal(batch["target_position"].numpy()[local == i],
                                      one_pass.target_position[one_pass.target_chunk == chunk])
    assert len(local) == one_pass.counts[chunks].sum()
