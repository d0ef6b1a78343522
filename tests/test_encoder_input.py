"""One encoder position per item (encoder_input="items"): rows hold the same SID tokens as the
token layout, an item's input is the sum of its tokens' embeddings, gradients reach every one of
them, and the model trains, saves, reloads and decodes (fast beam == generate) like the default."""

import numpy as np
import pytest
import torch

from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.data import ExampleBuilder, training_examples
from genrec.recommender.decoding import generate_reference, pad_rows
from genrec.recommender.encoder_input import attention_mask_of, encoder_kwargs
from genrec.recommender.fast_beam import constrained_beam_search
from genrec.recommender.item_causal import build_sequence_examples, encoder_hidden, one_pass_loss, prefix_loss
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.vocab import EOS_TOKEN, PAD_TOKEN, SidVocab
from genrec.tokenizer.artifact import load_semantic_ids
from tests.recommender_fixtures import write_dataset, write_tokenizer

TINY = dict(num_encoder_layers=2, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32, dropout=0.0,
            max_history=5, encoder_input="items")


def setup(tmp_path, user_buckets=0, **overrides):
    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=14, num_items=30, seed=5))
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok"))
    vocab = SidVocab.for_semantic_ids(sids, user_buckets)
    config = RecommenderConfig(**{**TINY, "num_user_buckets": user_buckets, **overrides})
    torch.manual_seed(0)
    return dataset, sids, vocab, config, build_model(config, vocab)


@pytest.mark.parametrize("user_buckets", [0, 3])
def test_a_per_item_row_holds_the_token_rows_tokens_one_item_a_position(tmp_path, user_buckets):
    _, sids, vocab, config, _ = setup(tmp_path, user_buckets)
    tokens = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5)
    items = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5, per_item=True)
    history = [3, 1, 4, 1, 5, 9, 2]
    flat, grouped = tokens.encode_history(history, user_id=7), items.encode_history(history, user_id=7)
    assert grouped.shape == (5 + 1 + int(bool(user_buckets)), sids.codes.shape[1])  # 5 items (+ user) + eos
    assert grouped[-1].tolist() == [EOS_TOKEN] + [PAD_TOKEN] * (grouped.shape[1] - 1)
    assert grouped[grouped != PAD_TOKEN].tolist() == flat.tolist()  # same tokens, same order
    np.testing.assert_array_equal(grouped[int(bool(user_buckets)):-1], tokens.table[history[-5:]])
    assert items.max_len == len(grouped) and tokens.max_len == len(flat)


def test_an_item_position_is_the_sum_of_its_token_embeddings_and_padding_adds_nothing(tmp_path):
    _, sids, vocab, _, model = setup(tmp_path)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5, per_item=True)
    ids, mask = pad_rows([builder.encode_history([1, 2, 3]), builder.encode_history([4])], "cpu")
    assert mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    embeds = encoder_kwargs(model, ids)["inputs_embeds"]
    table = model.get_input_embeddings().weight
    torch.testing.assert_close(embeds[0, 1], table[builder.table[2]].sum(0))
    torch.testing.assert_close(embeds[0, 3], table[EOS_TOKEN])
    torch.testing.assert_close(embeds[1, 2:], torch.zeros_like(embeds[1, 2:]))
    with torch.no_grad():
        before = encoder_hidden(model.eval(), ids, mask)
        table[PAD_TOKEN] += 5.0  # the pad embedding must not leak into any position
        after = encoder_hidden(model, ids, mask)
    torch.testing.assert_close(before * mask[..., None], after * mask[..., None])


def test_each_history_token_embedding_gets_its_items_input_gradient(tmp_path):
    """The table's gradient = (gradient through the decoder and the tied output layer, the encoder
    input detached) + each item position's input gradient added to every token of that item."""
    dataset, sids, vocab, _, model = setup(tmp_path)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5, per_item=True)
    batch = builder.build(training_examples(dataset)[:8]).batch(np.arange(8))
    ids, mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    table = model.get_input_embeddings().weight

    inputs = encoder_kwargs(model, ids)["inputs_embeds"]
    inputs.retain_grad()
    model(inputs_embeds=inputs, attention_mask=mask, labels=labels).loss.backward()
    full, per_position = table.grad.clone(), inputs.grad.clone()
    assert (per_position[mask.bool()].abs().sum(-1) > 0).all()  # every real position feeds the loss
    assert per_position[~mask.bool()].abs().sum() == 0  # padding positions feed nothing

    model.zero_grad()
    model(inputs_embeds=encoder_kwargs(model, ids)["inputs_embeds"].detach(), attention_mask=mask,
          labels=labels).loss.backward()
    expected = table.grad.clone()
    valid = ids != PAD_TOKEN
    expected.index_add_(0, ids[valid], per_position[:, :, None, :].expand(*ids.shape, -1)[valid])
    torch.testing.assert_close(full, expected, rtol=1e-4, atol=1e-7)


