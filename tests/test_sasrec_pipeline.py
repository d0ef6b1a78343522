"""SASRec through the shared training loop and the pipeline: resume, save/load, evaluate and
recommend with it, and its distribution fused into the T5 beam."""

import json

import numpy as np
import pytest
import torch

from genrec.core.errors import GenrecError
from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.fusion import DecodingPolicy
from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.sasrec_recommender import SASRecRecommender
from genrec.recommender.sasrec_train import train_sasrec
from genrec.recommender.train_config import SASRecTrainConfig
from tests.recommender_fixtures import train_until_killed, write_dataset, write_embedding_cache, write_tokenizer

TINY = dict(max_len=6, d_model=16, d_ff=32, num_layers=1, num_heads=2, dropout=0.1)


def _config(max_steps=12, **options):
    return SASRecTrainConfig(batch_size=8, max_steps=max_steps, eval_every=4, eval_users=0, warmup_steps=2,
                             lr=3e-3, negatives=10, **options)


def _train(root, out, max_steps=12, **options):
    dataset = load_processed_dataset(root / "data")
    text = np.random.default_rng(0).normal(size=(dataset.num_items, 8))
    model = SASRecConfig(num_items=dataset.num_items, text_dim=8, **TINY)
    return train_sasrec(dataset, out, model, _config(max_steps, **options), text, progress=False)


@pytest.fixture
def tiny(tmp_path):
    write_dataset(tmp_path / "data", num_users=40)
    return tmp_path


def test_killed_training_resumes_to_the_same_weights(tiny, monkeypatch):
    torch.manual_seed(0)
    _train(tiny, tiny / "full")
    train_until_killed(monkeypatch, lambda: _train(tiny, tiny / "resumed"), kill_at_step=11)  # step 8 survives
    assert json.loads((tiny / "resumed" / "checkpoint" / "trainer_state.json").read_text())["step"] == 8
    final = _train(tiny, tiny / "resumed")
    assert final.step == 12 and not (tiny / "resumed" / "checkpoint").exists()
    a = SASRecRecommender.load(tiny / "full").model.state_dict()
    b = SASRecRecommender.load(tiny / "resumed").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_saved_model_reloads_to_identical_scores_and_rankings(tiny, loss):
    _train(tiny, tiny / "model", max_steps=8, loss=loss)
    meta = json.loads((tiny / "model" / "genrec.json").read_text())
    assert meta["kind"] == "sasrec" and meta["best_step"] in (4, 8) and meta["train_config"]["loss"] == loss
    loaded = SASRecRecommender.load(tiny / "model")
    histories = [[1, 2, 3], [7], [5, 6, 7, 8, 9, 10, 11, 12]]
    again = SASRecRecommender.load(tiny / "model")
    np.testing.assert_array_equal(loaded.log_probabilities(histories), again.log_probabilities(histories))
    np.testing.assert_allclose(np.exp(loaded.log_probabilities(histories))[:, 1:].sum(1), 1.0)
    items, scores = loaded.recommend(histories, 5)
    assert (np.diff(scores, axis=1) <= 0).all() and (items > 0).all()
    expected = np.argsort(-loaded.log_probabilities(histories)[:, 1:], axis=1)[:, :5] + 1
    np.testing.assert_array_equal(items, expected)
    unseen, _ = loaded.recommend(histories, 5, exclude_seen=True)
    assert not any(set(row) & set(h) for row, h in zip(unseen.tolist(), histories))
    with pytest.raises(GenrecError):
        loaded.recommend([[0, 99]], 5)


def test_bad_training_options_are_clear_errors(tiny):
    with pytest.raises(GenrecError, match="loss"):
        _train(tiny, tiny / "x", loss="softmax")
    with pytest.raises(GenrecError, match="sampler"):
        _train(tiny, tiny / "x", sampler="zipf")


