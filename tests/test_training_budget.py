"""Training that sizes itself: the time budget (stops early, still a finished artifact, LR schedule),
recipes (auto/cpu/tiger, flags on top, the one-line notice), and validation metrics with their
standard errors."""

import json
import math

import numpy as np
import pytest
import torch

from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.data_prep.dataset import load_processed_dataset
from genrec.eval.ranking_metrics import ranking_metrics, target_ranks
from genrec.recommender import recipes
from genrec.recommender.model import RecommenderConfig
from genrec.recommender.recommender import Recommender
from genrec.recommender.train import train_recommender
from genrec.recommender.train_config import TrainConfig
from genrec.recommender.trainer import lr_lambda
from genrec.tokenizer.artifact import load_semantic_ids
from tests.recommender_fixtures import write_dataset, write_tokenizer

TINY = {"num_encoder_layers": 1, "num_decoder_layers": 1, "d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32,
        "dropout": 0.0, "max_history": 5}


@pytest.fixture
def tiny(tmp_path):
    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    return tmp_path


def test_standard_errors_match_a_direct_numpy_computation():
    rng = np.random.default_rng(0)
    ranked = np.stack([rng.permutation(40)[:30] for _ in range(500)])
    targets = rng.integers(0, 40, size=500)
    metrics = ranking_metrics(ranked, targets)
    ranks = target_ranks(ranked, targets)
    for k in (5, 10, 20, 30):
        hit = (ranks > 0) & (ranks <= k)
        gain = np.where(hit, 1.0 / np.log2(np.maximum(ranks, 1) + 1.0), 0.0)
        assert metrics[f"recall@{k}_se"] == pytest.approx(np.std(hit.astype(float), ddof=1) / math.sqrt(500))
        assert metrics[f"ndcg@{k}_se"] == pytest.approx(np.std(gain, ddof=1) / math.sqrt(500))
    assert 0 < metrics["ndcg@10_se"] < metrics["ndcg@10"]
    one = ranking_metrics(ranked[:1], targets[:1])
    assert one["recall@10_se"] == 0.0  # one user: no spread to estimate


def test_lr_follows_steps_or_the_budget_whichever_is_further():
    steps = lr_lambda(10, 110)
    assert steps(0) == pytest.approx(0.1) and steps(9) == pytest.approx(1.0)
    assert steps(60) == pytest.approx(0.55) and steps(110) == pytest.approx(0.1)
    used = {"share": 0.0}
    budget = lr_lambda(10, 110, lambda: used["share"])
    assert budget(60) == pytest.approx(steps(60))  # the budget is not binding: the step schedule, exactly
    used["share"] = 0.75
    assert budget(60) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 0.75)))  # the clock is ahead
    used["share"] = 1.3
    assert budget(60) == pytest.approx(0.1)  # out of budget: the floor
    assert budget(5) == pytest.approx(0.6)  # warmup is by steps


