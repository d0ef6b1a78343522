"""Shallow fusion with the item-transition prior (recommender/fusion.py)."""

import json

import numpy as np
import pytest
import torch

from genrec.core.errors import GenrecError
from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.fast_beam import constrained_beam_search
from genrec.recommender.fusion import TransitionPrior, prefix_log_prior, prefix_states, prior_metrics
from genrec.recommender.trie import SidPrefixTable
from tests.recommender_fixtures import write_dataset
from tests.test_fast_beam import make_catalog, make_model


def test_transition_counts_match_a_direct_count():
    rng = np.random.default_rng(0)
    sequences = [list(rng.integers(1, 9, size=rng.integers(2, 7))) for _ in range(30)]
    prior = TransitionPrior.fit(sequences, num_items=8, window=2)
    expected = np.zeros((9, 9))
    for seq in sequences:
        for i in range(len(seq)):
            for step in (1, 2):
                if i + step < len(seq):
                    expected[seq[i], seq[i + step]] += 1
    np.testing.assert_array_equal(prior.counts.toarray(), expected)


def test_probabilities_follow_the_recent_items_with_decay_and_smoothing():
    prior = TransitionPrior.fit([[1, 2], [1, 2], [3, 4]], num_items=5, window=1, smoothing=0.0)
    q = prior.probabilities([[3, 1]])  # most recent 1 (-> 2, twice), then 3 (-> 4, once, weight 0.5)
    np.testing.assert_allclose(q[0], np.array([0, 0, 2, 0, 0.5, 0]) / 2.5)
    smoothed = TransitionPrior.fit([[1, 2]], num_items=5, window=1, smoothing=1e-3).probabilities([[1], [5]])
    np.testing.assert_allclose(smoothed.sum(axis=1), 1.0)
    assert (smoothed[:, 1:] > 0).all() and (smoothed[:, 0] == 0).all()
    np.testing.assert_allclose(smoothed[1, 1:], 0.2)  # no counts after item 5: uniform
    assert smoothed[0, 2] == smoothed[0].max()
    with pytest.raises(GenrecError, match="window"):
        TransitionPrior.fit([[1, 2]], num_items=2, window=0)


def test_prefix_states_follow_each_items_codes_through_the_table():
    codes, sizes, offsets = make_catalog(num_items=40)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    states = prefix_states(table)
    assert len(states) == table.length + 1
    np.testing.assert_array_equal(states[-1][1:], np.arange(1, 41))
    for item in range(1, 41):
        state = 0
        for position in range(table.length):
            assert states[position][item] == state
            state = int(table.next_state[position][state, codes[item - 1, position]])
        assert state == item


def test_prefix_masses_sum_the_items_under_each_prefix():
    codes, sizes, offsets = make_catalog(num_items=40)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    states = prefix_states(table)
    q = np.random.default_rng(1).dirichlet(np.ones(40), size=2)
    q = np.concatenate([np.zeros((2, 1)), q], axis=1)
    log_mass = prefix_log_prior(q, states, weight=2.0)
    np.testing.assert_allclose(log_mass[0].numpy(), 0.0, atol=1e-5)  # the empty prefix holds all the mass
    np.testing.assert_allclose(log_mass[-1][:, 1:].numpy(), 2.0 * np.log(q[:, 1:]), rtol=1e-5)
    for position in range(1, table.length):
        for state in range(int(states[position].max()) + 1):
            under = states[position][1:] == state
            np.testing.assert_allclose(log_mass[position][:, state].numpy(), 2.0 * np.log(q[:, 1:][:, under].sum(1)),
                                       rtol=1e-5)


def test_fused_beam_scores_are_the_model_score_plus_the_weighted_log_prior():
    """An exhaustive beam (as wide as the catalogue) returns every item; with the prior each item's
    score is its score without it plus weight x log q, and the ranking follows that sum."""
    codes, sizes, offsets = make_catalog(num_items=40)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    model = make_model(offsets[-1] + sizes[-1])
    ids = torch.tensor([[5, 7, 9, 1], [3, 4, 1, 0]])
    mask = (ids != 0).long()
    q = np.concatenate([np.zeros((2, 1)), np.random.default_rng(2).dirichlet(np.ones(40) * 0.3, size=2)], axis=1)
    plain_items, plain_scores = constrained_beam_search(model, ids, mask, table, 40)
    items, scores = constrained_beam_search(model, ids, mask, table, 40, prior=prefix_log_prior(q, prefix_states(table), 1.5))
    for row in range(2):
        assert sorted(items[row].tolist()) == list(range(1, 41))
        plain = dict(zip(plain_items[row].tolist(), plain_scores[row].tolist()))
        expected = np.array([plain[i] + 1.5 * np.log(q[row, i]) for i in items[row].tolist()])
        np.testing.assert_allclose(scores[row].numpy(), expected, rtol=1e-4, atol=1e-4)
        assert (np.diff(scores[row].numpy()) <= 1e-5).all()


def test_a_heavy_prior_steers_a_narrow_beam_to_the_items_it_favours():
    codes, sizes, offsets = make_catalog(num_items=60)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    model = make_model(offsets[-1] + sizes[-1])
    ids, mask = torch.tensor([[5, 7, 9, 1]]), torch.ones((1, 4), dtype=torch.long)
    favoured = [17, 42, 3]
    q = np.full((1, 61), 1e-6)
    q[0, 0] = 0
    q[0, favoured] = [0.5, 0.3, 0.2]
    q[0, 1:] /= q[0, 1:].sum()
    items, _ = constrained_beam_search(model, ids, mask, table, 3, prior=prefix_log_prior(q, prefix_states(table), 50.0))
    assert items[0].tolist() == favoured


