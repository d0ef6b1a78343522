"""The benchmarks in bench/ (run from the repo root): the speed suite end to end on a tiny dataset
(every decode path and training variant in its own process, ratios against the baseline of the
same run, the fast path agreeing with generate), and the pipeline scripts' config, resume and
report logic without training anything."""

import json

import numpy as np
import pytest

import bench.time_to_quality as ttq
from bench.__main__ import main as bench_main
from bench.common import markdown_table
from bench.tokenizer_methods import VARIANTS as TOKENIZER_VARIANTS
from bench.tokenizer_methods import variant_options
from bench.tokenizer_speed import synthetic_embeddings, tokenizer_case
from bench.one_pass import VARIANTS as ENCODER_VARIANTS
from bench.training_quality import VARIANTS as TRAINING_VARIANTS
from genrec.core.config import apply_overrides
from genrec.core.errors import GenrecError
from tests.recommender_fixtures import write_dataset, write_tokenizer

TINY = {"num_encoder_layers": 1, "num_decoder_layers": 1, "d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32,
        "max_history": 5}


@pytest.mark.slow  # a benchmark's own check, heavy: run with -m slow
def test_bench_decode_and_train_sections(tmp_path, monkeypatch, capsys):
    import bench.suite

    # Every case is a fresh process (~4 s of imports each): time the baseline and genrec's path, not
    # the two intermediate variants (same code with other flags).
    assert list(bench.suite.TRAIN_VARIANTS) == ["plain", "bucketing", "bucketing+fast-dropout", "genrec"]
    monkeypatch.setattr(bench.suite, "TRAIN_VARIANTS", {k: bench.suite.TRAIN_VARIANTS[k] for k in ("plain", "genrec")})
    write_dataset(tmp_path / "data", num_users=30)
    write_tokenizer(tmp_path / "tok")
    (tmp_path / "model.json").write_text(json.dumps(TINY))
    code = bench_main(["--dataset", str(tmp_path / "data"), "--tokenizer", str(tmp_path / "tok"),
                       "--model-config", str(tmp_path / "model.json"), "--sections", "decode,train", "--beams", "5",
                       "--decode-users", "20", "--plain-users", "12", "--batch-size", "8", "--train-steps", "3",
                       "--plain-train-steps", "2", "--out", str(tmp_path / "out"), "--name", "tiny"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "tiny.json").read_text())
    assert report["command"].startswith("python -m bench --dataset ")
    runs = report["decode"]["runs"]
    assert runs["fast"]["users"] == 20 and runs["plain"]["users"] == runs["processor"]["users"] == 12
    assert report["decode"]["fast_equals_processor"] == 1.0
    for path, run in runs.items():
        assert report["decode"]["speedup_vs_plain"][path] == pytest.approx(
            run["users_per_second"] / runs["plain"]["users_per_second"])
        assert run["peak_rss_mb"] > 0
    train = report["train"]["runs"]
    assert set(train) == {"plain", "genrec"}
    assert train["plain"]["mean_input_width"] == 5 * 4 + 1 > train["genrec"]["mean_input_width"]
    assert train["genrec"]["keep_freed_memory"] and not train["plain"]["keep_freed_memory"]
    assert report["train"]["speedup_vs_plain"]["plain"] == 1.0
    assert report["hardware"]["cores"] >= 1 and "torch" in report["hardware"]
    markdown = (tmp_path / "out" / "tiny.md").read_text()
    assert "## Decoding" in markdown and "## Training step" in markdown
    assert "| fast | 20 |" in markdown and "| plain | 2 | 21.0 |" in markdown


def test_tokenizer_case_on_synthetic_items():
    settings = {"seed": 0, "synthetic_batch_size": 128, "synthetic_steps": 2}
    for method in ("rkmeans", "r3vae"):
        row = tokenizer_case({"settings": settings, "method": method, "items": 600, "codebook_size": 8})
        assert row["items"] == 600 and len(row["usage"]) == 3 and row["fit_seconds"] > 0
        assert all(0 < u <= 1 for u in row["usage"])
    x = synthetic_embeddings(50, 12, seed=1)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)


