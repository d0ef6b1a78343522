"""Stage two: vocabulary, constraint, metrics, training resume, save/load and errors."""

import itertools

import numpy as np
import pytest
import torch

from data_prep.dataset import load_processed_dataset
from eval.ranking_metrics import ranking_metrics
from genrec.cli import main
from genrec.errors import GenrecError
from recommender.artifact import load_recommender
from recommender.constraint import SidIndex
from recommender.data import ExampleBuilder
from recommender.decoding import generate_reference, pad_rows, recommend_items
from recommender.fast_beam import constrained_beam_search
from recommender.model import RecommenderConfig, build_model
from recommender.train import TrainConfig, train_recommender
from recommender.vocab import EOS_TOKEN, PAD_TOKEN, SidVocab
from tests.recommender_fixtures import write_dataset, write_tokenizer
from tokenizer.artifact import load_semantic_ids

TINY_MODEL = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                               dropout=0.1, max_history=5)


def test_vocab_ranges_are_disjoint_and_round_trip():
    vocab = SidVocab((5, 4, 3, 2), num_user_buckets=7)
    ranges = [set(range(o, o + s)) for o, s in zip(vocab.offsets, vocab.position_sizes)]
    assert all(not (a & b) for a, b in itertools.combinations(ranges, 2))
    assert min(min(r) for r in ranges) == 2 and PAD_TOKEN == 0 and EOS_TOKEN == 1
    assert vocab.user_offset == 2 + 14 and vocab.vocab_size == 2 + 14 + 7
    codes = np.array([[4, 3, 2, 1], [0, 0, 0, 0]])
    np.testing.assert_array_equal(vocab.token_codes(vocab.item_tokens(codes)), codes)
    assert vocab.user_offset <= vocab.user_token(12345) < vocab.vocab_size


def brute_force(ranked, targets, k):
    recall = ndcg = mrr = 0.0
    for row, target in zip(ranked, targets):
        for position, item in enumerate(row, start=1):
            if item == target:
                mrr += 1 / position
                if position <= k:
                    recall += 1
                    ndcg += 1 / np.log2(position + 1)
    n = len(targets)
    return recall / n, ndcg / n, mrr / n


def test_ranking_metrics_match_brute_force():
    rng = np.random.default_rng(0)
    ranked = np.stack([rng.permutation(50)[:30] for _ in range(200)])
    targets = rng.integers(0, 50, size=200)
    metrics = ranking_metrics(ranked, targets)
    for k in (5, 10, 20, 30):
        recall, ndcg, mrr = brute_force(ranked, targets, k)
        assert metrics[f"recall@{k}"] == pytest.approx(recall)
        assert metrics[f"ndcg@{k}"] == pytest.approx(ndcg)
    assert metrics["mrr"] == pytest.approx(mrr)


def test_untrained_model_with_random_logits_emits_only_valid_distinct_items(tmp_path):
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok", num_items=60, sizes=(5, 5, 5)))
    vocab = SidVocab.for_semantic_ids(sids)
    model = build_model(TINY_MODEL, vocab).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 30)  # wild logits: most mass on invalid tokens
    index = SidIndex(sids.codes)
    table = vocab.prefix_table(sids.codes)
    input_ids = torch.randint(2, vocab.vocab_size, (6, 12))
    mask = torch.ones_like(input_ids)
    rows, _ = generate_reference(model, input_ids, mask, table, num_beams=30)
    fast_rows, _ = constrained_beam_search(model, input_ids, mask, table, 30)
    for row_set in (rows, fast_rows):
        assert (row_set >= 0).all()
        for row in row_set.tolist():
            assert len(set(row)) == len(row)
            assert all(index.is_valid(sids.codes[r]) for r in row)
    assert not index.is_valid([99, 0, 0, 0]) and index.has_prefix(sids.codes[0][:2])


