"""Reasons beside each recommendation: the history items it followed in the counted sequences, with
the counts, checked against a brute-force reference and through the Python API, CLI and HTTP API."""

import json

import numpy as np
import pytest
import scipy.sparse as sparse
from fastapi.testclient import TestClient

from genrec.recommender.fusion import DecodingPolicy, TransitionPrior
from genrec.recommender.reasons import MAX_REASONS, Reason, transition_reasons
from genrec.serve import create_app
from tests.serve_fixtures import loaded, trained  # noqa: F401 - pytest fixtures


def reference_reasons(counts: np.ndarray, history: list[int], item: int, limit: int) -> list[Reason]:
    """Every distinct history item with a count, most counts first, ties the more recent (a last position later)."""
    if not 0 < item < counts.shape[0]:
        return []
    last_seen = {a: position for position, a in enumerate(history) if 0 < a < counts.shape[0]}
    found = [(-counts[a, item], -position, a) for a, position in last_seen.items() if counts[a, item] > 0]
    return [Reason(a, int(-negative)) for negative, _, a in sorted(found)[:limit]]


@pytest.mark.parametrize("seed", range(5))
def test_reasons_match_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    dense = rng.integers(0, 4, size=(16, 16)) * (rng.random((16, 16)) < 0.4)
    dense[0] = dense[:, 0] = 0
    counts = sparse.csr_matrix(dense.astype(np.float64))
    history = rng.integers(1, 16, size=9).tolist()
    items = [*rng.choice(np.arange(1, 16), size=6, replace=False).tolist(), 0, 99]  # 0: no item; 99: added later
    got = transition_reasons(counts, history, items, limit=2)
    assert got == [reference_reasons(dense, history, item, 2) for item in items]
    assert got[-2:] == [[], []]


def test_the_fused_prior_is_what_reasons_read(loaded):
    from genrec.pipeline.recommendations import reason_counts

    recommender, dataset = loaded
    prior = TransitionPrior.fit(dataset.train_sequences()[:5], dataset.num_items)
    fused = recommender.with_policy(DecodingPolicy.from_weights({"prior": 1.0}, {"prior": prior}))
    assert reason_counts(fused, dataset) is prior.counts
    alone = reason_counts(recommender, dataset)  # no prior in the policy: one fitted on every interaction
    expected = TransitionPrior.fit(dataset.sequences, dataset.num_items).counts
    assert (alone != expected).nnz == 0 and reason_counts(recommender, dataset) is alone


def test_every_reason_is_a_history_item_the_pick_followed_that_many_times(loaded):
    recommender, dataset = loaded
    counts = TransitionPrior.fit(dataset.sequences, dataset.num_items).counts.toarray()
    with TestClient(create_app(*loaded)) as client:
        named = 0
        for user in range(1, dataset.num_users + 1):
            body = client.post("/recommend", json={"user": user, "top_k": 10, "exclude_seen": False}).json()
            history = dataset.history(user)
            for row in body["recommendations"]:
                assert [Reason(r["item_id"], r["count"]) for r in row["because"]] == \
                    reference_reasons(counts, history, row["item_id"], MAX_REASONS)
                for reason in row["because"]:
                    assert reason["raw_id"] == dataset.item_raw_id(reason["item_id"])
                named += len(row["because"])
    assert named > 0  # the tiny data has transitions: some picks have reasons


def test_the_cli_prints_the_reasons_and_puts_them_in_its_json(trained, capsys):
    from genrec.cli import main

    args = ["recommend", "--dataset", str(trained / "data"), "--model", str(trained / "model"), "--user", "3",
            "--include-seen"]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["recommendations"]
    assert all("because" in row for row in rows)
    assert main(args) == 0
    out = capsys.readouterr().out
    with_reasons = [row for row in rows if row["because"]]
    assert sum(line.strip().startswith("because of ") for line in out.splitlines()) == len(with_reasons)
    for row in with_reasons:
        first = row["because"][0]
        assert f"[{first['raw_id']}] ({first['count']}x)" in out


def _exhaustive_scores(recommender, history: list[int], user: int) -> dict[int, float]:
    """Every item's decoder score for ``history``: a beam as wide as the catalogue keeps every prefix."""
    width = recommender.num_items
    items, scores = recommender.recommend([history], width, users=[user], beams=width, exclude_seen=False)
    return {int(i): float(s) for i, s in zip(items[0], scores[0]) if i > 0}


