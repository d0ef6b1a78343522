"""bench.t5_options on tiny data: each variant trained once (a rerun trains nothing), decoded per
validation user, and compared with the first variant paired over the same users."""

import json

import numpy as np
import pytest

from bench import t5_options
from tests.recommender_fixtures import write_dataset, write_embedding_cache, write_tokenizer

TINY = "--max-steps 4 --eval-every 2 --eval-users 0 --batch-size 16 --warmup-steps 1 --d-model 16 --d-ff 32 " \
       "--num-heads 2 --d-kv 8 --encoder-layers 1 --decoder-layers 1"


@pytest.mark.slow  # a benchmark's own check, heavy: run with -m slow
def test_variants_train_once_and_compare_paired_on_validation(tmp_path):
    data = write_dataset(tmp_path / "data", num_users=30)
    write_embedding_cache(data, np.random.default_rng(0).normal(size=(30, 8)))
    write_tokenizer(data / "tokenizer")
    argv = ["--dataset", str(data), "--minutes", "5", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out"),
            "--variants", f"base={TINY}", f"text={TINY} --item-text", "--test", "text"]
    assert t5_options.main(argv) == 0
    report = json.loads((tmp_path / "out" / "t5-options.json").read_text())
    base, text = report["variants"]["base"], report["variants"]["text"]
    assert base["steps"] == text["steps"] == 4 and "test" in text and "test" not in base
    hits = {name: np.load(tmp_path / "work" / f"{name}.valid.npz")["hit@10"] for name in ("base", "text")}
    assert len(hits["base"]) == 30
    assert np.isclose(text["valid"]["hit@10_diff"], (hits["text"] - hits["base"]).mean())
    assert np.isclose(text["valid"]["hit@10"], hits["text"].mean()) and "hit@10_diff" not in base["valid"]
    log = (tmp_path / "work" / "base.train.log").read_text()
    assert t5_options.main(argv) == 0  # finished variants are not trained or decoded again
    assert (tmp_path / "work" / "base.train.log").read_text() == log
    assert "| valid | text |" in (tmp_path / "out" / "t5-options.md").read_text()
