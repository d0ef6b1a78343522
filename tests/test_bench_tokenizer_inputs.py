"""bench.tokenizer_inputs on a tiny dataset: two tokenizer inputs x two seeds, each a tokenizer, a T5
and a validation decode in its own dataset copy; paired differences per seed; a rerun redoes nothing."""

import json

import numpy as np
import pytest

from bench import tokenizer_inputs
from tests.recommender_fixtures import write_dataset, write_embedding_cache


@pytest.mark.slow  # about a minute: twelve child processes
def test_two_inputs_over_two_seeds_compared_on_validation(tmp_path):
    write_dataset(tmp_path / "data", num_users=40)
    write_embedding_cache(tmp_path / "data", np.random.default_rng(1).normal(size=(30, 8)))
    small = "--method rkmeans --codebook-size 4 --levels 2"
    argv = ["--dataset", str(tmp_path / "data"), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
            "--minutes", "0.05", "--seeds", "2", "--variants", f"w1={small} --collaborative-weight 1",
            f"w2={small} --collaborative-weight 2"]
    assert tokenizer_inputs.main(argv) == 0, (tmp_path / "work" / "w1-s0.log").read_text()[-2000:]
    report = json.loads((tmp_path / "out" / "tokenizer-inputs.json").read_text())
    first, second = report["variants"]["w1"], report["variants"]["w2"]
    assert [row["seed"] for row in second["per_seed"]] == [0, 1] and all(row["users"] == 40 for row in second["per_seed"])
    assert all(row["hit@10_diff"] == 0 for row in first["per_seed"])  # the first variant against itself
    w1 = np.load(tmp_path / "work" / "w1-s1" / "valid.npz")["hit@10"]
    w2 = np.load(tmp_path / "work" / "w2-s1" / "valid.npz")["hit@10"]
    assert second["per_seed"][1]["hit@10_diff"] == float((w2 - w1).mean())  # paired over the same users
    assert json.loads((tmp_path / "work" / "w2-s0" / "tokenizer" / "config.json").read_text())
    assert not (tmp_path / "data" / "tokenizer").exists()  # the source dataset is left as it was
    log = (tmp_path / "work" / "w2-s1.log").read_text()
    assert "trained" in log  # the T5's closing line
    assert tokenizer_inputs.main(argv) == 0
    assert (tmp_path / "work" / "w2-s1.log").read_text() == log  # every step was done: nothing ran again
