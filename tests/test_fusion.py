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
    return train_recommender(RecommenderTrainingConfig.from_options(
        dataset=tmp_path / "data", tokenizer=tmp_path / "tok", out=tmp_path / "model", progress=False, recipe="cpu",
        sasrec_beside=None,
        train={"max_steps": 10, "batch_size": 16, "eval_every": 5, "eval_users": 0, "eval_beams": 10,
               "warmup_steps": 2, "time_budget_minutes": 0},
        model={"d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32, "num_encoder_layers": 1,
               "num_decoder_layers": 1, "max_history": 5}, **options))


def test_training_chooses_the_weight_on_validation_and_evaluate_uses_it(tmp_path):
    from genrec.pipeline import EvaluateConfig, evaluate, load_trained

    result = _trained(tmp_path, fusion_grids={"prior": (0.0, 1.0, 4.0)})
    fusion = json.loads((tmp_path / "model" / "genrec.json").read_text())["fusion"]
    assert result.fusion == fusion
    # Both history settings of the model alone, then every weight under the better one.
    assert {(row["weights"]["prior"], row["exclude_seen"]) for row in fusion["grid"]} >= {
        (0.0, False), (0.0, True), (1.0, fusion["exclude_seen"]), (4.0, fusion["exclude_seen"])}
    best = max(fusion["grid"], key=lambda row: row["ndcg@10"])
    assert (fusion["weights"], fusion["exclude_seen"]) == (best["weights"], best["exclude_seen"])
    assert fusion["users"] == 60 and fusion["sasrec"] is None
    # The grid's validation numbers are what evaluate gives at each setting on the same users.
    recommender, dataset = load_trained(tmp_path / "data", tmp_path / "model")
    assert recommender.policy.weights == {k: v for k, v in fusion["weights"].items() if v > 0}
    assert recommender.policy.exclude_seen == fusion["exclude_seen"]
    for row in fusion["grid"]:
        fused, _ = load_trained(tmp_path / "data", tmp_path / "model", fusion=row["weights"],
                                exclude_seen=row["exclude_seen"])
        assert fused.evaluate(dataset, "valid")["ndcg@10"] == pytest.approx(row["ndcg@10"])
    chosen = evaluate(EvaluateConfig(dataset=tmp_path / "data", model=tmp_path / "model", progress=False))
    alone = evaluate(EvaluateConfig(dataset=tmp_path / "data", model=tmp_path / "model", progress=False,
                                    fusion={}, output=tmp_path / "alone.json"))
    assert chosen["fusion"] == recommender.policy.weights and alone["fusion"] == {} and alone["alone"] == {}
    assert chosen["exclude_seen"] == alone["exclude_seen"] == fusion["exclude_seen"]
    if chosen["fusion"]:  # the model alone is reported beside the fused numbers
        assert chosen["alone"]["model"]["ndcg@10"] == pytest.approx(alone["ndcg@10"])
    assert set(chosen["transition_prior"]) >= {"recall@10", "ndcg@10", "mrr"}
    assert chosen["invalid_rate"] == alone["invalid_rate"] == 0.0


def test_fusion_off_is_the_model_alone(tmp_path):
    result = _trained(tmp_path, fusion_grids={"prior": (0.0,)})
    assert result.fusion is None
    assert "fusion" not in json.loads((tmp_path / "model" / "genrec.json").read_text())
    from genrec.pipeline import load_trained

    recommender, dataset = load_trained(tmp_path / "data", tmp_path / "model")
    assert recommender.policy.scorers == ()
    plain = recommender.recommend([[1, 2, 3]], 10)
    fused_recommender, _ = load_trained(tmp_path / "data", tmp_path / "model", fusion={"prior": 2.0})
    fused = fused_recommender.recommend([[1, 2, 3]], 10)
    np.testing.assert_array_equal(recommender.recommend([[1, 2, 3]], 10)[0], plain[0])  # unchanged by the other
    assert (fused[0] > 0).all() and len(set(fused[0][0].tolist())) == 10  # real, distinct items
    with pytest.raises(GenrecError, match="fusion weight"):
        load_trained(tmp_path / "data", tmp_path / "model", fusion={"prior": -1.0})
    with pytest.raises(GenrecError, match="unknown scorer"):
        load_trained(tmp_path / "data", tmp_path / "model", fusion={"popularity": 1.0})
    with pytest.raises(GenrecError, match="no SASRec"):
        load_trained(tmp_path / "data", tmp_path / "model", fusion={"sasrec": 1.0})