def test_bench_rejects_bad_options(tmp_path, capsys):
    write_dataset(tmp_path / "data")
    assert bench_main(["--dataset", str(tmp_path / "data"), "--sections", "decode,fly"]) == 2
    assert "unknown fly" in capsys.readouterr().err
    assert bench_main(["--dataset", str(tmp_path / "data"), "--sections", "decode"]) == 2
    assert "no tokenizer artifact" in capsys.readouterr().err
    write_tokenizer(tmp_path / "data" / "tokenizer")
    assert bench_main(["--dataset", str(tmp_path / "data"), "--synthetic-items", "1e6"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err


def test_markdown_table():
    assert markdown_table(["a", "b"], [[1, "x"], [2.5, ""]]) == ["| a | b |", "|---|---|", "| 1 | x |", "| 2.5 |  |"]
    assert markdown_table(["only"], []) == ["| only |", "|---|"]


def test_the_committed_configs_are_valid_pipeline_options(tmp_path):
    from genrec.pipeline import TokenizerTrainingConfig
    from genrec.recommender.model import RecommenderConfig
    from genrec.recommender.train_config import SASRecTrainConfig, TrainConfig
    from genrec.tokenizer.registry import method_config

    config = ttq.read_config("bench/configs/amazon-beauty-cpu-60min.json")
    stages = ttq.pipeline_stages("amazon-beauty", "/raw", tmp_path / "amazon-beauty", config)
    assert [name for name, _, _ in stages] == ["prepare", "embed", "train-tokenizer", "train-recommender+sasrec",
                                               "choose-fusion", "evaluate", "evaluate-sasrec", "evaluate-learned",
                                               "evaluate-sasrec-history-kept", "evaluate-history-kept"]
    assert stages[-1][2].exclude_seen is False and stages[-2][2].exclude_seen is False
    side_by_side = stages[3][2]  # as `genrec train-recommender --sasrec-config ...` runs it
    assert side_by_side.fusion_grids == {"prior": (0.0,)}  # chosen after both models are trained
    assert side_by_side.sasrec_beside.train == SASRecTrainConfig(**config["sasrec"]["train"])
    assert stages[5][2].fusion is None and stages[6][2].model.endswith("sasrec")  # the chosen weights, then SASRec
    no_sasrec = ttq.pipeline_stages("amazon-beauty", "/raw", tmp_path / "b", {k: v for k, v in config.items()
                                                                              if k != "sasrec"})
    assert [name for name, _, _ in no_sasrec][3:] == ["train-recommender", "choose-fusion", "evaluate",
                                                       "evaluate-history-kept"]
    assert no_sasrec[3][2].sasrec_beside is None  # a config without "sasrec" trains the T5 alone
    tokenizer = stages[2][2]
    assert isinstance(tokenizer, TokenizerTrainingConfig) and tokenizer.method == "opq"
    assert tokenizer.options == method_config("opq")
    assert tokenizer.collaborative_weight == 1.0
    for path in ("bench/configs/amazon-beauty-cpu-60min.json", "bench/configs/training-quality.json"):
        config = json.loads(open(path).read())
        apply_overrides(TrainConfig(), config["train"])
        apply_overrides(RecommenderConfig(), config.get("model", {}))
    for overrides, _, _ in TRAINING_VARIANTS.values():
        apply_overrides(TrainConfig(), overrides)
    for overrides in ENCODER_VARIANTS.values():
        assert set(overrides) == {"encoder_attention", "encoder_input", "item_text", "item_ids"}
        apply_overrides(RecommenderConfig(), overrides)
    (tmp_path / "old.json").write_text(json.dumps({"tokenizer_args": ["--method", "r3vae"], "train": {}}))
    with pytest.raises(GenrecError, match="tokenizer_args"):
        ttq.read_config(tmp_path / "old.json")


def test_every_tokenizer_variant_is_a_valid_method_config():
    from genrec.tokenizer.registry import build_tokenizer

    for variant in TOKENIZER_VARIANTS:
        method, options = variant_options(variant, seed=3, extra={"codebook_size": 8})
        assert options["seed"] == 3 and options["codebook_size"] == 8
        build_tokenizer(method, options)  # an option name the method lacks raises
    with pytest.raises(GenrecError, match="unknown variant"):
        variant_options("r3vae-typo", 0, {})


def _fake_stages(dataset, attempts):
    """Stages that write what the report reads; train-recommender is interrupted on its first attempt."""
    def prepare(config):
        dataset.mkdir(parents=True)

    def train_recommender(config):
        attempts.append(config)
        if len(attempts) == 1:
            raise KeyboardInterrupt
        model = dataset / "recommender"
        model.mkdir()
        lines = [{"step": s, "seconds": 10.0 * s, "valid": {"ndcg@10": 0.01 * s, "recall@10": 0.02 * s}}
                 for s in (1, 2)]
        (model / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
        (model / "genrec.json").write_text(json.dumps({"best_step": 2, "best_valid_ndcg@10": 0.02, "steps": 2,
                                                       "epochs": 1.0, "train_seconds": 20.0, "recipe": "cpu",
                                                       "stop_reason": "steps", "train_config": {"lr": 0.003},
                                                       "model_config": {"encoder_input": "items"}}))

    def evaluate(config):
        metrics = {k: 0.1 for k in ttq.TEST_KEYS}
        alone = {k: 0.05 for k in ttq.TEST_KEYS}
        (dataset / "recommender" / "eval_test.json").write_text(json.dumps({
            **metrics, "fusion": {"prior": 2.0}, "alone": {"model": alone}, "popularity": metrics,
            "transition_prior": metrics}))

    nothing = lambda config: None  # noqa: E731
    return [("prepare", prepare, "p"), ("embed", nothing, "e"), ("train-tokenizer", nothing, "t"),
            ("train-recommender", train_recommender, "r"), ("choose-fusion", nothing, "c"), ("evaluate", evaluate, "v")]


def test_time_to_quality_resumes_and_reports_into_the_work_folder(tmp_path, monkeypatch, capsys):
    import genrec.core.layout as layout

    attempts = []
    monkeypatch.setattr(ttq, "pipeline_stages", lambda name, raw, dataset, config: _fake_stages(dataset, attempts))
    monkeypatch.setattr(layout, "DATA_ROOT", layout.DATA_ROOT)  # the script points it at --work; undo after
    work = tmp_path / "work"
    argv = ["--dataset-name", "ml-1m", "--raw-dir", str(tmp_path), "--config", "bench/configs/amazon-beauty-cpu-60min.json",
            "--work", str(work), "--name", "run"]
    assert ttq.main(argv) == 130  # interrupted in train-recommender
    state = json.loads((work / ttq.STATE_FILE).read_text())
    assert state["done"] == ["prepare", "embed", "train-tokenizer"] and "train-recommender" in state["seconds"]
    assert layout.DATA_ROOT == work.resolve()
    assert ttq.main(argv) == 0  # prepare would fail if run again (its folder exists): finished stages are skipped
    assert len(attempts) == 2
    report = json.loads((work / "run.json").read_text())
    assert set(report["stage_seconds"]) == {name for name, _, _ in _fake_stages(work, [])}
    assert report["total_seconds"] == pytest.approx(sum(report["stage_seconds"].values()))
    assert report["command"].startswith("python -m bench.time_to_quality ")
    assert [r["step"] for r in report["validation_curve"]] == [1, 2]
    assert (work / "run.md").is_file() and (work / "run.png").is_file()
    assert "# Time to quality: ml-1m on" in (work / "run.md").read_text()
    rows = {row["decoding"]: row for row in report["test_rows"]}
    assert set(rows) == {"genrec fused (prior 2)", "T5 model alone", "transition prior alone", "popularity"}
    assert rows["T5 model alone"]["recall@10"] == 0.05 and "| T5 model alone |" in (work / "run.md").read_text()
    assert ttq.plot_title("ml-1m", {"gpu": None, "cores": 2}).startswith("ml-1m on 2 CPU cores")


def test_every_config_in_bench_configs_is_valid(tmp_path):
    """Each bench/configs/*.json parses into TrainConfig, RecommenderConfig and tokenizer options; the
    per-preset 60-minute configs also run through bench.time_to_quality's reader and stages."""
    from pathlib import Path

    from genrec.data_prep.presets import PRESETS
    from genrec.pipeline import tokenizer_config_from
    from genrec.recommender.model import RecommenderConfig
    from genrec.recommender.train_config import TrainConfig
    from genrec.recommender.sasrec_config import SASRecConfig
    from genrec.recommender.train_config import SASRecTrainConfig
    from genrec.tokenizer.registry import build_tokenizer

    paths = sorted(Path("bench/configs").glob("*.json"))
    presets = ("amazon-beauty", "amazon-sports", "amazon-toys", "amazon-clothing", "ml-1m", "lastfm")
    assert {f"{name}-cpu-60min.json" for name in presets} <= {path.name for path in paths}
    for path in paths:
        config = json.loads(path.read_text())
        train = apply_overrides(TrainConfig(), config.get("train", {}), str(path))
        apply_overrides(RecommenderConfig(), config.get("model", {}), str(path))
        tokenizer = tokenizer_config_from(config.get("tokenizer", {}))
        build_tokenizer(tokenizer.method, tokenizer.options)
        assert tokenizer.collaborative_weight >= 0 and tokenizer.collaborative_dim >= 1
        for method, options in config.get("method_options", {}).items():
            build_tokenizer(method, options)
        name = path.name.removesuffix("-cpu-60min.json")
        if name in presets:
            assert name in PRESETS
            stages = ttq.pipeline_stages(name, "/raw", tmp_path / name, ttq.read_config(path))
            assert [stage for stage, _, _ in stages][3:] == ["train-recommender+sasrec", "choose-fusion", "evaluate",
                                                             "evaluate-sasrec", "evaluate-learned",
                                                             "evaluate-sasrec-history-kept", "evaluate-history-kept"]
            assert 0 < train.time_budget_minutes <= 40  # the other stages need the rest of the hour
            sasrec = config["sasrec"]
            assert set(sasrec) <= {"train", "model", "text"}
            apply_overrides(SASRecTrainConfig(), sasrec.get("train", {}), str(path))
            apply_overrides(SASRecConfig(), sasrec.get("model", {}), str(path))
            assert 0 < sasrec["train"]["time_budget_minutes"] <= 40


def test_training_quality_runs_every_variant_and_seed_and_pairs_them_by_seed(tmp_path, monkeypatch):
    """Each (variant, seed) gets its own run with exactly its one change, no periodic validation, and
    the report pairs variants with the defaults by seed; a kept step other than the last is an error."""
    import bench.training_quality as tq

    calls = []

    def fake_run(function, payload, keep_freed_memory=False):
        calls.append((payload["train"], keep_freed_memory))
        model = tmp_path / "work" / payload["model"].rsplit("/", 1)[-1]
        model.mkdir(parents=True, exist_ok=True)
        seed, bucketing = payload["train"]["seed"], payload["train"].get("sort_window", 1) > 1
        valid = {k: 0.02 + 0.001 * seed + (0.0005 if bucketing else 0.0) for k in tq.KEYS}
        (model / "genrec.json").write_text(json.dumps({"train_seconds": 10.0 + seed, "steps": 5, "best_step": 5,
                                                       "epochs": 1.0}))
        (model / "eval_valid.json").write_text(json.dumps(valid))
        return {}

    monkeypatch.setattr(tq, "run_isolated", fake_run)
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"train": {"epochs": 1, "eval_every": 2}, "model": {"d_model": 16}}))
    argv = ["--dataset", str(tmp_path), "--config", str(config), "--work", str(tmp_path / "work"),
            "--variants", "defaults,bucketing,glibc_malloc", "--seeds", "2", "--name", "tq"]
    assert tq.main(argv) == 0
    assert len(calls) == 6 and all(train["eval_every"] > 10**6 for train, _ in calls)
    assert [train["seed"] for train, _ in calls] == [0, 1, 0, 1, 0, 1]
    assert [train.get("sort_window") for train, _ in calls[2:4]] == [50, 50]
    assert [keep for _, keep in calls] == [True, True, True, True, False, False]
    report = json.loads((tmp_path / "work" / "tq.json").read_text())
    assert report["variants"]["bucketing"]["paired_difference_vs_defaults"]["recall@10"] == "+0.0005 ± 0.0000"
    assert "glibc_malloc" in (tmp_path / "work" / "tq.md").read_text()

    (tmp_path / "work" / "defaults-seed0" / "genrec.json").write_text(json.dumps({"steps": 5, "best_step": 3}))
    monkeypatch.setattr(tq, "run_isolated", lambda *a, **k: {})
    assert tq.main(argv) == 2  # a best-of-checkpoints model is not a final-step evaluation
    bad = [a if a != "defaults,bucketing,glibc_malloc" else "defaults,nope" for a in argv]
    assert tq.main(bad) == 2  # an unknown variant is a one-line error


