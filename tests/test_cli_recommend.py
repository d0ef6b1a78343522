"""`genrec recommend` / `evaluate` / `demo` output as a user reads it, and the CLI agreeing with the API."""

import json

import numpy as np
import pytest

import genrec.core.layout
from genrec.cli import main
from genrec.commands.report import SCORE_NOTE
from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender import recommender as recommender_module
from genrec.recommender.recommender import Recommender
from tests.recommender_fixtures import train_tiny_recommender


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny_recommender(tmp_path_factory.mktemp("cli_recommend"), num_users=20)


def _args(root, *extra):
    return ["recommend", "--model", str(root / "model"), "--dataset", str(root / "data"), *extra]


def test_recommendations_leave_the_history_out_by_default(trained, capsys):
    dataset = load_processed_dataset(trained / "data")
    shown_seen = False
    for user in range(1, 21):
        assert main(_args(trained, "--user", str(user), "--top-k", "10", "--json")) == 0
        items = [row["item_id"] for row in json.loads(capsys.readouterr().out)["recommendations"]]
        assert len(items) == 10 and not set(items) & set(dataset.history(user))
        assert main(_args(trained, "--user", str(user), "--top-k", "10", "--json", "--include-seen")) == 0
        items = [row["item_id"] for row in json.loads(capsys.readouterr().out)["recommendations"]]
        shown_seen |= bool(set(items) & set(dataset.history(user)))
    assert shown_seen  # --include-seen does let history items through


def test_text_output_explains_the_score_once_and_counts_in_good_english(trained, capsys):
    assert main(_args(trained, "--history", "I5", "--top-k", "3")) == 0
    out = capsys.readouterr().out
    assert "history of 1 item;" in out and "1 items" not in out
    assert out.count(SCORE_NOTE) == 1 and "higher is better" in out


def test_a_user_and_a_history_together_are_an_error(trained, capsys):
    assert main(_args(trained, "--user", "3", "--history", "I1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not both" in err


def test_an_output_folder_that_does_not_exist_is_an_error_not_created(trained, tmp_path, capsys):
    out = tmp_path / "missing" / "recs.parquet"
    assert main(_args(trained, "--all", "--out", str(out))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert not out.parent.exists()
    assert main(["evaluate", "--model", str(trained / "model"), "--output", str(tmp_path / "nope" / "e.json")]) == 2
    assert "does not exist" in capsys.readouterr().err and not (tmp_path / "nope").exists()


def test_evaluate_labels_every_column(trained, tmp_path, capsys):
    assert main(["evaluate", "--model", str(trained / "model"), "--dataset", str(trained / "data"), "--no-progress",
                 "--output", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split()[1:] == ["model", "alone", "prior", "alone", "popularity"]
    assert "invalid items" in out and "empty beam slots" in out


def test_invalid_rate_counts_invalid_items_not_empty_beam_slots(trained, monkeypatch):
    """A beam that ends before it has 30 items leaves empty slots (0); those are not invalid items."""
    dataset = load_processed_dataset(trained / "data")
    recommender = Recommender.load(trained / "model")

    def short_beams(model, builder, table, histories, beams, **kwargs):
        items = np.zeros((len(histories), beams), dtype=np.int64)
        items[:, :5] = np.arange(1, 6)
        return items, np.zeros(items.shape, dtype=np.float32)

    monkeypatch.setattr(recommender_module, "recommend_items", short_beams)
    metrics = recommender.evaluate(dataset, "test", beams=30)
    assert metrics["invalid_rate"] == 0.0
    assert metrics["empty_rate"] == pytest.approx(25 / 30)


def test_demo_rerun_makes_the_demo_current_again(trained, tmp_path, monkeypatch, capsys):
    from genrec.commands import demo
    from genrec.core.layout import resolve_dataset_dir, remember_current_dataset

    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path / "root")
    remember_current_dataset(trained / "data")  # as if the demo had been prepared ...
    other = tmp_path / "other"
    other.mkdir()
    (other / "stats.json").write_text("{}")
    remember_current_dataset(other)  # ... and then another dataset
    demo._prepare(trained / "data")  # the demo's folder is already prepared: no new prepare
    assert resolve_dataset_dir(None) == (trained / "data").resolve()
    assert "current dataset again" in capsys.readouterr().out


def test_demo_labels_every_number_and_leaves_seen_items_out(tmp_path, monkeypatch, capsys):
    """The demo's own output, with the pipeline's slow steps replaced by canned results."""
    import argparse

    from genrec import pipeline
    from genrec.commands import demo
    from genrec.commands.report import METRIC_KEYS

    data = tmp_path / "demo"
    (data / "tokenizer").mkdir(parents=True)
    (data / "stats.json").write_text("{}")
    (data / "tokenizer" / "semantic_ids.npy").write_text("")
    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path)
    grid = [{"weights": {"prior": 0.0}, "ndcg@10": 0.0411}, {"weights": {"prior": 4.0}, "ndcg@10": 0.3}]
    from genrec.recommender.trainer import TrainingState

    trained_result = pipeline.TrainedRecommender(data / "recommender", TrainingState(best_ndcg=0.0411, best_step=1200),
                                                 fusion={"weights": {"prior": 4.0}, "users": 400, "grid": grid})
    scores = {key: 0.1 for key in METRIC_KEYS}
    evaluation = {**scores, "fusion": {"prior": 4.0}, "alone": {"model": dict(scores)}, "num_users": 4000,
                  "num_items": 500, "invalid_rate": 0.0, "empty_rate": 0.0, "transition_prior": dict(scores),
                  "popularity": dict(scores)}
    seen_flags = []

    def recommend(config):
        seen_flags.append(config.exclude_seen)
        history = [{"item_id": 1, "raw_id": "D00001", "title": "Rose cream"}]
        picks = [{"rank": 1, "item_id": 2, "raw_id": "D00002", "title": "Rose serum", "sid": [1, 2, 0], "score": -1.5}]
        return pipeline.Recommendations(1 if config.user else 0, "U1" if config.user else None, history, picks)

    monkeypatch.setattr(pipeline, "embed", lambda config: None)
    monkeypatch.setattr(pipeline, "train_recommender", lambda config: trained_result)
    evaluated = []
    monkeypatch.setattr(pipeline, "evaluate", lambda config: evaluated.append(config.exclude_seen) or evaluation)
    monkeypatch.setattr(pipeline, "recommend", recommend)
    assert demo._run(argparse.Namespace(out=str(data), progress=False)) == 0
    out = capsys.readouterr().out
    assert "model alone: best valid NDCG@10 0.0411" in out
    assert "prior 4 chosen on 400 validation users" in out
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split()[1:] == ["fused", "(prior", "4)", "model", "alone", "prior", "alone", "popularity"]
    assert out.count("higher is better") == 1 and "history of 1 item;" in out
    assert seen_flags == [True, True] and evaluated == [True]  # one history rule for metrics and picks
