"""`train-recommender` trains SASRec beside the T5 by default (a child process), then chooses the
fusion with it; `--t5-only` trains the T5 alone; a failing or interrupted child is handled."""

import json
import os
import sys
import time

import numpy as np
import pytest

from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.pipeline import RecommenderTrainingConfig, SASRecBeside, train_recommender
from genrec.pipeline.beside import SASREC_LOG, training_beside
from tests.recommender_fixtures import write_dataset, write_embedding_cache, write_tokenizer

T5_TRAIN = {"max_steps": 4, "batch_size": 16, "eval_every": 2, "eval_users": 0, "eval_beams": 10,
            "warmup_steps": 1, "time_budget_minutes": 0}
T5_MODEL = {"d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32, "num_encoder_layers": 1, "num_decoder_layers": 1,
            "max_history": 5}
SASREC_TRAIN = {"batch_size": 8, "max_steps": 4, "eval_every": 2, "eval_users": 0, "warmup_steps": 1,
                "negatives": 10}
SASREC_MODEL = {"max_len": 6, "d_model": 16, "d_ff": 32, "num_layers": 1, "num_heads": 2}


@pytest.fixture
def tiny(tmp_path):
    write_dataset(tmp_path / "data", num_users=40)
    write_tokenizer(tmp_path / "tok")
    write_embedding_cache(tmp_path / "data", np.random.default_rng(1).normal(size=(30, 8)))
    return tmp_path


def _config(tiny, **options):
    return RecommenderTrainingConfig.from_options(**{
        "dataset": tiny / "data", "tokenizer": tiny / "tok", "out": tiny / "t5", "progress": False, "recipe": "cpu",
        "train": dict(T5_TRAIN), "model": dict(T5_MODEL), "fusion_grids": {"prior": (0.0, 1.0), "sasrec": (0.0, 2.0)},
        "fusion_users": 40, **options})


def test_the_default_trains_sasrec_beside_and_fuses_it(tiny):
    result = train_recommender(_config(tiny, sasrec_beside=SASRecBeside.from_options(train=SASREC_TRAIN, model=SASREC_MODEL)))
    sasrec = tiny / "data" / "sasrec"
    meta = json.loads((sasrec / "genrec.json").read_text())
    assert meta["kind"] == "sasrec" and meta["steps"] == 4 and meta["train_config"]["threads"] == 1
    assert result.fusion["sasrec"] == "../data/sasrec"  # chosen with the SASRec trained beside
    assert any(row["weights"].get("sasrec") == 2.0 for row in result.fusion["grid"])
    assert (tiny / "data" / SASREC_LOG).is_file()
    options = json.loads((tiny / "data" / "train_sasrec_options.json").read_text())
    assert options["train"]["max_steps"] == 4 and SASREC_MODEL.items() <= options["model"].items()


def test_t5_alone_trains_no_sasrec(tiny):
    result = train_recommender(_config(tiny, sasrec_beside=None))
    assert not (tiny / "data" / "sasrec").exists() and result.fusion["sasrec"] is None


def test_a_finished_t5_whose_sasrec_did_not_finish_trains_it_on_rerun_and_fuses_it(tiny):
    first = train_recommender(_config(tiny, sasrec_beside=None))  # as after --t5-only: a fusion without SASRec
    assert first.fusion["sasrec"] is None
    result = train_recommender(_config(tiny, sasrec_beside=SASRecBeside.from_options(train=SASREC_TRAIN, model=SASREC_MODEL)))
    assert result.already_done and (tiny / "data" / "sasrec" / "genrec.json").is_file()
    assert result.fusion["sasrec"] == "../data/sasrec"


def test_a_misspelt_sasrec_option_fails_before_training(tiny):
    with pytest.raises(GenrecError, match="no_such_option"):
        train_recommender(_config(tiny, sasrec_beside=SASRecBeside.from_options(train={"no_such_option": 1})))
    with pytest.raises(GenrecError, match="no_such_size"):
        train_recommender(_config(tiny, sasrec_beside=SASRecBeside.from_options(model={"no_such_size": 1})))
    with pytest.raises(GenrecError, match="multiple of num_heads"):
        train_recommender(_config(tiny, sasrec_beside=SASRecBeside.from_options(model={"d_model": 16, "num_heads": 3})))
    assert not (tiny / "t5").exists()  # nothing trained


def test_a_failing_sasrec_is_one_error_naming_its_log(tiny, capfd):
    (tiny / "occupied").write_text("a file where SASRec's output folder would go")
    with pytest.raises(GenrecError, match=r"SASRec training beside the T5 failed \(exit 2\); see .*train_sasrec.log"):
        train_recommender(_config(tiny, sasrec=tiny / "occupied", sasrec_beside=SASRecBeside.from_options(train=SASREC_TRAIN)))
    assert "occupied is a file" in (tiny / "data" / SASREC_LOG).read_text()  # the child's one-line error
    assert "SASRec training beside the T5 stopped with exit 2" in capfd.readouterr().out  # said when it happened


def test_the_child_runs_outside_any_distributed_launch(monkeypatch):
    from genrec.pipeline.beside import child_environment

    for key, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_PORT": "29500",
                       "ACCELERATE_MIXED_PRECISION": "no", "GENREC_DATA": "d"}.items():
        monkeypatch.setenv(key, value)
    env = child_environment()
    assert not {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "ACCELERATE_MIXED_PRECISION"} & set(env)
    assert env["GENREC_DATA"] == "d" and env["OMP_NUM_THREADS"] == "1"


def test_a_killed_parent_takes_the_child_with_it(tmp_path):
    import signal
    import subprocess
    import textwrap

    code = textwrap.dedent(f"""
        import sys, time
        from genrec.pipeline.beside import training_beside
        with training_beside([sys.executable, "-c", "import os, time; open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid())); time.sleep(120)"], __import__("pathlib").Path({str(tmp_path / 'log')!r})):
            time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.time() + 60
    while not (tmp_path / "pid").is_file() and time.time() < deadline:
        time.sleep(0.2)
    child = int((tmp_path / "pid").read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):  # the kernel sends the child SIGTERM when its parent dies
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the child outlived its killed parent")


def test_an_interrupted_t5_stops_the_child_at_once(tmp_path):
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        with training_beside(sleeper, tmp_path / "log"):
            raise KeyboardInterrupt
    assert time.perf_counter() - started < 20


def test_cli_t5_only_and_a_conflicting_sasrec_config(tiny, capsys):
    (tiny / "options.json").write_text(json.dumps({"train": T5_TRAIN, "model": T5_MODEL}))
    args = ["train-recommender", "--dataset", str(tiny / "data"), "--tokenizer", str(tiny / "tok"),
            "--out", str(tiny / "t5"), "--config", str(tiny / "options.json"), "--fusion-weights", "prior=0",
            "--no-progress"]
    (tiny / "sasrec.json").write_text(json.dumps({"train": {"loss": "full"}}))
    assert main([*args, "--t5-only", "--sasrec-config", str(tiny / "sasrec.json")]) == 2
    assert "--t5-only trains none" in capsys.readouterr().err
    assert main([*args, "--t5-only"]) == 0
    assert not (tiny / "data" / "sasrec").exists()