def test_time_to_quality_redo_from_runs_that_stage_and_the_later_ones_again(tmp_path, monkeypatch):
    import genrec.core.layout as layout

    runs, attempts = [], []

    def stages(name, raw, dataset, config):
        fake = _fake_stages(dataset, attempts)
        counted = lambda stage, function: lambda config: (runs.append(stage), function(config))  # noqa: E731
        return [(stage, counted(stage, function), c) for stage, function, c in fake]

    monkeypatch.setattr(ttq, "pipeline_stages", stages)
    monkeypatch.setattr(layout, "DATA_ROOT", layout.DATA_ROOT)
    work = tmp_path / "work"
    argv = ["--dataset-name", "ml-1m", "--raw-dir", str(tmp_path), "--config", "bench/configs/amazon-beauty-cpu-60min.json",
            "--work", str(work), "--name", "run"]
    assert ttq.main(argv) == 130 and ttq.main(argv) == 0  # interrupted once, then finished
    runs.clear()
    assert ttq.main([*argv, "--redo-from", "choose-fusion"]) == 0
    assert runs == ["choose-fusion", "evaluate"]  # prepare would fail if run again: the earlier stages are kept
    report = json.loads((work / "run.json").read_text())
    assert report["redone"] == ["choose-fusion", "evaluate"] and len(report["commands"]) == 3
    assert "were run again (`--redo-from`)" in (work / "run.md").read_text()
    assert ttq.main([*argv, "--redo-from", "nowhere"]) == 2


