"""Item text and id vectors at per-item encoder positions (recommender.item_input): each position
reads exactly its own item's projected text and id vector, id dropout drops whole items per step
and never at inference, gradients reach both parts, a saved model reloads to the same outputs, and
an unknown SID (an item added after training) reads nothing extra."""

import numpy as np
import pytest
import torch

from genrec.core.errors import GenrecError
from genrec.recommender.data import ExampleBuilder
from genrec.recommender.decoding import pad_rows
from genrec.recommender.encoder_input import encoder_kwargs
from genrec.recommender.item_input import ItemInput
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.recommender import Recommender
from tests.test_encoder_input import TINY, setup


def _text(num_items, dim=6, seed=0):
    return np.random.default_rng(seed).normal(size=(num_items, dim)).astype(np.float32)


def _features_setup(tmp_path, **overrides):
    dataset, sids, vocab, _, _ = setup(tmp_path)
    config = RecommenderConfig(**{**TINY, "item_text": True, "item_ids": True, **overrides})
    text = _text(sids.num_items)
    torch.manual_seed(0)
    model = build_model(config, vocab, vocab.item_tokens(sids.codes), text)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5, per_item=True)
    return dataset, sids, vocab, config, model, builder, text


def test_each_position_finds_its_own_item_from_its_sid_tokens(tmp_path):
    _, sids, vocab, _, model, builder, _ = _features_setup(tmp_path)
    ids, _ = pad_rows([builder.encode_history([3, 1, 4]), builder.encode_history([7])], "cpu")
    found = model.item_input.item_ids(ids)
    assert found.tolist() == [[3, 1, 4, 0], [7, 0, 0, 0]]  # eos and padding are no item
    every = torch.from_numpy(vocab.item_tokens(sids.codes)).unsqueeze(0)
    assert model.item_input.item_ids(every).tolist() == [list(range(1, sids.num_items + 1))]


def test_a_position_adds_its_items_projected_unit_text_and_id_vector(tmp_path):
    _, _, _, _, model, builder, text = _features_setup(tmp_path)
    model.eval()
    ids, _ = pad_rows([builder.encode_history([2, 5])], "cpu")
    embeds = encoder_kwargs(model, ids)["inputs_embeds"]
    table = model.get_input_embeddings().weight
    unit = torch.from_numpy(text[5 - 1] / np.linalg.norm(text[5 - 1]))
    expected = table[builder.table[5]].sum(0) + model.item_input.text_proj.weight @ unit + model.item_input.ids.weight[5]
    torch.testing.assert_close(embeds[0, 1], expected)


def test_id_dropout_drops_whole_items_in_training_and_never_at_inference(tmp_path):
    _, _, _, _, model, builder, _ = _features_setup(tmp_path, item_text=False, id_dropout=0.5)
    ids, _ = pad_rows([builder.encode_history([4, 4, 6])], "cpu")
    module = model.item_input
    module.eval()
    full = module(ids)
    assert torch.equal(full[0, 0], module.ids.weight[4]) and torch.equal(full[0, 2], module.ids.weight[6])
    module.train()
    torch.manual_seed(1)
    draws = [module(ids)[0] for _ in range(200)]
    for out in draws:
        assert torch.equal(out[0], out[1])  # the same item: dropped together or kept together
    kept = np.mean([bool(out[0].abs().sum() > 0) for out in draws])
    assert 0.35 < kept < 0.65  # about 1 - id_dropout


def test_gradients_reach_the_text_projection_and_the_ids_of_history_items(tmp_path):
    _, _, _, _, model, builder, _ = _features_setup(tmp_path, id_dropout=0.0)
    ids, mask = pad_rows([builder.encode_history([2, 5, 8])], "cpu")
    labels = torch.from_numpy(builder.table[9]).unsqueeze(0)
    model.train()
    model(**encoder_kwargs(model, ids), attention_mask=mask, labels=labels).loss.backward()
    grad = model.item_input.ids.weight.grad
    assert model.item_input.text_proj.weight.grad.abs().sum() > 0
    assert all(grad[i].abs().sum() > 0 for i in (2, 5, 8))
    assert grad[1].abs().sum() == 0 and grad[0].abs().sum() == 0  # not in the history; padding row


def test_an_unknown_sid_reads_only_its_tokens(tmp_path):
    _, sids, vocab, _, model, _, _ = _features_setup(tmp_path)
    codes = vocab.item_tokens(sids.codes)
    unknown = codes[0].copy()
    unknown[-1] = vocab.offsets[-1] + sids.position_sizes[-1] - 1  # a suffix no item of these has
    assert not (codes == unknown).all(axis=1).any()
    assert model.item_input.item_ids(torch.from_numpy(unknown)[None, None]).tolist() == [[0]]