def _trained(tmp_path, **options):
    from genrec.pipeline import RecommenderTrainingConfig, train_recommender
    from tests.recommender_fixtures import write_tokenizer

    write_dataset(tmp_path / "data", num_users=60)
    write_tokenizer(tmp_path / "tok")
    return train_recommender(RecommenderTrainingConfig(
        dataset=tmp_path / "data", tokenizer=tmp_path / "tok", out=tmp_path / "model", progress=False, recipe="cpu",
        train={"max_steps": 10, "batch_size": 16, "eval_every": 5, "eval_users": 0, "eval_beams": 10,
               "warmup_steps": 2, "time_budget_minutes": 0},
        model={"d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32, "num_encoder_layers": 1,
               "num_decoder_layers": 1, "max_history": 5}, **options))


def test_training_chooses_the_weight_on_validation_and_evaluate_uses_it(tmp_path):
    from genrec.pipeline import EvaluateConfig, evaluate, load_trained

    result = _trained(tmp_path, fusion_weights=(0.0, 1.0, 4.0))
    fusion = json.loads((tmp_path / "model" / "genrec.json").read_text())["fusion"]
    assert result.fusion == fusion and [row["weight"] for row in fusion["grid"]] == [0.0, 1.0, 4.0]
    assert fusion["weight"] == max(fusion["grid"], key=lambda row: row["ndcg@10"])["weight"]
    assert fusion["users"] == 60
    # The grid's validation numbers are what evaluate gives at each weight on the same users.
    recommender, dataset = load_trained(tmp_path / "data", tmp_path / "model")
    assert recommender.fusion_weight == fusion["weight"]
    for row in fusion["grid"]:
        recommender.fuse(dataset, row["weight"])
        assert recommender.evaluate(dataset, "valid")["ndcg@10"] == pytest.approx(row["ndcg@10"])
    chosen = evaluate(EvaluateConfig(dataset=tmp_path / "data", model=tmp_path / "model", progress=False))
    alone = evaluate(EvaluateConfig(dataset=tmp_path / "data", model=tmp_path / "model", progress=False,
                                    fusion_weight=0.0, output=tmp_path / "alone.json"))
    assert chosen["fusion_weight"] == fusion["weight"] and alone["fusion_weight"] == 0.0
    assert set(chosen["transition_prior"]) >= {"recall@10", "ndcg@10", "mrr"}
    assert chosen["invalid_rate"] == alone["invalid_rate"] == 0.0


def test_fusion_off_is_the_model_alone(tmp_path):
    result = _trained(tmp_path, fusion_weights=(0.0,))
    assert result.fusion is None
    assert "fusion" not in json.loads((tmp_path / "model" / "genrec.json").read_text())
    from genrec.pipeline import load_trained

    recommender, dataset = load_trained(tmp_path / "data", tmp_path / "model")
    assert recommender.fusion is None
    plain = recommender.recommend([[1, 2, 3]], 10)
    recommender.fuse(dataset, 2.0)
    fused = recommender.recommend([[1, 2, 3]], 10)
    recommender.fuse(dataset, 0.0)
    np.testing.assert_array_equal(recommender.recommend([[1, 2, 3]], 10)[0], plain[0])
    assert (fused[0] > 0).all() and len(set(fused[0][0].tolist())) == 10  # real, distinct items
    with pytest.raises(GenrecError, match="fusion weight"):
        recommender.fuse(dataset, -1.0)


def test_bad_fusion_weights_are_clear_errors(tmp_path):
    with pytest.raises(GenrecError, match="fusion weights"):
        _trained(tmp_path, fusion_weights=(0.0, -2.0))


def test_the_prior_never_reads_validation_or_test_items(tmp_path):
    """Fitted on the training part (all but the last two items of every user): rewriting every
    user's last two items changes neither the counts nor the prior baseline's validation ranking."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = write_dataset(tmp_path / "data", num_users=50)
    before = load_processed_dataset(data)
    table = pq.read_table(data / "sequences.parquet").to_pydict()
    table["items"] = [seq[:-2] + [(seq[-2] % 30) + 1, (seq[-1] + 7) % 30 + 1] for seq in table["items"]]
    other = tmp_path / "other"
    write_dataset(other, num_users=50)
    pq.write_table(pa.table(table), other / "sequences.parquet")
    after = load_processed_dataset(other)
    a = TransitionPrior.fit(before.train_sequences(), before.num_items).counts.toarray()
    b = TransitionPrior.fit(after.train_sequences(), after.num_items).counts.toarray()
    np.testing.assert_array_equal(a, b)
    assert prior_metrics(before, "valid")["recall@10"] >= 0  # runs on the split it is asked for


def test_cli_reports_the_chosen_weight_and_takes_an_override(tmp_path, capsys):
    from genrec.cli import main

    _trained(tmp_path, fusion_weights=(0.0, 2.0))
    capsys.readouterr()
    model, data = str(tmp_path / "model"), str(tmp_path / "data")
    assert main(["evaluate", "--model", model, "--dataset", data, "--no-progress", "--fusion-weight", "0",
                 "--output", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "model alone" in out and "prior alone" in out and "popularity" in out
    assert main(["recommend", "--model", model, "--dataset", data, "--user", "3", "--fusion-weight", "2"]) == 0
    assert main(["evaluate", "--model", model, "--dataset", data, "--fusion-weight", "-1"]) == 2
    assert "fusion weight must be >= 0" in capsys.readouterr().err