def test_time_to_quality_seed_reaches_every_trained_part_and_still_builds():
    """--seed S sets the tokenizer's, the T5 trainer's and SASRec's seed and the choose-fusion users,
    without touching the rest of the config; the seeded config still builds a tokenizer."""
    from pathlib import Path

    from genrec.pipeline import tokenizer_config_from
    from genrec.tokenizer.registry import build_tokenizer

    config = ttq.read_config("bench/configs/amazon-beauty-cpu-60min.json")
    seeded = ttq.with_seed(config, 2)
    assert seeded["tokenizer"]["seed"] == seeded["train"]["seed"] == seeded["sasrec"]["train"]["seed"] == 2
    assert seeded["sasrec"]["train"]["loss"] == config["sasrec"]["train"]["loss"]
    assert "seed" not in config["train"]  # the original is not changed
    tokenizer = tokenizer_config_from(seeded["tokenizer"])
    assert build_tokenizer(tokenizer.method, tokenizer.options).config.seed == 2
    stages = dict((name, stage_config) for name, _, stage_config in
                  ttq.pipeline_stages("amazon-beauty", "/raw", Path("/tmp/x/amazon-beauty"), seeded))
    assert stages["choose-fusion"].seed == 2
    assert ttq.with_seed({"train": {}}, 1) == {"tokenizer": {"seed": 1}, "train": {"seed": 1}}


