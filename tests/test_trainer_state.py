"""The trainer's state is one dataclass that is also its checkpoint: what a checkpoint holds reads
back to the same state, under the JSON keys genrec.json and older checkpoints use."""

import json

from genrec.recommender.trainer import STATE_FILE, TrainingState
from tests.recommender_fixtures import train_until_killed


def test_state_round_trips_through_its_json():
    state = TrainingState(step=8, epoch=1, batch_in_epoch=3, best_ndcg=0.25, best_ndcg_se=0.01, best_step=4,
                          bad_evals=1, warmup_end_seconds=2.5, train_config={"lr": 0.1}, model_config={"d": 2})
    data = state.as_json()
    assert data["best_ndcg@10"] == 0.25 and data["best_ndcg@10_se"] == 0.01 and "best_ndcg" not in data
    assert TrainingState.from_json(json.loads(json.dumps(data))) == state
    assert TrainingState.from_json({**data, "a_key_of_an_older_version": 1}) == state


def test_a_checkpoint_holds_the_state_it_resumes_from(tmp_path, monkeypatch):
    from tests.recommender_fixtures import write_dataset, write_tokenizer
    from tests.test_training_reliability import _train  # the same tiny run

    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    train_until_killed(monkeypatch, lambda: _train(tmp_path, tmp_path / "model"), kill_at_step=11)
    saved = json.loads((tmp_path / "model" / "checkpoint" / STATE_FILE).read_text())
    state = TrainingState.from_json(saved)
    assert state.step == 8 and state.as_json() == saved and not state.done
