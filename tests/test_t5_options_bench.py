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


@pytest.mark.slow
def test_fused_share_chooses_each_fusion_on_validation_and_pairs_it_with_sasrec_and_prior(tmp_path):
    from bench import fused_share
    from genrec.core.io import read_json
    from genrec.pipeline import SASRecTrainingConfig, train_sasrec

    data = write_dataset(tmp_path / "data", num_users=30)
    write_embedding_cache(data, np.random.default_rng(0).normal(size=(30, 8)))
    write_tokenizer(data / "tokenizer")
    argv = ["--dataset", str(data), "--minutes", "5", "--work", str(tmp_path / "t5"), "--out", str(tmp_path / "o"),
            "--variants", f"a={TINY}", f"b={TINY} --dropout 0.2"]
    assert t5_options.main(argv) == 0
    sasrec = train_sasrec(SASRecTrainingConfig.from_options(
        dataset=data, progress=False, fusion_grids={"prior": (0.0, 1.0)},
        model=dict(max_len=6, d_model=16, d_ff=32, num_layers=1, num_heads=2, dropout=0.1),
        train={"batch_size": 8, "max_steps": 4, "eval_every": 2, "eval_users": 0, "warmup_steps": 1, "lr": 3e-3,
               "negatives": 10})).path
    argv = ["--dataset", str(data), "--sasrec", str(sasrec), "--models", f"a={tmp_path / 't5' / 'a'}",
            f"b={tmp_path / 't5' / 'b'}", "--work", str(tmp_path / "share"), "--out", str(tmp_path / "out")]
    assert fused_share.main(argv) == 0
    report = json.loads((tmp_path / "out" / "fused-share.json").read_text())
    work = tmp_path / "share"
    base = np.load(work / "sasrec_prior.valid.npz")["ndcg@10"]
    fused = {name: np.load(work / f"{name}.fused.valid.npz")["ndcg@10"] for name in ("a", "b")}
    for name in ("a", "b"):
        chosen = read_json(work / name / "genrec.json")["fusion"]
        assert report["models"][name]["fusion"]["weights"] == chosen["weights"] and chosen["users"] == 30
        assert np.isclose(report["models"][name]["valid_vs_sasrec_prior"]["ndcg@10_diff"], (fused[name] - base).mean())
    assert np.isclose(report["models"]["b"]["valid_vs_first"]["ndcg@10_diff"], (fused["b"] - fused["a"]).mean())
    assert report["models"]["a"]["valid_vs_first"] is None
    stamp = (work / "a.fused.valid.npz").stat().st_mtime_ns
    assert fused_share.main(argv) == 0 and (work / "a.fused.valid.npz").stat().st_mtime_ns == stamp  # resumed
    assert fused_share.main([*argv[:4], "--models", f"a={tmp_path}", *argv[7:]]) == 2  # not a trained model