def test_seed_summary_means_rows_of_the_same_decoding_and_refuses_different_configs(tmp_path):
    """Rows are matched by their decoding's kind (weights chosen per seed are kept as settings);
    mean and sample std against numpy; runs whose configs differ beyond the seeds are refused."""
    import numpy as np

    from bench import seed_summary

    def report(seed, fused, alone, weights):
        row = {key: 0.0 for key in ttq.TEST_KEYS}
        return {"command": f"run {seed}", "total_seconds": 60.0 * (40 + seed),
                "config": {"train": {"seed": seed, "threads": 1}, "tokenizer": {"seed": seed}},
                "test_rows": [{**row, "decoding": f"genrec fused ({weights})", "recall@10": fused},
                              {**row, "decoding": "SASRec alone", "recall@10": alone}]}

    paths = []
    runs = ((0, 0.10, 0.09, "prior 2"), (1, 0.12, 0.095, "prior 4"), (2, 0.11, 0.1, "prior 2"))
    for seed, fused, alone, weights in runs:
        paths.append(tmp_path / f"s{seed}.json")
        paths[-1].write_text(json.dumps(report(seed, fused, alone, weights)))
    assert seed_summary.main([*map(str, paths), "--out", str(tmp_path), "--name", "seeds"]) == 0
    summary = json.loads((tmp_path / "seeds.json").read_text())
    fused = summary["rows"][0]
    assert fused["decoding"] == "genrec fused" and fused["settings"][1] == "genrec fused (prior 4)"
    assert fused["recall@10"]["mean"] == pytest.approx(0.11)
    assert fused["recall@10"]["std"] == pytest.approx(np.std([0.10, 0.12, 0.11], ddof=1))
    assert summary["seeds"] == [0, 1, 2] and "0.1100 ± 0.0100" in (tmp_path / "seeds.md").read_text()
    odd = report(3, 0.1, 0.1, "prior 2")
    odd["config"]["train"]["threads"] = 2
    (tmp_path / "odd.json").write_text(json.dumps(odd))
    assert seed_summary.main([str(paths[0]), str(tmp_path / "odd.json"), "--out", str(tmp_path), "--name", "x"]) == 2
    assert seed_summary.main([str(paths[0]), "--out", str(tmp_path), "--name", "x"]) == 2
    (tmp_path / "other.json").write_text(json.dumps({"runs": []}))  # e.g. a cold-start report
    assert seed_summary.main([str(paths[0]), str(tmp_path / "other.json"), "--out", str(tmp_path), "--name", "x"]) == 2