def test_bad_model_options_are_one_line_cli_errors(tiny, capsys):
    from genrec.cli import main

    for flags, message in ((["--max-len", "0"], "max_len"), (["--d-model", "30", "--num-heads", "4"], "multiple"),
                           (["--dropout", "1.5"], "dropout"), (["--negatives", "0"], "negatives")):
        assert main(["train-sasrec", "--dataset", str(tiny / "data"), "--no-text", "--no-progress", *flags]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and "Traceback" not in err


def _pipeline_sasrec(root, **options):
    from genrec.pipeline import SASRecTrainingConfig, train_sasrec as run

    return run(SASRecTrainingConfig.from_options(dataset=root / "data", progress=False, model=TINY,
                                    train={"batch_size": 8, "max_steps": 8, "eval_every": 4, "eval_users": 0,
                                           "warmup_steps": 2, "lr": 3e-3, "negatives": 10}, **options))


def test_pipeline_sasrec_evaluates_and_recommends_and_fuses_into_the_t5_beam(tiny):
    from genrec.pipeline import (EvaluateConfig, RecommendConfig, RecommenderTrainingConfig, evaluate,
                                 load_trained, recommend, train_recommender)

    write_embedding_cache(tiny / "data", np.random.default_rng(1).normal(size=(30, 8)))
    sasrec = _pipeline_sasrec(tiny, fusion_grids={"prior": (0.0, 1.0)})
    assert sasrec.path == tiny / "data" / "sasrec"
    assert {(row["weights"]["prior"], row["exclude_seen"]) for row in sasrec.fusion["grid"]} >= {
        (0.0, False), (0.0, True), (1.0, sasrec.fusion["exclude_seen"])}
    result = evaluate(EvaluateConfig(dataset=tiny / "data", model=sasrec.path, progress=False, split="valid"))
    assert result["fusion"] == {k: v for k, v in sasrec.fusion["weights"].items() if v > 0}
    chosen = max(sasrec.fusion["grid"], key=lambda row: row["ndcg@10"])
    assert result["ndcg@10"] == pytest.approx(chosen["ndcg@10"])  # the choice was made on all 40 users
    picks = recommend(RecommendConfig(dataset=tiny / "data", model=sasrec.path, user="3", top_k=4))
    assert len(picks.items) == 4 and picks.items[0]["sid"] is None

    # The T5 model trained next on the same dataset finds DATASET/sasrec and chooses its weight too.
    write_tokenizer(tiny / "tok")
    t5 = train_recommender(RecommenderTrainingConfig.from_options(
        dataset=tiny / "data", tokenizer=tiny / "tok", out=tiny / "t5", progress=False, recipe="cpu",
        sasrec_beside=None,
        train={"max_steps": 6, "batch_size": 16, "eval_every": 3, "eval_users": 0, "eval_beams": 10,
               "warmup_steps": 2, "time_budget_minutes": 0},
        model={"d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32, "num_encoder_layers": 1,
               "num_decoder_layers": 1, "max_history": 5},
        fusion_grids={"prior": (0.0, 1.0), "sasrec": (0.0, 2.0)}))
    assert t5.fusion["sasrec"] == "../data/sasrec"  # relative to the model folder
    tried = [row["weights"] for row in t5.fusion["grid"]]
    assert {"prior": 0.0, "sasrec": 0.0} in tried and any(w["sasrec"] == 2.0 for w in tried)
    best = max(t5.fusion["grid"], key=lambda row: row["ndcg@10"])
    assert (t5.fusion["weights"], t5.fusion["exclude_seen"]) == (best["weights"], best["exclude_seen"])
    from genrec.pipeline import FUSION_GRIDS, choose_fusion

    with pytest.raises(GenrecError, match="not a trained SASRec"):
        choose_fusion(tiny / "t5", tiny / "data", FUSION_GRIDS, 40, 0, sasrec=tiny / "nowhere")
    fused, dataset = load_trained(tiny / "data", tiny / "t5", fusion={"prior": 1.0, "sasrec": 2.0})
    assert fused.policy.weights == {"prior": 1.0, "sasrec": 2.0}
    items, _ = fused.recommend([[1, 2, 3]], 10)
    assert (items > 0).all() and len(set(items[0].tolist())) == 10
    report = evaluate(EvaluateConfig(dataset=tiny / "data", model=tiny / "t5", progress=False,
                                     fusion={"prior": 1.0, "sasrec": 2.0}, output=tiny / "e.json"))
    assert set(report["alone"]) == {"model", "sasrec"}
    alone = DecodingPolicy(exclude_seen=report["exclude_seen"])  # each part alone under the same history rule
    assert report["alone"]["sasrec"]["ndcg@10"] == pytest.approx(
        SASRecRecommender.load(sasrec.path).with_policy(alone).evaluate(dataset, "test")["ndcg@10"])


def test_serve_answers_from_a_sasrec_model(tiny):
    from fastapi.testclient import TestClient

    from genrec.pipeline import load_trained
    from genrec.serve import create_app

    _train(tiny, tiny / "model", max_steps=4)
    recommender, dataset = load_trained(tiny / "data", tiny / "model", fit="all")
    with TestClient(create_app(recommender, dataset)) as client:
        answer = client.post("/recommend", json={"user": 3, "top_k": 5})
        assert answer.status_code == 200, answer.text
        picks = answer.json()["recommendations"]
        assert len(picks) == 5 and all(row["sid"] is None for row in picks)
        assert not {row["item_id"] for row in picks} & set(dataset.history(3))  # seen items left out by default
        assert client.get("/items/4").json()["sid"] is None


def test_a_second_run_on_the_same_sasrec_folder_waits_for_the_first(tiny, capsys):
    """Two train-recommender runs on one dataset each train a SASRec beside their T5 into DATASET/sasrec:
    they take turns on it (the second then finds the first one's model) instead of writing it at once."""
    import threading

    from genrec.core.io import file_lock

    write_embedding_cache(tiny / "data", np.random.default_rng(1).normal(size=(30, 8)))
    results = []
    with file_lock(tiny / "data" / ".sasrec.lock"):  # as a first run holds it while it trains
        second = threading.Thread(target=lambda: results.append(_pipeline_sasrec(tiny, fusion_grids={"prior": (0.0,)})))
        second.start()
        second.join(timeout=3)
        assert second.is_alive() and not (tiny / "data" / "sasrec").exists()  # waiting, nothing written
    second.join(timeout=120)
    assert not second.is_alive() and results[0].path == tiny / "data" / "sasrec"
    assert "another run is training" in capsys.readouterr().err