def test_time_budget_stops_early_and_still_writes_a_finished_artifact(tiny):
    dataset = load_processed_dataset(tiny / "data")
    sids = load_semantic_ids(tiny / "tok")
    config = TrainConfig(batch_size=8, max_steps=100_000, eval_every=100_000, eval_users=0, eval_beams=10,
                         warmup_steps=2, lr=3e-3, time_budget_minutes=1.5 / 60)
    state = train_recommender(dataset, sids, tiny / "model", RecommenderConfig(**TINY), config, progress=False)
    assert state.done and state.stop_reason == "time budget"
    assert 0 < state.step < 100_000 and state.best_step == state.step  # the one validation, at the stop
    assert 0 < state.train_seconds < 1.5 + 30  # inside the budget: tests/test_training_reliability.py
    meta = json.loads((tiny / "model" / "genrec.json").read_text())
    assert meta["steps"] == state.step and meta["stop_reason"] == "time budget"
    assert meta["best_valid_ndcg@10_se"] == state.best_ndcg_se >= 0
    assert not (tiny / "model" / "checkpoint").exists()
    log = [json.loads(line) for line in (tiny / "model" / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in log if "valid" in r][-1]
    assert final["step"] == state.step and {"recall@10_se", "ndcg@10_se"} <= set(final["valid"])
    assert final["lr"] < 3e-3 * 0.5  # the cosine ran on the budget's clock, not over the 100,000 steps
    recommender = Recommender.load(tiny / "model")
    assert recommender.recommend([[1, 2, 3]], 5)[0].shape == (1, 5)


def test_auto_recipe_is_cpu_without_cuda_else_tiger(monkeypatch):
    assert recipes.resolve_recipe("auto", cuda_available=False)[0] == "cpu"
    assert recipes.resolve_recipe("auto", cuda_available=True)[0] == "tiger"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert recipes.resolve_recipe("auto") == ("cpu", "no GPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert recipes.resolve_recipe("auto") == ("tiger", "GPU found")
    assert recipes.resolve_recipe("tiger") == ("tiger", "--recipe tiger")
    tiger = recipes.RECIPES["tiger"]
    assert tiger.train == TrainConfig() and tiger.model == RecommenderConfig()  # the dataclass defaults
    train, model = recipes.recipe_configs("cpu", {"lr": 0.01}, {"d_model": 64})
    assert train.lr == 0.01 and train.time_budget_minutes == 45 and model.d_model == 64
    assert model.encoder_input == "items" and model.item_text and model.item_ids
    assert model.num_encoder_layers == 2 and model.d_ff == 512
    train.lr = 1.0  # a copy: the recipe stays as it is
    assert recipes.recipe_configs("cpu")[0].lr == 3e-3
    with pytest.raises(GenrecError, match="unknown option.*no_such_field"):
        recipes.recipe_configs("cpu", {"no_such_field": 1})


def test_notice_is_one_line_naming_the_recipe_and_the_other():
    line = recipes.recipe_notice("cpu", "no GPU", *recipes.recipe_configs("cpu"))
    assert "\n" not in line
    assert line.startswith("recipe cpu (no GPU): T5 2+2 layers d128, one position per item, stops after 45 min")
    assert "--recipe tiger for TIGER's 4+4 layers d128, 20,000 steps" in line
    other = recipes.recipe_notice("tiger", "GPU found", TrainConfig(), RecommenderConfig())
    assert other.startswith("recipe tiger (GPU found): T5 4+4 layers d128, 20,000 steps; --recipe cpu for a small T5")


def test_cli_recipe_with_flags_and_config_on_top(tiny, monkeypatch, capsys):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tiny / "config.json").write_text(json.dumps({"model": TINY, "train": {"eval_users": 0, "eval_beams": 10}}))
    args = ["train-recommender", "--dataset", str(tiny / "data"), "--tokenizer", str(tiny / "tok"),
            "--out", str(tiny / "model"), "--config", str(tiny / "config.json"), "--max-steps", "6",
            "--batch-size", "8", "--eval-every", "3", "--warmup-steps", "1", "--time-budget", "30", "--no-progress",
            "--t5-only"]
    assert main(args) == 0
    out = capsys.readouterr().out
    notices = [line for line in out.splitlines() if line.startswith("recipe ")]
    assert notices == [line for line in out.splitlines() if "--recipe tiger" in line] and len(notices) == 1
    assert notices[0].startswith("recipe cpu (no GPU): T5 1+1 layers d16, one position per item, stops after 30 min (or 6 steps)")
    assert "± " in out and "at step" in out and "valid R@10" in out and "±" in out.split("valid R@10")[1]
    meta = json.loads((tiny / "model" / "genrec.json").read_text())
    assert meta["recipe"] == "cpu" and meta["stop_reason"] == "steps"
    train = meta["train_config"]
    assert train["time_budget_minutes"] == 30 and train["max_steps"] == 6 and train["batch_size"] == 8  # flags
    assert train["lr"] == recipes.RECIPES["cpu"].train.lr and train["patience"] == 6  # from the recipe
    assert meta["model_config"]["d_model"] == 16 and meta["model_config"]["dropout"] == 0.0  # --config
    assert main(args) == 0
    assert "already finished (best valid NDCG@10" in capsys.readouterr().out

    assert main(args[:5] + ["--out", str(tiny / "tiger"), "--recipe", "tiger", *args[7:]]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("recipe tiger (--recipe tiger): T5 1+1 layers d16")
    train = json.loads((tiny / "tiger" / "genrec.json").read_text())["train_config"]
    assert train["lr"] == TrainConfig().lr and train["patience"] == TrainConfig().patience


def test_tf32_only_on_cuda(monkeypatch):
    from genrec.recommender.trainer import use_tf32_on_cuda

    before = torch.get_float32_matmul_precision()
    assert not use_tf32_on_cuda(torch.device("cpu")) and torch.get_float32_matmul_precision() == before
    calls = []
    monkeypatch.setattr(torch, "set_float32_matmul_precision", calls.append)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert use_tf32_on_cuda(torch.device("cuda", 0)) and calls == ["high"] and torch.backends.cudnn.allow_tf32