def test_seed_summary_against_pairs_runs_by_seed_on_test_and_on_the_chosen_validation_rows(tmp_path):
    """--against: B - A per seed (whatever the file order), a t-interval from genrec.eval.paired, and
    the validation numbers of the decoding each run chose, not its grid's best row under another rule."""
    import numpy as np
    from scipy.stats import t

    from bench import seed_summary

    def report(seed, method, fused, valid_fused, valid_alone):
        row = {key: 0.0 for key in ttq.TEST_KEYS}
        grid = [{"weights": {"prior": 0.0}, "exclude_seen": True, "recall@10": 0.1, "ndcg@10": valid_alone},
                {"weights": {"prior": 2.0}, "exclude_seen": True, "recall@10": 0.2, "ndcg@10": valid_fused},
                {"weights": {"prior": 2.0}, "exclude_seen": False, "recall@10": 0.9, "ndcg@10": 0.9}]
        return {"command": f"{method} {seed}", "total_seconds": 60.0,
                "config": {"train": {"seed": seed}, "tokenizer": {"method": method, "seed": seed}},
                "fusion": {"weights": {"prior": 2.0}, "exclude_seen": True, "grid": grid},
                "test_rows": [{**row, "decoding": "genrec fused (prior 2)", "recall@10": fused, "ndcg@10": fused / 2}]}

    ours, theirs = [], []
    values = {0: (0.11, 0.10), 1: (0.13, 0.12), 2: (0.12, 0.10)}  # seed: (ours, theirs), test fused Recall@10
    for seed, (b, a) in values.items():
        ours.append(tmp_path / f"b{seed}.json")
        ours[-1].write_text(json.dumps(report(seed, "opq", b, 0.05 + seed / 100, 0.03)))
        theirs.append(tmp_path / f"a{seed}.json")
        theirs[-1].write_text(json.dumps(report(seed, "r3vae", a, 0.04 + seed / 100, 0.03)))
    argv = [*map(str, ours), "--against", *map(str, reversed(theirs)), "--out", str(tmp_path), "--name", "pair"]
    assert seed_summary.main(argv) == 0
    paired = json.loads((tmp_path / "pair.json").read_text())["paired"]
    d = np.array([b - a for b, a in values.values()])
    test = paired["test"]["genrec fused"]["recall@10"]
    half = t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3)
    assert test["difference"]["mean"] == pytest.approx(d.mean()) and test["reference"] == pytest.approx(0.32 / 3)
    assert test["difference"]["low"] == pytest.approx(d.mean() - half)
    valid = paired["validation"]
    assert valid["genrec fused"]["ndcg@10"]["difference"]["mean"] == pytest.approx(0.01)  # chosen row, not 0.9
    assert valid["genrec fused"]["ndcg@10"]["difference"]["beyond_noise"] is True
    assert valid["T5 model alone"]["ndcg@10"]["difference"]["mean"] == pytest.approx(0.0)
    assert "## Paired against" in (tmp_path / "pair.md").read_text()
    argv = [*map(str, ours), "--against", *map(str, theirs[:2]), "--out", str(tmp_path), "--name", "x"]
    assert seed_summary.main(argv) == 2  # seeds must match


