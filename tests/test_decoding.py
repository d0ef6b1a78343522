"""The decode path: ``recommend_items`` (fast beam search) equals plain ``generate`` + the trie
LogitsProcessor, ignores a saved generation config, and does not depend on batching."""

import numpy as np
import torch
from transformers import GenerationConfig

from genrec.recommender.data import ExampleBuilder
from genrec.recommender.decoding import generate_reference, pad_rows, recommend_items
from genrec.recommender.fast_beam import constrained_beam_search
from genrec.recommender.model import RecommenderConfig, build_model
from genrec.recommender.vocab import SidVocab
from tests.recommender_fixtures import write_tokenizer
from genrec.tokenizer.artifact import load_semantic_ids

TINY_MODEL = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=2, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                               max_history=5)
HISTORIES = [[1, 2, 3], [7], [10, 11, 12, 13, 14, 15, 16], [40, 2]]


def setup(tmp_path, num_items=80):
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok", num_items=num_items, sizes=(6, 5, 4)))
    vocab = SidVocab.for_semantic_ids(sids)
    torch.manual_seed(0)
    model = build_model(TINY_MODEL, vocab).eval()
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, TINY_MODEL.max_history)
    return model, builder, vocab.prefix_table(sids.codes)


def test_fast_path_equals_generate_with_logits_processor(tmp_path):
    model, builder, table = setup(tmp_path)
    ids, mask = pad_rows([builder.encode_history(h) for h in HISTORIES], "cpu")  # padded rows included
    ref_rows, ref_scores = generate_reference(model, ids, mask, table, num_beams=12)
    rows, scores = constrained_beam_search(model, ids, mask, table, 12)
    np.testing.assert_array_equal(rows.numpy(), ref_rows.numpy())
    np.testing.assert_allclose(scores.numpy(), ref_scores.numpy(), atol=1e-4)


def test_saved_generation_config_cannot_change_decoding(tmp_path):
    model, builder, table = setup(tmp_path)
    ids, mask = pad_rows([builder.encode_history(h) for h in HISTORIES], "cpu")
    clean = generate_reference(model, ids, mask, table, num_beams=8)
    model.generation_config = GenerationConfig(num_beams=2, repetition_penalty=5.0, no_repeat_ngram_size=1,
                                               length_penalty=3.0, do_sample=True, top_k=2)
    hostile = generate_reference(model, ids, mask, table, num_beams=8)
    np.testing.assert_array_equal(clean[0].numpy(), hostile[0].numpy())
    np.testing.assert_allclose(clean[1].numpy(), hostile[1].numpy(), atol=1e-5)
    assert model.generation_config.repetition_penalty == 5.0  # restored after the call


def test_recommendations_do_not_depend_on_batch_size(tmp_path):
    model, builder, table = setup(tmp_path)
    items_1, scores_1 = recommend_items(model, builder, table, HISTORIES, 10, batch_size=1)
    items_all, scores_all = recommend_items(model, builder, table, HISTORIES, 10, batch_size=64)
    # batch_size 2 regroups the users by history length ([7] with [40, 2]): results still come back in input order.
    items_2, scores_2 = recommend_items(model, builder, table, HISTORIES, 10, batch_size=2)
    for items, scores in ((items_all, scores_all), (items_2, scores_2)):
        np.testing.assert_array_equal(items_1, items)
        np.testing.assert_allclose(scores_1, scores, atol=1e-5)
    assert (items_1 >= 1).all() and (items_1 <= 80).all()  # 1-based item ids
    assert (np.diff(scores_1, axis=1) <= 1e-6).all()  # best first
