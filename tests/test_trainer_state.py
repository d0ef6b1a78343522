"""The trainer's state is one dataclass that is also its checkpoint: what a checkpoint holds reads
back to the same state, under the JSON keys genrec.json and older checkpoints use."""

import json

import dataclasses

from genrec.recommender.model_config import RecommenderConfig
from genrec.recommender.train_config import TrainConfig
from genrec.recommender.trainer import STATE_FILE, TrainingState
from tests.recommender_fixtures import train_until_killed


def test_state_round_trips_through_its_json():
    state = TrainingState(step=8, epoch=1, batch_in_epoch=3, best_ndcg=0.25, best_ndcg_se=0.01, best_step=4,
                          bad_evals=1, warmup_end_seconds=2.5, train_config=TrainConfig(lr=0.1),
                          model_config=RecommenderConfig(d_model=32))
    data = state.as_json()
    assert data["best_ndcg@10"] == 0.25 and data["best_ndcg@10_se"] == 0.01 and "best_ndcg" not in data
    assert data["train_config"]["lr"] == 0.1 and data["model_config"]["d_model"] == 32  # the settings, as JSON
    configs = (state.train_config, state.model_config)  # the run's own, given back on resume
    assert TrainingState.from_json(json.loads(json.dumps(data)), *configs) == state
    assert TrainingState.from_json({**data, "a_key_of_an_older_version": 1}, *configs) == state


def test_a_checkpoint_holds_the_state_it_resumes_from(tmp_path, monkeypatch):
    from tests.recommender_fixtures import write_dataset, write_tokenizer
    from tests.test_training_reliability import _train  # the same tiny run

    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    train_until_killed(monkeypatch, lambda: _train(tmp_path, tmp_path / "model"), kill_at_step=11)
    saved = json.loads((tmp_path / "model" / "checkpoint" / STATE_FILE).read_text())
    train = TrainConfig(**saved["train_config"])
    model = RecommenderConfig(**saved["model_config"])
    state = TrainingState.from_json(saved, train, model)
    assert state.step == 8 and state.as_json() == saved and not state.done
    assert dataclasses.asdict(state.train_config) == saved["train_config"]