def test_history_kept_rows_follow_the_default_rule_when_it_leaves_history_out(tmp_path):
    model = tmp_path / "recommender"
    model.mkdir()
    metrics = lambda value: {k: value for k in ttq.TEST_KEYS}  # noqa: E731
    test = {**metrics(0.10), "fusion": {"prior": 2.0, "sasrec": 4.0}, "exclude_seen": True,
            "alone": {"model": metrics(0.06)}, "transition_prior": metrics(0.07), "popularity": metrics(0.01)}
    kept = {**metrics(0.09), "fusion": {"prior": 2.0, "sasrec": 4.0}, "exclude_seen": False,
            "alone": {"model": metrics(0.05)}}
    sasrec_kept = {**metrics(0.085), "fusion": {"prior": 1.0}, "exclude_seen": False,
                   "alone": {"model": metrics(0.08)}}
    (model / ttq.HISTORY_KEPT_FILE).write_text(json.dumps(kept))
    (model / ttq.SASREC_HISTORY_KEPT_FILE).write_text(json.dumps(sasrec_kept))
    rows = dict(ttq.test_rows(model, test))
    assert rows["genrec fused (prior 2, sasrec 4), history kept"]["recall@10"] == 0.09
    assert rows["SASRec alone, history kept"]["recall@10"] == 0.08
    assert rows["T5 model alone, history kept"]["recall@10"] == 0.05
    assert rows["T5 model alone"]["recall@10"] == 0.06
    assert not any("history kept" in label for label, _ in ttq.test_rows(model, {**test, "exclude_seen": False}))
