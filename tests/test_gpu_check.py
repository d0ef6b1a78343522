"""bench.gpu_check end to end on a tiny dataset and the CPU (the GPU path's script, before a GPU runs it)."""

import json

import pytest

from bench import gpu_check
from tests.recommender_fixtures import write_dataset, write_tokenizer


@pytest.mark.slow  # a benchmark's own check, heavy: run with -m slow
def test_the_check_trains_evaluates_and_reports(tmp_path):
    write_dataset(tmp_path / "data", num_users=40)
    write_tokenizer(tmp_path / "data" / "tokenizer")
    out = tmp_path / "check"
    code = gpu_check.main(["--dataset", str(tmp_path / "data"), "--out", str(out), "--minutes", "1", "--processes", "1",
                           "--train-flag=--max-steps=4", "--train-flag=--eval-every=2", "--train-flag=--batch-size=16"])
    report = json.loads((out / "gpu_check.json").read_text())
    assert code == 0 and report["ok"], report["stages"]
    assert [s["stage"] for s in report["stages"]] == ["train-recommender", "evaluate"]  # the tokenizer was there
    assert report["training"]["recipe"] == "tiger" and report["training"]["steps"] == 4
    assert 0 <= report["test"]["model_alone"]["recall@10"] <= 1
    assert "the T5 alone" in (out / "gpu_check.md").read_text()


def test_a_failing_stage_stops_the_check_with_its_log(tmp_path):
    write_dataset(tmp_path / "data", num_users=40)
    write_tokenizer(tmp_path / "data" / "tokenizer")
    out = tmp_path / "check"
    assert gpu_check.main(["--dataset", str(tmp_path / "data"), "--out", str(out), "--processes", "1",
                           "--train-flag=--no-such-flag"]) == 1
    report = json.loads((out / "gpu_check.json").read_text())
    assert [s["stage"] for s in report["stages"]] == ["train-recommender"] and not report["ok"]
    assert "--no-such-flag" in report["stages"][0]["log_tail"]
    assert "failed; the end of its log" in (out / "gpu_check.md").read_text()


def test_several_gpus_train_through_accelerate_launch():
    command = gpu_check.genrec_command(["train-recommender", "--dataset", "d"], processes=4)
    assert command[1:7] == ["-m", "accelerate.commands.launch", "--num_processes", "4", "--multi_gpu", "-m"]
    assert command[7:] == ["genrec.cli", "train-recommender", "--dataset", "d"]
    assert gpu_check.genrec_command(["evaluate"], processes=1)[1:] == ["-m", "genrec.cli", "evaluate"]