def test_occlusion_influence_is_the_drop_of_the_decoders_own_score(loaded):
    """Each influence is what the fused beam's own score of the pick loses when the history item is
    removed (exhaustive decodes with and without it), the largest drops, positive only."""
    from genrec.recommender.reasons import occlusion_influence

    recommender, dataset = loaded
    prior = TransitionPrior.fit(dataset.train_sequences(), dataset.num_items)
    fused = recommender.with_policy(DecodingPolicy.from_weights({"prior": 2.0}, {"prior": prior}))
    checked = 0
    for user in range(1, 7):
        history = dataset.history(user)
        distinct = list(dict.fromkeys(reversed(history)))
        full = _exhaustive_scores(fused, history, user)
        picks = sorted(full, key=full.get, reverse=True)[:5]
        without = {a: _exhaustive_scores(fused, [b for b in history if b != a], user) for a in distinct}
        got = occlusion_influence(fused, history, picks, user=user, limit=2)
        for pick, influences in zip(picks, got):
            drops = [(full[pick] - without[a][pick], -position, a) for position, a in enumerate(distinct)]
            expected = sorted((d for d in drops if d[0] > 0), key=lambda d: (-d[0], -d[1]))[:2]
            assert [r.item for r in influences] == [a for _, _, a in expected]
            assert [r.drop for r in influences] == pytest.approx([d for d, _, _ in expected], abs=1e-4)
            checked += len(influences)
    assert checked > 0


def test_a_history_of_one_item_has_no_influence(loaded):
    from genrec.recommender.reasons import occlusion_influence

    recommender, _ = loaded
    assert occlusion_influence(recommender, [3, 3], [1, 2]) == [[], []]


def test_occlusion_influence_of_a_fused_sasrec_is_the_drop_of_its_ranking_score(tmp_path):
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.reasons import occlusion_influence
    from genrec.recommender.sasrec_config import SASRecConfig
    from genrec.recommender.sasrec_recommender import SASRecRecommender
    from genrec.recommender.sasrec_train import train_sasrec
    from genrec.recommender.train_config import SASRecTrainConfig
    from tests.recommender_fixtures import write_dataset

    dataset = load_processed_dataset(write_dataset(tmp_path / "data", num_users=30))
    model = SASRecConfig(num_items=dataset.num_items, max_len=6, d_model=16, d_ff=32, num_layers=1, num_heads=2)
    train_sasrec(dataset, tmp_path / "sasrec", model, SASRecTrainConfig(batch_size=8, max_steps=6, eval_every=3,
                                                                       eval_users=0, warmup_steps=2, lr=3e-3,
                                                                       negatives=10), None, progress=False)
    prior = TransitionPrior.fit(dataset.train_sequences(), dataset.num_items)
    sasrec = SASRecRecommender.load(tmp_path / "sasrec")
    sasrec = sasrec.with_policy(DecodingPolicy.from_weights({"prior": 0.5}, {"prior": prior}))
    history = dataset.history(2)
    full = _exhaustive_scores(sasrec, history, 2)
    picks = sorted(full, key=full.get, reverse=True)[:4]
    got = occlusion_influence(sasrec, history, picks, limit=len(history))
    for pick, influences in zip(picks, got):
        for influence in influences:
            without = _exhaustive_scores(sasrec, [b for b in history if b != influence.item], 2)
            assert influence.drop == pytest.approx(full[pick] - without[pick], abs=1e-5) and influence.drop > 0
    assert any(got)


def test_influence_through_the_http_api_the_python_api_and_the_cli(trained, loaded, capsys):
    from genrec.cli import main
    from genrec.pipeline import RecommendConfig, recommend
    from genrec.recommender.reasons import occlusion_influence

    recommender, dataset = loaded
    with TestClient(create_app(*loaded)) as client:
        assert all("influence" not in row for row in client.post("/recommend", json={"user": 1}).json()["recommendations"])
        shown = 0
        for user in (1, 2, 3):
            rows = client.post("/recommend", json={"user": user, "influence": True}).json()["recommendations"]
            expected = occlusion_influence(recommender, dataset.history(user), [row["item_id"] for row in rows], user)
            for row, influences in zip(rows, expected):
                assert [(r["item_id"], r["drop"]) for r in row["influence"]] == \
                    [(r.item, round(r.drop, 4)) for r in influences]
                assert all(r["raw_id"] == dataset.item_raw_id(r["item_id"]) for r in row["influence"])
                shown += len(influences)
        assert shown > 0
        bad = client.post("/recommend", json={"user": 1, "influence": "yes"})
        assert bad.status_code == 422 and "influence" in bad.json()["detail"]
    result = recommend(RecommendConfig(dataset=trained / "data", model=trained / "model", user="3", influence=True,
                                       exclude_seen=False))
    assert all("influence" in row for row in result.items)
    args = ["recommend", "--dataset", str(trained / "data"), "--model", str(trained / "model"), "--user", "3",
            "--include-seen", "--influence"]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["recommendations"]
    assert [row["influence"] for row in rows] == [row["influence"] for row in result.items]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert sum(line.strip().startswith("without ") for line in out.splitlines()) == sum(bool(r["influence"]) for r in rows)
    assert main([*args[:5], "--all", "--out", "x.parquet", "--influence"]) == 2
    assert "--influence is for one user's list" in capsys.readouterr().err
