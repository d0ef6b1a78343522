"""The SID trie: the vectorized LogitsProcessor against a brute-force prefix set,
and 100% valid, distinct outputs from plain ``generate`` under wild random logits."""

import numpy as np
import torch

from genrec.recommender.constraint import TrieLogitsProcessor, prefix_states
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
    np.testing.assert_array_equal(prefix_states(table, full).numpy(), np.arange(1, len(tokens) + 1))  # item ids


def test_generate_with_random_logits_gives_only_valid_distinct_items(tmp_path):
    sids, vocab, table = catalog(tmp_path)
    torch.manual_seed(0)
    model = build_model(TINY_MODEL, vocab).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 30)  # wild logits: most mass on invalid tokens
    input_ids = torch.randint(2, vocab.vocab_size, (6, 12))
    items, scores = generate_reference(model, input_ids, torch.ones_like(input_ids), table, num_beams=30)
    assert torch.isfinite(scores).all()
    for row in items.tolist():  # an item id is only reached by a full walk of the trie
        assert len(set(row)) == len(row) == 30 and all(1 <= item <= sids.num_items for item in row)


def test_generate_with_fewer_items_than_beams_returns_every_item_then_misses(tmp_path):
    sids, vocab, table = catalog(tmp_path, num_items=6, sizes=(3, 2, 2), seed=2)
    model = build_model(TINY_MODEL, vocab).eval()
    input_ids = torch.randint(2, vocab.vocab_size, (2, 5))
    items, _ = generate_reference(model, input_ids, torch.ones_like(input_ids), table, num_beams=10)
    for row in items.tolist():
        assert sorted(item for item in row if item > 0) == list(range(1, 7))