def test_bad_fusion_weights_are_clear_errors(tmp_path):
    with pytest.raises(GenrecError, match="fusion weights"):
        _trained(tmp_path, fusion_grids={"prior": (0.0, -2.0)})
    with pytest.raises(GenrecError, match="unknown scorer"):
        _trained(tmp_path, fusion_grids={"popularity": (1.0,)})


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

    _trained(tmp_path, fusion_grids={"prior": (0.0, 2.0)})
    capsys.readouterr()
    model, data = str(tmp_path / "model"), str(tmp_path / "data")
    assert main(["evaluate", "--model", model, "--dataset", data, "--no-progress", "--fusion-weight", "0",
                 "--output", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "model alone" in out and "prior alone" in out and "popularity" in out
    assert main(["recommend", "--model", model, "--dataset", data, "--user", "3", "--fusion-weight", "2"]) == 0
    assert main(["recommend", "--model", model, "--dataset", data, "--user", "3", "--fusion-weight", "prior=2"]) == 0
    assert main(["evaluate", "--model", model, "--dataset", data, "--fusion-weight", "-1"]) == 2
    assert "fusion weight must be >= 0" in capsys.readouterr().err
    assert main(["evaluate", "--model", model, "--dataset", data, "--fusion-weight", "prior=x"]) == 2
    assert "expected NAME=W" in capsys.readouterr().err
    assert main(["evaluate", "--model", model, "--dataset", data, "--fusion-weight", "sasrec=1"]) == 2
    assert "no SASRec" in capsys.readouterr().err


class _FixedScorer:
    """A scorer with a fixed distribution per history row (for policy tests)."""

    def __init__(self, name, q):
        self.name, self.q = name, q

    def probabilities(self, histories):
        return self.q[: len(histories)]


def test_two_scorers_add_their_weighted_log_probabilities_to_every_item_in_the_beam():
    """Exhaustive beam: each item's fused score = its model score + sum_s w_s log q_s(item)."""
    from genrec.recommender.fusion import DecodingPolicy

    codes, sizes, offsets = make_catalog(num_items=40)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    model = make_model(offsets[-1] + sizes[-1])
    ids = torch.tensor([[5, 7, 9, 1], [3, 4, 1, 0]])
    mask = (ids != 0).long()
    rng = np.random.default_rng(3)
    q1, q2 = (np.concatenate([np.zeros((2, 1)), rng.dirichlet(np.ones(40) * 0.5, size=2)], axis=1) for _ in range(2))
    policy = DecodingPolicy(((_FixedScorer("prior", q1), 1.5), (_FixedScorer("sasrec", q2), 0.7)))
    plain_items, plain_scores = constrained_beam_search(model, ids, mask, table, 40)
    prior = policy.prefix_log_prior([[1], [2]], prefix_states(table))
    items, scores = constrained_beam_search(model, ids, mask, table, 40, prior=prior)
    for row in range(2):
        plain = dict(zip(plain_items[row].tolist(), plain_scores[row].tolist()))
        expected = np.array([plain[i] + 1.5 * np.log(q1[row, i]) + 0.7 * np.log(q2[row, i]) for i in items[row].tolist()])
        np.testing.assert_allclose(scores[row].numpy(), expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(policy.log_scores([[1], [2]])[:, 1:], 1.5 * np.log(q1[:, 1:]) + 0.7 * np.log(q2[:, 1:]))
    assert policy.weights == {"prior": 1.5, "sasrec": 0.7}
    assert DecodingPolicy().prefix_log_prior([[1]], prefix_states(table)) is None


def test_policy_refuses_bad_weights_and_repeated_scorers():
    from genrec.recommender.fusion import DecodingPolicy

    scorer = _FixedScorer("prior", np.ones((1, 3)) / 2)
    with pytest.raises(GenrecError, match="> 0"):
        DecodingPolicy(((scorer, 0.0),))
    with pytest.raises(GenrecError, match="once"):
        DecodingPolicy(((scorer, 1.0), (scorer, 2.0)))
    with pytest.raises(GenrecError, match="no scorer named"):
        DecodingPolicy.from_weights({"sasrec": 1.0}, {"prior": scorer})
    assert DecodingPolicy.from_weights({"prior": 0.0}, {"prior": scorer}).scorers == ()


def test_coordinate_search_returns_the_best_setting_it_evaluated_each_once():
    """A known validation surface: the search finds its maximum over the grid and never
    evaluates a setting twice."""
    from genrec.recommender.fusion import choose_weights

    target = {"prior": 4.0, "sasrec": 1.0}
    calls = []

    def evaluate(policy):
        weights = {"prior": 0.0, "sasrec": 0.0, **policy.weights}
        calls.append((policy.exclude_seen, *sorted(weights.items())))
        value = 1.0 - sum(abs(weights[n] - target[n]) for n in target) / 10 + 0.05 * policy.exclude_seen
        return {"recall@10": value, "recall@10_se": 0.0, "ndcg@10": value, "ndcg@10_se": 0.0}

    scorers = {"prior": _FixedScorer("prior", None), "sasrec": _FixedScorer("sasrec", None)}
    grids = {"prior": [0, 1, 2, 4, 8], "sasrec": [0, 0.5, 1, 2]}
    weights, exclude_seen, tried = choose_weights(evaluate, scorers, grids, exclude_seen=(False, True))
    assert (weights, exclude_seen) == (target, True)
    assert len(calls) == len(set(calls)) == len(tried)
    best = max(tried, key=lambda row: row["ndcg@10"])
    assert (best["weights"], best["exclude_seen"]) == (target, True)
    # Without the choice offered the history setting stays as given and is never varied.
    calls.clear()
    weights, exclude_seen, _ = choose_weights(evaluate, scorers, grids)
    assert (weights, exclude_seen) == (target, False) and {call[0] for call in calls} == {False}


def test_recommend_fits_the_prior_on_every_interaction_and_evaluate_on_the_training_parts(tmp_path):
    from genrec.pipeline import load_trained

    _trained(tmp_path, fusion_grids={"prior": (0.0,)})
    dataset = load_processed_dataset(tmp_path / "data")
    evaluating, _ = load_trained(tmp_path / "data", tmp_path / "model", fusion={"prior": 1.0})
    serving, _ = load_trained(tmp_path / "data", tmp_path / "model", fusion={"prior": 1.0}, fit="all")
    fitted = {kind: r.policy.scorers[0][0].counts.toarray() for kind, r in (("train", evaluating), ("all", serving))}
    np.testing.assert_array_equal(fitted["train"], TransitionPrior.fit(dataset.train_sequences(), 30).counts.toarray())
    np.testing.assert_array_equal(fitted["all"], TransitionPrior.fit(dataset.sequences, 30).counts.toarray())
    assert fitted["all"].sum() > fitted["train"].sum()


def test_leaving_the_history_out_renormalises_every_scorer_over_the_unseen_items_in_the_beam():
    """Exhaustive beam with exclude_seen: no history item comes back, and each unseen item's fused
    score = its model score + sum_s w_s log (q_s(item) / q_s(unseen items)), for a dense scorer and
    the sparse prior alike (the ranking of the unseen items is the plain fused one)."""
    from genrec.recommender.fusion import DecodingPolicy

    codes, sizes, offsets = make_catalog(num_items=40)
    table = SidPrefixTable.from_codes(codes, offsets, sizes)
    model = make_model(offsets[-1] + sizes[-1])
    ids = torch.tensor([[5, 7, 9, 1], [3, 4, 1, 0]])
    mask = (ids != 0).long()
    histories = [[5, 7, 9], [3, 4, 12]]
    rng = np.random.default_rng(3)
    q = np.concatenate([np.zeros((2, 1)), rng.dirichlet(np.ones(40) * 0.5, size=2)], axis=1)
    prior = TransitionPrior.fit([list(rng.integers(1, 41, 8)) for _ in range(100)] + [[5, 7, 9, 3], [4, 12, 3]], 40)
    dense_prior = prior.probabilities(histories)
    policy = DecodingPolicy(((prior, 2.0), (_FixedScorer("sasrec", q), 0.7)))
    plain_items, plain_scores = constrained_beam_search(model, ids, mask, table, 40)
    items, scores = constrained_beam_search(model, ids, mask, table, 40,
                                            prior=policy.prefix_log_prior(histories, prefix_states(table),
                                                                          exclude_seen=True))
    for row, history in enumerate(histories):
        found = items[row][torch.isfinite(scores[row])].tolist()
        assert sorted(found) == sorted(set(range(1, 41)) - set(history))
        unseen = np.setdiff1d(np.arange(1, 41), history)
        unseen_prior = prior.distribution([history], exclude_seen=True)[0]
        assert not set(unseen_prior.indices) & set(history) and unseen_prior.sum() == pytest.approx(1.0)
        # The prior's smoothing mass stays on every item: its share of the unseen items is the
        # renormalised smoothed mass; the dense scorer's is q over q(unseen).
        smooth = np.full(41, prior.smoothing)
        smooth[unseen_prior.indices] += unseen_prior.data
        smooth[0] = 0
        plain = dict(zip(plain_items[row].tolist(), plain_scores[row].tolist()))
        expected = [plain[i] + 2.0 * np.log(smooth[i] / smooth.sum()) + 0.7 * np.log(q[row, i] / q[row, unseen].sum())
                    for i in found]
        np.testing.assert_allclose(scores[row][:len(found)].numpy(), expected, rtol=1e-4, atol=1e-4)
        assert dense_prior[row, history].sum() > 0  # the prior did favour some history items
    assert DecodingPolicy().prefix_log_prior([[1]], prefix_states(table), exclude_seen=True) is not None


def test_the_baselines_leave_the_history_out_when_asked(tmp_path):
    from genrec.eval.popularity import popularity_metrics

    write_dataset(tmp_path / "data", num_users=60)
    dataset = load_processed_dataset(tmp_path / "data")
    prior = TransitionPrior.fit(dataset.train_sequences(), dataset.num_items)
    histories = [dataset.split(user, "test")[0] for user in range(1, dataset.num_users + 1)]
    kept, dropped = prior.rank(histories, 10), prior.rank(histories, 10, exclude_seen=True)
    assert any(set(row) & set(h) for row, h in zip(kept, histories))  # without the option history items rank
    for row, history in zip(dropped, histories):
        assert not set(row) & set(history) and (row > 0).all() and len(set(row)) == 10
    for metrics in (prior_metrics(dataset, "test", exclude_seen=True), popularity_metrics(dataset, "test", exclude_seen=True)):
        assert 0 <= metrics["recall@10"] <= 1
    assert prior_metrics(dataset, "test", exclude_seen=True)["recall@10"] >= prior_metrics(dataset, "test")["recall@10"]