def test_micro_batches_give_the_padded_batchs_gradient_with_per_item_rows(tmp_path):
    from genrec.recommender.train import accumulate_gradients

    dataset, sids, vocab, _, model = setup(tmp_path)
    train = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5, per_item=True).build(training_examples(dataset))
    index = np.arange(min(len(train), 40))
    assert len(set(train.lengths[index])) > 2
    model.zero_grad()
    prefix_loss(model, **train.batch(index)).backward()
    whole = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    accumulate_gradients(model, train, index, 3)
    for name, expected in whole.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, expected, rtol=1e-4, atol=1e-6, msg=name)


def test_item_causal_with_per_item_rows_one_pass_equals_every_prefix(tmp_path):
    dataset, sids, vocab, config, model = setup(tmp_path, encoder_attention="item_causal")
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5, eos=False, per_item=True)
    one_pass = build_sequence_examples(builder, [(u, dataset.train_sequence(u)) for u in range(1, dataset.num_users + 1)])
    rows = [one_pass.inputs[c, :p] for c, p in zip(one_pass.target_chunk, one_pass.target_position)]
    ids, mask = pad_rows(rows, "cpu")
    reference = prefix_loss(model, ids, mask, torch.from_numpy(one_pass.targets))
    loss = one_pass_loss(model, one_pass.batch(np.arange(len(one_pass.lengths))))
    torch.testing.assert_close(loss, reference, rtol=1e-5, atol=1e-6)
    short, long = (torch.from_numpy(builder.encode_history(h))[None] for h in ([1, 2, 3], [1, 2, 3, 7, 9]))
    with torch.no_grad():
        a = encoder_hidden(model.eval(), short, attention_mask_of(short))
        b = encoder_hidden(model, long, attention_mask_of(long))
    torch.testing.assert_close(a[0], b[0, :3], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attention", ["bidirectional", "item_causal"])
def test_a_per_item_recommender_trains_reloads_and_decodes_like_generate(tmp_path, attention):
    from genrec.recommender.recommender import Recommender
    from genrec.recommender.train import train_recommender
    from genrec.recommender.train_config import TrainConfig

    dataset, sids, _, config, _ = setup(tmp_path, user_buckets=3, encoder_attention=attention, dropout=0.1)
    state = train_recommender(dataset, sids, tmp_path / "model", config,
                              TrainConfig(batch_size=16, max_steps=6, eval_every=3, eval_users=0, eval_beams=10,
                                          warmup_steps=1), progress=False)
    assert state.step == 6
    recommender = Recommender.load(tmp_path / "model")
    assert recommender.config.encoder_input == "items" and recommender.builder.per_item
    histories, users = [[1, 2, 3], [4, 5, 6, 7, 8, 9], [10]], [1, 2, 0]
    items, scores = recommender.recommend(histories, top_k=8, users=users)
    again, again_scores = Recommender.load(tmp_path / "model").recommend(histories, top_k=8, users=users)
    np.testing.assert_array_equal(items, again)
    np.testing.assert_array_equal(scores, again_scores)
    assert (items >= 1).all() and (items <= sids.num_items).all()  # every output is a real item
    ids, mask = pad_rows([recommender.builder.encode_history(h, u) for h, u in zip(histories, users)], "cpu")
    fast_items, fast_scores = constrained_beam_search(recommender.model, ids, mask, recommender.table, 8)
    ref_items, ref_scores = generate_reference(recommender.model, ids, mask, recommender.table, 8)
    np.testing.assert_array_equal(fast_items.numpy(), ref_items.numpy())
    np.testing.assert_allclose(fast_scores.numpy(), ref_scores.numpy(), atol=1e-4)
    np.testing.assert_array_equal(fast_items.numpy(), items)


def test_an_unknown_encoder_input_is_a_clear_error(tmp_path):
    from genrec.core.errors import GenrecError

    _, sids, vocab, _, _ = setup(tmp_path)
    with pytest.raises(GenrecError, match="encoder_input must be one of tokens, items"):
        build_model(RecommenderConfig(**{**TINY, "encoder_input": "words"}), vocab)
