"""The fast beam search must return exactly what HF generate + a trie constraint returns."""

import numpy as np
import pytest
import torch
from transformers import T5Config, T5ForConditionalGeneration

from genrec.recommender.fast_beam import constrained_beam_search
from genrec.recommender.trie import SidPrefixTable


def make_catalog(num_items=60, sizes=(5, 4, 3), seed=0):
    """Random distinct codes for L levels plus a collision suffix column."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, sizes, size=(num_items, len(sizes)))
    suffix = np.zeros(num_items, dtype=np.int64)
    seen = {}
    for i, row in enumerate(map(tuple, codes)):
        suffix[i] = seen.get(row, 0)
        seen[row] = suffix[i] + 1
    full = np.concatenate([codes, suffix[:, None]], axis=1)
    all_sizes = (*sizes, int(suffix.max()) + 1)
    offsets = tuple(2 + int(x) for x in np.cumsum((0, *all_sizes[:-1])))
    return full, all_sizes, offsets


def make_model(vocab_size, seed=0, **overrides):
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, num_heads=4, d_ff=64, num_layers=2, num_decoder_layers=2,
        dropout_rate=0.0, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0, **overrides,
    )
    return T5ForConditionalGeneration(config).eval()


def reference_beams(model, input_ids, attention_mask, codes, offsets, num_beams):
    """Plain HF generate, constrained by a straightforward prefix function."""
    sids = {tuple(int(c) + o for c, o in zip(row, offsets)): i + 1 for i, row in enumerate(codes)}  # item ids
    prefixes = {}
    for sid in sids:
        for d in range(len(sid)):
            prefixes.setdefault(sid[:d], set()).add(sid[d])

    def allowed(_, generated):
        return sorted(prefixes.get(tuple(generated[1:].tolist()), {model.config.eos_token_id}))

    out = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, num_return_sequences=num_beams,
        do_sample=False, max_new_tokens=len(offsets), min_new_tokens=len(offsets), length_penalty=0.0,
        early_stopping=True, prefix_allowed_tokens_fn=allowed, output_scores=True, return_dict_in_generate=True,
    )
    seqs = out.sequences[:, 1 : 1 + len(offsets)].tolist()
    items = np.array([sids[tuple(s)] for s in seqs]).reshape(input_ids.shape[0], num_beams)
    return items, out.sequences_scores.view(input_ids.shape[0], num_beams).numpy()


@pytest.mark.parametrize("overrides", [{}, {"feed_forward_proj": "gated-gelu"}])
def test_fast_path_matches_generate(overrides):
    codes, sizes, offsets = make_catalog()
    model = make_model(offsets[-1] + sizes[-1], **overrides)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    rng = np.random.default_rng(1)
    input_ids = torch.tensor(rng.integers(2, offsets[-1], size=(5, 7)))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 4:] = 0  # padded histories must be handled identically
    attention_mask[3, 2:] = 0
    input_ids = input_ids.masked_fill(attention_mask == 0, 0)
    num_beams = 8
    ref_items, ref_scores = reference_beams(model, input_ids, attention_mask, codes, offsets, num_beams)
    items, scores = constrained_beam_search(model, input_ids, attention_mask, table, num_beams)
    np.testing.assert_array_equal(items.numpy(), ref_items)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=1e-4, atol=1e-4)


def test_fast_path_matches_generate_on_a_trained_model():
    """A trained model has peaked, structured distributions (unlike a random one): still identical."""
    codes, sizes, offsets = make_catalog(num_items=40, sizes=(4, 4, 3), seed=4)
    model = make_model(offsets[-1] + sizes[-1], seed=1).train()
    sid_tokens = torch.tensor(codes) + torch.tensor(offsets)
    rng = np.random.default_rng(0)
    histories = torch.tensor(rng.integers(0, len(codes), size=(64, 3)))
    input_ids = sid_tokens[histories].flatten(1)  # 3 items' SIDs, 12 tokens
    targets = sid_tokens[(histories.sum(1) * 7) % len(codes)]  # next item: a fixed function of the history
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first_loss = None
    for _ in range(120):
        loss = model(input_ids=input_ids, labels=targets).loss
        first_loss = first_loss if first_loss is not None else loss.item()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    assert loss.item() < 0.5 * first_loss  # it did learn
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    batch, mask = input_ids[:12], torch.ones_like(input_ids[:12])
    ref_items, ref_scores = reference_beams(model, batch, mask, codes, offsets, 10)
    items, scores = constrained_beam_search(model, batch, mask, table, 10)
    np.testing.assert_array_equal(items.numpy(), ref_items)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=1e-4, atol=1e-4)


def test_a_skewed_trie_where_one_prefix_has_most_items_matches_generate():
    """Beams whose prefixes have 1 child and one with 25 (packed per user, not padded to the widest)."""
    rng = np.random.default_rng(7)
    crowded = np.column_stack([np.zeros((25, 2), dtype=np.int64), np.arange(25)])  # 25 items on prefix (0, 0)
    spread = np.column_stack([1 + np.arange(15) // 3, np.arange(15) % 3, np.zeros(15, np.int64)])  # one child each
    codes = np.concatenate([crowded, spread])
    sizes = (6, 3, 25)
    offsets = tuple(2 + int(x) for x in np.cumsum((0, *sizes[:-1])))
    model = make_model(offsets[-1] + sizes[-1], seed=3)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    input_ids = torch.tensor(rng.integers(2, offsets[-1], size=(6, 5)))
    mask = torch.ones_like(input_ids)
    ref_items, ref_scores = reference_beams(model, input_ids, mask, codes, offsets, 12)
    items, scores = constrained_beam_search(model, input_ids, mask, table, 12)
    np.testing.assert_array_equal(items.numpy(), ref_items)
    np.testing.assert_allclose(scores.numpy(), ref_scores, rtol=1e-4, atol=1e-4)


def test_every_output_is_a_distinct_real_item():
    codes, sizes, offsets = make_catalog(num_items=200, sizes=(8, 8, 8), seed=3)
    model = make_model(offsets[-1] + sizes[-1], seed=5)
    with torch.no_grad():  # random, large logits make invalid tokens attractive
        model.lm_head.weight.mul_(50)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    input_ids = torch.randint(2, offsets[-1], (16, 10))
    items, scores = constrained_beam_search(model, input_ids, torch.ones_like(input_ids), table, num_beams=30)
    assert ((items >= 1) & (items <= 200)).all() and torch.isfinite(scores).all()  # item ids
    for row in items.tolist():
        assert len(set(row)) == len(row)
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_fewer_items_than_beams_pads_with_misses():
    codes, sizes, offsets = make_catalog(num_items=6, sizes=(3, 2, 2), seed=2)
    model = make_model(offsets[-1] + sizes[-1])
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    input_ids = torch.randint(2, offsets[-1], (2, 4))
    items, scores = constrained_beam_search(model, input_ids, torch.ones_like(input_ids), table, num_beams=10)
    for row, row_scores in zip(items.tolist(), scores.tolist()):
        assert sorted(item for item in row if item > 0) == list(range(1, 7))
        assert row.count(0) == 4 and all(np.isinf(s) for item, s in zip(row, row_scores) if item == 0)


def test_duplicate_full_sid_is_rejected():
    codes = np.array([[0, 1, 0], [0, 1, 0]])
    with pytest.raises(ValueError, match="share a full Semantic ID"):
        SidPrefixTable.from_codes(codes, (2, 4, 6), (2, 2, 1))