def test_a_saved_model_with_item_input_reloads_to_the_same_recommendations(tmp_path):
    dataset, sids, _, config, model, _, _ = _features_setup(tmp_path)
    recommender = Recommender(model, sids, config)
    histories = [dataset.train_sequence(u) for u in range(1, 6)]
    before = recommender.recommend(histories, top_k=5, beams=5)
    recommender.save(tmp_path / "model")
    loaded = Recommender.load(tmp_path / "model")
    assert loaded.model.item_input is not None and loaded.config.item_ids and loaded.config.item_text
    after = loaded.recommend(histories, top_k=5, beams=5)
    np.testing.assert_array_equal(before[0], after[0])
    np.testing.assert_allclose(before[1], after[1], rtol=1e-5)


def test_item_features_need_the_per_item_layout_and_text(tmp_path):
    _, sids, vocab, _, _ = setup(tmp_path)
    tokens = vocab.item_tokens(sids.codes)
    with pytest.raises(GenrecError, match="encoder_input 'items'"):
        build_model(RecommenderConfig(**{**TINY, "encoder_input": "tokens", "item_ids": True}), vocab, tokens)
    with pytest.raises(GenrecError, match="text embeddings"):
        build_model(RecommenderConfig(**{**TINY, "item_text": True}), vocab, tokens, None)
    with pytest.raises(GenrecError, match="id_dropout"):
        build_model(RecommenderConfig(**{**TINY, "item_ids": True, "id_dropout": 1.0}), vocab, tokens)


def test_keys_of_a_wide_vocabulary_are_refused_rather_than_wrapped():
    with pytest.raises(ValueError, match="int64"):
        ItemInput(np.ones((2, 6), dtype=np.int64), 1 << 12, 8)


def test_the_pipeline_trains_and_recommends_with_item_features_from_the_cli(tmp_path, capsys):
    """train-recommender --item-text --item-ids reads the dataset's cached text embeddings, and the
    trained model (its item_input saved beside the T5) recommends through the CLI."""
    import json

    from genrec.cli import main
    from tests.recommender_fixtures import write_dataset, write_embedding_cache, write_tokenizer

    data = write_dataset(tmp_path / "data", num_users=40)
    write_embedding_cache(data, _text(30, dim=8))
    write_tokenizer(data / "tokenizer")
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"model": {**TINY, "num_encoder_layers": 1}, "train": {
        "batch_size": 16, "max_steps": 6, "eval_every": 3, "eval_users": 0, "eval_beams": 10, "warmup_steps": 2}}))
    assert main(["train-recommender", "--dataset", str(data), "--config", str(options), "--item-text", "--item-ids",
                 "--id-dropout", "0.3", "--fusion-weights", "prior=0", "--no-progress", "--threads", "1", "--t5-only"]) == 0
    loaded = Recommender.load(data / "recommender")
    assert loaded.config.item_text and loaded.config.item_ids and loaded.config.id_dropout == 0.3
    assert loaded.model.item_input.text.shape == (31, 8)
    capsys.readouterr()
    assert main(["recommend", "--dataset", str(data), "--user", "1", "--top-k", "3"]) == 0
    assert capsys.readouterr().out.strip()


def test_the_dense_loss_is_the_softmax_cross_entropy_of_the_target_item_added_with_its_weight(tmp_path):
    from genrec.recommender.item_causal import prefix_loss

    _, _, _, _, model, builder, text = _features_setup(tmp_path, dense_loss=0.5, id_dropout=0.0)
    plain = build_model(RecommenderConfig(**{**TINY, "item_text": True, "item_ids": True, "id_dropout": 0.0}),
                        *_vocab_and_tokens(tmp_path), text)
    plain.load_state_dict(model.state_dict(), strict=False)  # the same T5 and item vectors, no dense head
    model.eval(), plain.eval()
    ids, mask = pad_rows([builder.encode_history([2, 5, 8]), builder.encode_history([4])], "cpu")
    labels = torch.from_numpy(builder.table[[9, 3]])
    module = model.item_input
    with torch.no_grad():
        hidden = model.get_encoder()(**encoder_kwargs(model, ids), attention_mask=mask).last_hidden_state
        pooled = torch.stack([hidden[0, :4].mean(0), hidden[1, :2].mean(0)])  # eos included, padding not
        items = torch.arange(1, module.num_items + 1)
        vectors = module.text_proj(module.text[items]) + module.ids.weight[items]
        logits = module.dense_head(pooled) @ vectors.T
        dense = torch.nn.functional.cross_entropy(logits, torch.tensor([9 - 1, 3 - 1]))
        expected = prefix_loss(plain, ids, mask, labels) + 0.5 * dense
        torch.testing.assert_close(prefix_loss(model, ids, mask, labels), expected)
    model.train()
    prefix_loss(model, ids, mask, labels).backward()
    assert module.dense_head.weight.grad.abs().sum() > 0
    assert module.ids.weight.grad[7].abs().sum() > 0  # item 7 is no input: only the dense softmax reaches it


