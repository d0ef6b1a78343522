"""The SID trie: marisa index, the vectorized LogitsProcessor against a brute-force prefix set,
and 100% valid, distinct outputs from plain ``generate`` under wild random logits."""

import numpy as np
import torch

from genrec.recommender.constraint import SidIndex, TrieLogitsProcessor, prefix_states
from genrec.recommender.decoding import generate_reference
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.vocab import EOS_TOKEN, SidVocab
from tests.recommender_fixtures import write_tokenizer
from genrec.tokenizer.artifact import load_semantic_ids

TINY_MODEL = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32)


def catalog(tmp_path, num_items=60, sizes=(5, 5, 5), seed=0):
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok", num_items=num_items, sizes=sizes, seed=seed))
    vocab = SidVocab.for_semantic_ids(sids)
    return sids, vocab, vocab.prefix_table(sids.codes)


def test_marisa_index_finds_every_item_and_rejects_others(tmp_path):
    sids, _, _ = catalog(tmp_path)
    index = SidIndex(sids.codes)
    assert [index.item_row(row) for row in sids.codes] == list(range(sids.num_items))
    assert not index.is_valid([99, 0, 0, 0]) and not index.is_valid([*sids.codes[0][:-1], 7])
    assert index.has_prefix(sids.codes[5][:2]) and not index.has_prefix([42])


def test_processor_allows_exactly_the_trie_continuations(tmp_path):
    sids, vocab, table = catalog(tmp_path, num_items=40, sizes=(4, 3, 3), seed=1)
    tokens = vocab.item_tokens(sids.codes)
    allowed_after = {}  # brute force: prefix tuple -> set of next tokens
    for row in tokens.tolist():
        for d in range(len(row)):
            allowed_after.setdefault(tuple(row[:d]), set()).add(row[d])
    rng = np.random.default_rng(0)
    processor = TrieLogitsProcessor(table)
    for step in range(len(vocab.position_sizes) + 1):
        # half the rows are real prefixes, half are random tokens (mostly off the trie)
        real = tokens[rng.integers(0, len(tokens), 8), :step]
        noise = rng.integers(0, vocab.vocab_size, size=(8, step))
        prefixes = np.concatenate([real, noise])
        input_ids = torch.from_numpy(np.concatenate([np.zeros((16, 1), dtype=np.int64), prefixes], axis=1))
        scores = processor(input_ids, torch.randn(16, vocab.vocab_size))
        for prefix, row in zip(prefixes.tolist(), scores):
            got = set(torch.nonzero(torch.isfinite(row)).flatten().tolist())
            if step == len(vocab.position_sizes):
                assert got == {EOS_TOKEN}
            else:
                assert got == allowed_after.get(tuple(prefix), set()), (step, prefix)
    full = torch.from_numpy(tokens)
    np.testing.assert_array_equal(prefix_states(table, full).numpy(), np.arange(len(tokens)))


def test_generate_with_random_logits_gives_only_valid_distinct_items(tmp_path):
    sids, vocab, table = catalog(tmp_path)
    index = SidIndex(sids.codes)
    torch.manual_seed(0)
    model = build_model(TINY_MODEL, vocab).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 30)  # wild logits: most mass on invalid tokens
    input_ids = torch.randint(2, vocab.vocab_size, (6, 12))
    rows, scores = generate_reference(model, input_ids, torch.ones_like(input_ids), table, num_beams=30)
    assert (rows >= 0).all() and torch.isfinite(scores).all()
    for row in rows.tolist():
        assert len(set(row)) == len(row) == 30
        assert all(index.is_valid(sids.codes[r]) for r in row)


def test_generate_with_fewer_items_than_beams_returns_every_item_then_misses(tmp_path):
    sids, vocab, table = catalog(tmp_path, num_items=6, sizes=(3, 2, 2), seed=2)
    model = build_model(TINY_MODEL, vocab).eval()
    input_ids = torch.randint(2, vocab.vocab_size, (2, 5))
    rows, _ = generate_reference(model, input_ids, torch.ones_like(input_ids), table, num_beams=10)
    for row in rows.tolist():
        assert sorted(r for r in row if r >= 0) == list(range(6))
