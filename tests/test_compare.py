"""``genrec compare`` on tiny data: one row per variant x seed, the report, resume of a partial and of
a killed study (only missing work is redone), two jobs as two one-thread processes, config errors
as one line; the paired differences and Spearman numbers against a direct computation."""

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from genrec.cli import main
from genrec.compare import report, runs
from genrec.compare.config import METHODS, StudyConfig
from genrec.data_prep import embeddings
from tests.recommender_fixtures import train_until_killed, write_dataset, write_embedding_cache

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "bench" / "configs" / "compare-tiny.json"
VARIANTS = {"r3vae@text+collaborative", "r3vae@text", "rkmeans@text+collaborative", "rkmeans@text",
            "r3vae-no-ref@text+collaborative", "r3vae-lambda0.001@text+collaborative"}  # lambda 0.01 is r3vae's own


def tiny_dataset(root: Path) -> Path:
    dataset = write_dataset(root / "data", num_users=40, num_items=30)
    vectors = np.random.default_rng(0).normal(size=(30, 12))
    write_embedding_cache(dataset, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return dataset


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny config's study, run once: (dataset, study folder, argv)."""
    root = tmp_path_factory.mktemp("compare")
    dataset = tiny_dataset(root)
    argv = ["compare", "--dataset", str(dataset), "--config", str(TINY), "--out", str(root / "study")]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
        assert main(argv) == 0
    return dataset, root / "study", argv


def test_one_row_per_variant_and_seed_with_both_decodings(study):
    _, out, _ = study
    report_json = json.loads((out / "compare.json").read_text(), parse_constant=pytest.fail)  # strict JSON: no NaN
    rows = [(r["variant"], r["seed"]) for r in report_json["runs"]]
    assert sorted(rows) == sorted((v, s) for v in VARIANTS for s in (0, 1))
    assert set(report_json["variants"]) == VARIANTS
    for run in report_json["runs"]:
        for decoding in ("alone", "fused"):
            assert set(runs.RANKING_KEYS) <= set(run[decoding])
            assert 0.0 <= run[decoding]["recall@5"] <= run[decoding]["recall@10"] <= 1.0
        assert run["validation_curve"] and run["validation_curve"][-1]["step"] == run["training"]["steps"] == 4
        assert (run["input"] == "text+collaborative") == (out / "runs" / f"{run['variant']}-seed{run['seed']}" /
                                                          "tokenizer" / "collaborative.npy").is_file()
        assert run["tokenizer_options"]["seed"] == run["seed"]
    lambdas = {r["variant"]: r["tokenizer_options"].get("metric_weight") for r in report_json["runs"]}
    assert lambdas["r3vae-lambda0.001@text+collaborative"] == 0.001 and lambdas["r3vae@text"] is None
    # every non-reference variant is paired with R3-VAE on its own input
    assert {name: d["against"] for name, d in report_json["paired_differences"].items()} == {
        "r3vae-no-ref@text+collaborative": "r3vae@text+collaborative", "rkmeans@text": "r3vae@text",
        "r3vae-lambda0.001@text+collaborative": "r3vae@text+collaborative",
        "rkmeans@text+collaborative": "r3vae@text+collaborative"}
    for run in report_json["runs"]:  # the validation numbers the default is chosen on: the recorded fusion choice
        meta = json.loads((out / "runs" / f"{run['variant']}-seed{run['seed']}" / "recommender" / "genrec.json").read_text())
        chosen = [r for r in meta["fusion"]["grid"] if r["weights"] == meta["fusion"]["weights"]
                  and r.get("exclude_seen") == meta["fusion"].get("exclude_seen")]
        assert run["validation"]["fused"]["ndcg@10"] == chosen[0]["ndcg@10"]
        assert run["validation"]["weights"] == run["fusion_weights"]
    assert report_json["default_choice"]["chosen"] in {"r3vae@text+collaborative", "r3vae@text",
                                                       report_json["default_choice"]["best"]}
    markdown = (out / "compare.md").read_text()
    for section in ("model alone", "fused", "Paired differences", "Tables 8-9", "Spearman", "late gain",
                    "Reference-vector projection", "Validation (fusion-choice users)", "Default: **"):
        assert section in markdown
    for png in ("recall_by_variant.png", "sid_metrics_vs_recall.png", "validation_curves.png", "codebook_usage.png",
                "reference_projection.png"):
        assert (out / png).stat().st_size > 1000


def test_a_partial_study_reruns_only_the_missing_runs(study, monkeypatch):
    dataset, out, argv = study
    before = json.loads((out / "compare.json").read_text())
    killed = out / "runs" / "rkmeans@text-seed1"  # stopped after its tokenizer and training, before its result
    (killed / runs.RESULT_FILE).unlink()
    shutil.rmtree(out / "runs" / "r3vae@text-seed0")  # never started
    calls = []
    for stage in ("train_tokenizer", "train_recommender", "evaluate"):
        original = getattr(runs.pipeline, stage)
        monkeypatch.setattr(runs.pipeline, stage, lambda config, stage=stage, original=original:
                            calls.append((stage, Path(getattr(config, "out", None) or config.output).parent.name)) or original(config))
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    assert main(argv) == 0
    assert sorted(calls) == sorted([("train_tokenizer", "r3vae@text-seed0"), ("train_recommender", "r3vae@text-seed0"),
                                    ("evaluate", "r3vae@text-seed0"),
                                    ("train_recommender", "rkmeans@text-seed1"), ("evaluate", "rkmeans@text-seed1")])
    after = json.loads((out / "compare.json").read_text())
    assert len(after["runs"]) == len(before["runs"])
    same = lambda r: (r["variant"], r["seed"]) == ("rkmeans@text", 1)  # noqa: E731 the finished recommender is reused
    assert [r["alone"] for r in after["runs"] if same(r)] == [r["alone"] for r in before["runs"] if same(r)]


def test_report_only_reports_the_finished_runs_and_starts_none(study, tmp_path, monkeypatch):
    dataset, out, argv = study
    copy = tmp_path / "study"
    shutil.copytree(out, copy)
    (copy / "runs" / "rkmeans@text-seed1" / runs.RESULT_FILE).unlink()  # still running elsewhere
    (copy / "compare.json").unlink()
    monkeypatch.setattr(runs, "run_one", lambda run: pytest.fail(f"started {run.folder.name}"))
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    assert main(["compare", "--dataset", str(dataset), "--config", str(TINY), "--out", str(copy), "--report-only"]) == 0
    found = json.loads((copy / "compare.json").read_text())["runs"]
    assert len(found) == 2 * len(VARIANTS) - 1 and ("rkmeans@text", 1) not in {(r["variant"], r["seed"]) for r in found}
    assert f"{2 * len(VARIANTS) - 1} of the {2 * len(VARIANTS)} planned" in (copy / "compare.md").read_text()


def test_an_archive_without_models_reports_and_resumes_the_same(study, tmp_path, monkeypatch):
    dataset, out, argv = study
    archive = tmp_path / "archive"
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    assert main(argv + ["--report-only", "--archive", str(archive)]) == 0
    assert not list(archive.rglob("*.safetensors")) and not list(archive.rglob("*.npy"))
    expected = json.loads((out / "compare.json").read_text())
    (archive / "compare.json").unlink()
    monkeypatch.setattr(runs, "run_one", lambda run: pytest.fail(f"started {run.folder.name}"))
    assert main(["compare", "--dataset", str(dataset), "--config", str(TINY), "--out", str(archive), "--report-only"]) == 0
    reported = json.loads((archive / "compare.json").read_text())
    for key in ("runs", "paired_differences", "default_choice", "reference_projection"):
        assert reported[key] == expected[key]
    resumed = tmp_path / "elsewhere"  # the archive's runs/ copied into a new out folder: nothing left to run
    shutil.copytree(archive / "runs", resumed / "runs")
    monkeypatch.setattr(runs, "run_one", lambda run: runs.read_json(run.folder / runs.RESULT_FILE) if
                        (run.folder / runs.RESULT_FILE).is_file() else pytest.fail(f"started {run.folder.name}"))
    assert main(["compare", "--dataset", str(dataset), "--config", str(TINY), "--out", str(resumed)]) == 0
    assert json.loads((resumed / "compare.json").read_text())["runs"] == expected["runs"]


def test_report_only_without_a_finished_run_is_one_line(tmp_path, monkeypatch, capsys):
    dataset = tiny_dataset(tmp_path)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    assert main(["compare", "--dataset", str(dataset), "--config", str(TINY), "--out", str(tmp_path / "s"),
                 "--report-only"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("genrec compare: error: ") and "no finished run to report yet" in error
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("flag", ["--out", "--archive"])
def test_a_study_or_archive_folder_that_is_a_file_is_one_line(tmp_path, monkeypatch, capsys, flag):
    dataset = tiny_dataset(tmp_path)
    (tmp_path / "taken").write_text("not a folder")
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(runs, "run_one", lambda run: pytest.fail(f"started {run.folder.name}"))
    argv = ["compare", "--dataset", str(dataset), "--config", str(TINY), "--out", str(tmp_path / "s"),
            flag, str(tmp_path / "taken" / "study")]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("genrec compare: error: ") and error.count("\n") == 1, error
    assert f"{flag} {tmp_path / 'taken' / 'study'}: {tmp_path / 'taken'} is a file, not a folder" in error


def test_a_rerun_with_other_settings_is_refused(study, tmp_path, capsys):
    dataset, out, _ = study
    config = json.loads(TINY.read_text())
    config["tokenizer"]["codebook_size"] = 9
    (tmp_path / "other.json").write_text(json.dumps(config))
    assert main(["compare", "--dataset", str(dataset), "--config", str(tmp_path / "other.json"), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]  # (after the embeddings-cache log line)
    assert error.startswith("genrec compare: error: ") and "other settings (tokenizer_options)" in error


def small_config(tmp_path: Path, **fields) -> Path:
    config = {**json.loads(TINY.read_text()), "inputs": {"rkmeans": ["text"]}, "ablations": [], "lambdas": [],
              "seeds": 1, **fields}
    (tmp_path / "small.json").write_text(json.dumps(config))
    return tmp_path / "small.json"


def test_the_plan_runs_seed_by_seed_so_a_cut_short_study_has_every_variant_at_the_same_seeds(tmp_path):
    from genrec.compare.config import load_study_config

    config = load_study_config(TINY)
    planned = [(run.seed, run.variant.name) for run in runs.plan(config, tmp_path, tmp_path / "s", "encoder")]
    assert sorted(planned) == sorted((seed, name) for seed in range(config.seeds) for name in VARIANTS)
    assert [seed for seed, _ in planned] == sorted(seed for seed, _ in planned)  # all of seed 0 first


def test_a_killed_run_resumes_its_recommender_from_the_checkpoint(tmp_path, monkeypatch):
    import torch

    dataset = tiny_dataset(tmp_path)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    argv = ["compare", "--dataset", str(dataset), "--config", str(small_config(tmp_path)), "--out", str(tmp_path / "s")]
    train_until_killed(monkeypatch, lambda: main(argv), kill_at_step=4)  # checkpoint at step 2
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    steps, original = [], torch.optim.AdamW.step
    monkeypatch.setattr(torch.optim.AdamW, "step", lambda self, *a, **k: steps.append(1) or original(self, *a, **k))
    assert main(argv) == 0
    assert len(steps) == 2  # steps 3 and 4 only
    result = json.loads((tmp_path / "s" / "runs" / "rkmeans@text-seed0" / runs.RESULT_FILE).read_text())
    assert result["training"]["steps"] == 4


def test_two_jobs_are_two_processes_with_one_thread_each(tmp_path, monkeypatch):
    dataset = tiny_dataset(tmp_path)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the children get 1 whatever the parent has
    config = small_config(tmp_path, seeds=2)
    assert main(["compare", "--dataset", str(dataset), "--config", str(config), "--out", str(tmp_path / "s"),
                 "--jobs", "2"]) == 0
    found = json.loads((tmp_path / "s" / "compare.json").read_text())["runs"]
    pids = {r["process"]["pid"] for r in found}
    assert len(pids) == 2 and os.getpid() not in pids
    assert all(r["process"]["omp_num_threads"] == "1" and r["process"]["torch_threads"] == 1 for r in found)
    assert os.environ["OMP_NUM_THREADS"] == "2"  # the parent's own setting is back


def fake_run(variant: str, seed: int, recall: float, sc: float, valid_ndcg: float = 0.05) -> dict:
    label, _, name = variant.partition("@")
    ranking = {"recall@5": recall / 2, "recall@10": recall, "ndcg@5": recall / 4, "ndcg@10": recall / 3}
    valid = {"recall@10": 2 * valid_ndcg, "ndcg@10": valid_ndcg}
    return {"variant": variant, "label": label, "method": label, "input": name, "group": "method", "seed": seed,
            "alone": ranking, "fused": ranking, "fusion_weights": {"prior": 1.0},
            "validation": {"users": 100, "weights": {"prior": 1.0}, "alone": valid, "fused": valid},
            "sid_metrics": {"semantic_cohesion": sc, "preference_discrimination": -sc, "collision_rate": 1.0,
                            "gini": 0.1, "codebook_usage": [1.0, 0.5]},
            "training": {"steps": 10, "best_step": 10, "train_seconds": 60.0},
            "validation_curve": [{"step": 5, "seconds": 30.0, "ndcg@10": 0.01}, {"step": 10, "seconds": 60.0, "ndcg@10": 0.03}]}


def test_paired_differences_and_spearman_match_a_direct_computation():
    reference = {0: 0.10, 1: 0.12, 2: 0.11}
    other = {0: 0.13, 1: 0.14, 2: 0.15}  # differences 0.03, 0.02, 0.04: mean 0.03, sd 0.01
    results = [fake_run("r3vae@text", s, r, sc) for (s, r), sc in zip(reference.items(), (0.3, 0.5, 0.4))]
    results += [fake_run("rkmeans@text", s, r, sc) for (s, r), sc in zip(other.items(), (0.6, 0.7, 0.8))]
    summary = report.summarize(results)
    d = summary["paired_differences"]["rkmeans@text"]["alone"]["recall@10"]
    half = 4.302652729911275 * 0.01 / math.sqrt(3)  # t(0.975, 2) x sd / sqrt(n)
    assert d["n"] == 3 and d["mean"] == pytest.approx(0.03)
    assert (d["low"], d["high"]) == pytest.approx((0.03 - half, 0.03 + half))
    assert d["relative"] == pytest.approx(0.03 / 0.11)
    assert d["beyond_noise"]  # half-width 0.0248 < 0.03: the interval excludes 0
    other = {0: 0.13, 1: 0.11, 2: 0.14}  # differences 0.03, -0.01, 0.03: the interval holds 0
    noisy = report.summarize(results[:3] + [fake_run("rkmeans@text", s, r, 0.5) for s, r in other.items()])
    assert not noisy["paired_differences"]["rkmeans@text"]["alone"]["recall@10"]["beyond_noise"]
    # Spearman over all six runs (no ties), from the rank-difference formula: 1 - 6 sum d^2 / (n (n^2 - 1))
    recall = [r["alone"]["recall@10"] for r in results]
    sc = [r["sid_metrics"]["semantic_cohesion"] for r in results]
    rank = lambda values: np.argsort(np.argsort(values))  # noqa: E731
    direct = 1 - 6 * float(((rank(sc) - rank(recall)) ** 2).sum()) / (6 * 35)
    assert summary["spearman_with_recall@10"]["alone"]["SC"] == pytest.approx(direct)
    assert summary["spearman_with_recall@10"]["alone"]["PD"] == pytest.approx(-direct)
    assert math.isnan(summary["spearman_with_recall@10"]["alone"]["CR"])  # constant: undefined
    row = summary["variants"]["rkmeans@text"]
    assert row["alone"]["recall@10"] == pytest.approx([0.14, 0.01])
    assert row["sid"]["usage"] == pytest.approx([0.75, 0.0])
    assert row["late_gain_ndcg@10"] == pytest.approx([0.02, 0.0])  # 0.03 at 60 s vs 0.01 by 45 s


@pytest.mark.parametrize("rkmeans_valid, rqvae_valid, chosen, verdict", [
    ((0.060, 0.062, 0.061), (0.05, 0.05, 0.05), "rkmeans@text", "beyond seed noise"),  # +0.01 every seed
    ((0.060, 0.050, 0.061), (0.05, 0.05, 0.05), "r3vae@text", "within seed noise"),  # mean +0.007, spread too wide
    ((0.040, 0.040, 0.040), (0.04, 0.04, 0.04), "r3vae@text", None),  # R3-VAE is the best
])
def test_the_default_is_r3vae_unless_a_variant_beats_it_beyond_noise_on_validation(rkmeans_valid, rqvae_valid,
                                                                                   chosen, verdict):
    runs_ = [fake_run("r3vae@text", s, 0.1, 0.5, valid_ndcg=0.05) for s in range(3)]
    runs_ += [fake_run("r3vae@text+collaborative", s, 0.1, 0.5, valid_ndcg=0.045) for s in range(3)]
    runs_ += [fake_run("rkmeans@text", s, 0.2, 0.5, valid_ndcg=v) for s, v in enumerate(rkmeans_valid)]
    runs_ += [fake_run("rqvae@text", s, 0.3, 0.5, valid_ndcg=v) for s, v in enumerate(rqvae_valid)]  # best on test: unread
    ablation = fake_run("r3vae-no-ref@text", 0, 0.1, 0.5, valid_ndcg=0.09)
    runs_.append({**ablation, "group": "ablation", "method": "r3vae"})  # not a candidate
    summary = report.summarize(runs_)
    choice = summary["default_choice"]
    assert choice["chosen"] == chosen and choice["reference"] == "r3vae@text"
    markdown = report.render_markdown(summary, "# t")
    assert f"Default: **{chosen}**" in markdown and (verdict is None or verdict in markdown)
    differences = np.asarray(rkmeans_valid) - 0.05
    assert choice["difference"]["mean"] == pytest.approx(differences.mean() if choice["best"] == "rkmeans@text" else 0)


@pytest.mark.parametrize("config, flags, message", [
    ({"methods": ["r3vae"]}, [], "unknown option(s) methods for StudyConfig"),
    ({"seeds": "3"}, [], "seeds must be int, got '3'"),
    ({"inputs": {"r3vae": ["text", "image"]}}, [], "inputs of r3vae must be distinct names out of text, text+collaborative"),
    ({"inputs": {"bert": ["text"]}}, [], "inputs: unknown method(s) bert"),
    ({"ablations": ["no-reference"]}, [], "unknown ablation(s) no-reference; choose from no-ref, ste, no-sc, no-pd"),
    ({"lambdas": [0.1, "x"]}, [], "lambdas must be float, got 'x'"),
    ({"method_options": {"r3vae": {"no_such_field": 1}}}, [], "r3vae options: unknown option(s) no_such_field"),
    ({"train": {"no_such_field": 1}}, [], "train options: unknown option(s) no_such_field"),
    ({"beams": 10}, [], "beams must be at least 30"),
    ({}, ["--seeds", "0"], "seeds and jobs must be at least 1"),
])
def test_config_errors_are_one_line(tmp_path, capsys, config, flags, message):
    dataset = tiny_dataset(tmp_path)
    (tmp_path / "bad.json").write_text(json.dumps(config))
    argv = ["compare", "--dataset", str(dataset), "--config", str(tmp_path / "bad.json"), *flags]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.startswith("genrec compare: error: ") and error.count("\n") == 1 and message in error, error
    assert not (dataset / "compare").exists()


def test_the_config_lists_the_registry_methods_and_the_committed_configs_load():
    from genrec.compare.config import load_study_config
    from genrec.tokenizer.registry import METHODS as REGISTERED

    assert METHODS == tuple(REGISTERED)
    for name in ("compare-beauty-steps.json", "compare-lastfm-steps.json", "compare-beauty-seeds.json",
                 "compare-beauty-cpu.json", "compare-tiny.json"):
        assert isinstance(load_study_config(ROOT / "bench" / "configs" / name), StudyConfig)