def test_fast_path_equals_generate_with_logits_processor(tmp_path):
    sids = load_semantic_ids(write_tokenizer(tmp_path / "tok", num_items=80, sizes=(6, 5, 4)))
    vocab = SidVocab.for_semantic_ids(sids)
    model = build_model(TINY_MODEL, vocab).eval()
    table = vocab.prefix_table(sids.codes)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, 5)
    histories = [[1, 2, 3], [7], [10, 11, 12, 13, 14, 15, 16]]
    ids, mask = pad_rows([builder.encode_history(h) for h in histories], "cpu")
    ref_rows, ref_scores = generate_reference(model, ids, mask, table, num_beams=10)
    rows, scores = constrained_beam_search(model, ids, mask, table, 10)
    np.testing.assert_array_equal(rows.numpy(), ref_rows.numpy())
    np.testing.assert_allclose(scores.numpy(), ref_scores.numpy(), atol=1e-4)


def _train(tmp_path, out, stop_after_steps=None, max_steps=12):
    dataset = load_processed_dataset(tmp_path / "data")
    sids = load_semantic_ids(tmp_path / "tok")
    config = TrainConfig(batch_size=16, max_steps=max_steps, eval_every=4, eval_users=0, eval_beams=10,
                         patience=100, warmup_steps=2, lr=3e-3)
    return train_recommender(dataset, sids, out, TINY_MODEL, config, progress=False, stop_after_steps=stop_after_steps)


@pytest.fixture
def tiny(tmp_path):
    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    return tmp_path


def test_resume_after_interrupt_matches_uninterrupted_run(tiny):
    torch.manual_seed(0)
    _train(tiny, tiny / "full")
    interrupted = _train(tiny, tiny / "resumed", stop_after_steps=8)  # "killed" after the step-8 checkpoint
    assert interrupted["step"] == 8 and not (tiny / "resumed" / "genrec.json").exists()
    final = _train(tiny, tiny / "resumed")
    assert final["step"] == 12 and (tiny / "resumed" / "genrec.json").is_file()
    a = load_recommender(tiny / "full").model.state_dict()
    b = load_recommender(tiny / "resumed").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


def test_saved_model_reloads_to_identical_recommendations(tiny):
    _train(tiny, tiny / "model", max_steps=8)
    first = load_recommender(tiny / "model")
    second = load_recommender(tiny / "model")
    builder = ExampleBuilder(first.vocab.item_tokens(first.sids.codes), first.vocab, first.config.max_history)
    table = first.vocab.prefix_table(first.sids.codes)
    histories = [[1, 2, 3], [5, 6], [20, 21, 22, 23]]
    items_a, scores_a = recommend_items(first.model, builder, table, histories, 10)
    items_b, scores_b = recommend_items(second.model, builder, table, histories, 10)
    np.testing.assert_array_equal(items_a, items_b)
    np.testing.assert_allclose(scores_a, scores_b)
    assert (items_a > 0).all()


def test_mismatched_tokenizer_and_bad_inputs_are_clear_errors(tiny, capsys):
    _train(tiny, tiny / "model", max_steps=4)
    other = write_tokenizer(tiny / "other", seed=5)
    with pytest.raises(GenrecError, match="not the one this recommender was trained on"):
        load_recommender(tiny / "model", tokenizer=other)
    with pytest.raises(GenrecError, match="not a trained recommender"):
        load_recommender(tiny / "nowhere")
    model, data = str(tiny / "model"), str(tiny / "data")
    assert main(["recommend", "--model", model, "--dataset", data, "--user", "999"]) == 2
    assert "unknown user" in capsys.readouterr().err
    assert main(["recommend", "--model", model, "--dataset", data, "--history", "I1", "NOPE"]) == 2
    assert "unknown item" in capsys.readouterr().err
    assert main(["recommend", "--model", model, "--dataset", data, "--user", "U3", "--json"]) == 0
    assert '"recommendations"' in capsys.readouterr().out
    assert main(["evaluate", "--model", model, "--dataset", data, "--split", "valid"]) == 0
    assert "recall@10" in capsys.readouterr().out