def _vocab_and_tokens(tmp_path):
    _, sids, vocab, _, _ = setup(tmp_path / "again")
    return vocab, vocab.item_tokens(sids.codes)


def test_the_dense_loss_needs_item_vectors(tmp_path):
    vocab, tokens = _vocab_and_tokens(tmp_path)
    with pytest.raises(GenrecError, match="dense_loss needs item vectors"):
        build_model(RecommenderConfig(**{**TINY, "dense_loss": 1.0}), vocab, tokens)


def test_label_smoothing_changes_the_training_loss_only_and_zero_is_t5s_own_loss(tmp_path):
    from genrec.recommender.item_causal import prefix_loss

    _, sids, vocab, _, _ = setup(tmp_path)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5, per_item=True)
    ids, mask = pad_rows([builder.encode_history([2, 5, 8]), builder.encode_history([4])], "cpu")
    labels = torch.from_numpy(builder.table[[9, 3]])
    torch.manual_seed(0)
    smooth = build_model(RecommenderConfig(**{**TINY, "label_smoothing": 0.2}), vocab)
    plain = build_model(RecommenderConfig(**TINY), vocab)
    plain.load_state_dict(smooth.state_dict())
    smooth.train(), plain.train()
    logits = plain(**encoder_kwargs(plain, ids), attention_mask=mask, labels=labels).logits
    reference = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten(), label_smoothing=0.2)
    torch.testing.assert_close(prefix_loss(smooth, ids, mask, labels), reference)
    assert prefix_loss(plain, ids, mask, labels) < reference  # smoothing's extra entropy term
    smooth.eval()
    torch.testing.assert_close(prefix_loss(smooth, ids, mask, labels), prefix_loss(plain.eval(), ids, mask, labels))


def _dense_setup(tmp_path, id_dropout: float):
    """A model with the dense head, two histories ([2, 5, 8] and [4]) and their targets (9, 3)."""
    _, _, _, _, model, builder, _ = _features_setup(tmp_path, dense_loss=1.0, id_dropout=id_dropout)
    ids, mask = pad_rows([builder.encode_history([2, 5, 8]), builder.encode_history([4])], "cpu")
    return model, ids, mask, torch.from_numpy(builder.table[[9, 3]])


def test_the_sampled_dense_loss_is_the_cross_entropy_over_the_targets_and_drawn_items(tmp_path):
    from genrec.recommender.item_input import dense_item_loss

    model, ids, mask, labels = _dense_setup(tmp_path, id_dropout=0.0)
    model.eval()
    module = model.item_input
    with torch.no_grad():
        hidden = model.get_encoder()(**encoder_kwargs(model, ids), attention_mask=mask).last_hidden_state
        torch.manual_seed(5)
        got = dense_item_loss(module, hidden, mask, labels, negatives=6)
        torch.manual_seed(5)
        drawn = torch.randint(1, module.num_items + 1, (6,))
        candidates = torch.unique(torch.cat([torch.tensor([9, 3]), drawn]))
        pooled = torch.stack([hidden[0, :4].mean(0), hidden[1, :2].mean(0)])
        logits = module.dense_head(pooled) @ module.item_vectors(candidates).T
        positions = torch.tensor([int((candidates == 9).nonzero()), int((candidates == 3).nonzero())])
        torch.testing.assert_close(got, torch.nn.functional.cross_entropy(logits, positions))
        assert len(candidates) < module.num_items
        full = dense_item_loss(module, hidden, mask, labels, negatives=module.num_items)  # all items: the full softmax
        every = module.dense_head(pooled) @ module.item_vectors(torch.arange(1, module.num_items + 1)).T
        torch.testing.assert_close(full, torch.nn.functional.cross_entropy(every, torch.tensor([8, 2])))


def test_the_dense_loss_drops_the_ids_the_encoder_input_dropped_in_the_same_pass(tmp_path):
    from genrec.recommender.item_input import dense_item_loss

    model, ids, mask, labels = _dense_setup(tmp_path, id_dropout=0.5)
    model.train()
    module = model.item_input
    torch.manual_seed(1)
    hidden = model.get_encoder()(**encoder_kwargs(model, ids), attention_mask=mask).last_hidden_state
    keep = module.keep
    assert keep is not None and not keep[1:].all() and keep[1:].any()  # this pass dropped some ids, not all
    got = dense_item_loss(module, hidden, mask, labels, negatives=0)
    pooled = torch.stack([hidden[0, :4].mean(0), hidden[1, :2].mean(0)])
    every = module.dense_head(pooled) @ module.item_vectors(torch.arange(1, module.num_items + 1), keep).T
    torch.testing.assert_close(got, torch.nn.functional.cross_entropy(every, torch.tensor([8, 2])))
    model.eval()
    model.get_encoder()(**encoder_kwargs(model, ids), attention_mask=mask)
    assert module.keep is None  # no dropout at inference
