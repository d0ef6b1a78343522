"""One study run = (variant, seed): tokenizer -> recommender (the config's recipe and budget) -> the
fused-decoding weight chosen on validation -> test metrics, fused and of the model alone.

Each run lives in ``OUT/runs/VARIANT-seedK/``: ``settings.json`` (what it computes; a rerun with
other settings is refused rather than mixed in), ``run.log`` (its output), ``tokenizer/``,
``recommender/``, ``test.json`` and, last, ``result.json``. A rerun skips runs with a
``result.json``; a killed one continues: a finished tokenizer is kept (written atomically), the
recommender resumes from its checkpoint (``pipeline.train_recommender``), the fusion choice and the
test evaluation are redone. With ``jobs`` > 1, each run is its own spawned process with one torch
thread (``OMP_NUM_THREADS=1``): one job per core.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from pathlib import Path

from genrec import pipeline
from genrec.compare.config import TEXT_COLLABORATIVE, StudyConfig, Variant
from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_bytes, atomic_write_json, read_json
from genrec.recommender.recipes import recipe_configs

RESULT_FILE, SETTINGS_FILE, LOG_FILE = "result.json", "settings.json", "run.log"
PROJECTION_FILE, PROJECTION_PLOT = "projection.json", "reference_projection.png"  # the reference run's, by the report
# What the report reads of a finished run (the projection record only for the reference run).
ARCHIVED = (SETTINGS_FILE, RESULT_FILE, "tokenizer/config.json", "tokenizer/metrics.json",
            "tokenizer/training_history.json", PROJECTION_FILE, PROJECTION_PLOT)
# Test metrics kept per run (model alone and fused); the report reads these.
RANKING_KEYS = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr")
SID_KEYS = ("semantic_cohesion", "preference_discrimination", "collision_rate", "gini", "codebook_usage",
            "largest_bucket", "reconstruction_mse", "training_seconds")


@dataclasses.dataclass(frozen=True)
class Run:
    """What a worker process needs for one run (picklable)."""

    config: StudyConfig
    dataset: Path
    out: Path
    encoder: str  # the resolved text encoder, so every run reads the same cached embeddings
    variant: Variant
    seed: int
    threads: int = 0  # torch threads (0 = default); a run's result does not depend on it

    @property
    def folder(self) -> Path:
        return run_dir(self.out, self.variant, self.seed)


def run_dir(out: Path, variant: Variant, seed: int) -> Path:
    return out / "runs" / f"{variant.name}-seed{seed}"


def tokenizer_options(config: StudyConfig, variant: Variant, seed: int) -> dict:
    return {**config.tokenizer, **config.method_options.get(variant.method, {}), **dict(variant.options), "seed": seed}


def run_settings(run: Run) -> dict:
    """Everything that decides a run's numbers (not where it runs or on how many threads)."""
    config, variant = run.config, run.variant
    collaborative = variant.input == TEXT_COLLABORATIVE
    return {
        "dataset": str(run.dataset.resolve()), "encoder": run.encoder,
        "variant": variant.name, "label": variant.label, "method": variant.method, "input": variant.input,
        "group": variant.group, "seed": run.seed,
        "collaborative": {"weight": config.collaborative_weight, "dim": config.collaborative_dim} if collaborative else None,
        "tokenizer_options": tokenizer_options(config, variant, run.seed),
        "recipe": config.recipe, "train": {**config.train, "seed": run.seed}, "model": config.model,
        "fusion_grid": [float(w) for w in config.fusion_grid], "fusion_users": config.fusion_users,
        "beams": config.beams,
    }


def claim(run: Run) -> dict:
    """The run's settings, written to its folder, or the refusal to mix a run made with others."""
    settings, path = run_settings(run), run.folder / SETTINGS_FILE
    if path.is_file():
        recorded = read_json(path)
        if recorded != settings:
            changed = sorted(k for k in settings.keys() | recorded.keys() if settings.get(k) != recorded.get(k))
            raise GenrecError(f"{run.folder} was run with other settings ({', '.join(changed)}); give another "
                              "out folder, or delete that run to redo it")
        return settings
    run.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, settings)
    return settings


def validation_curve(recommender_dir: Path) -> list[dict]:
    """Every periodic validation of the run: step, training seconds, Recall@10 and NDCG@10 (+ s.e.)."""
    from genrec.recommender.trainer import LOG_FILE as TRAIN_LOG

    path = recommender_dir / TRAIN_LOG
    if not path.is_file():
        return []
    curve = []
    for line in path.read_text().splitlines():
        entry = json.loads(line) if line.strip() else {}
        if "valid" in entry:
            valid = entry["valid"]
            curve.append({"step": entry["step"], "seconds": entry.get("seconds"),
                          **{k: valid.get(k) for k in ("recall@10", "ndcg@10", "ndcg@10_se")}})
    return curve


def validation_metrics(recommender_dir: Path) -> dict | None:
    """The run's validation Recall@10 / NDCG@10 (± s.e.) on the fusion-choice users: the model alone
    (weights 0) and the chosen fused decoding, both under the chosen history rule; what the study's
    default is chosen on. None when the recommender recorded no fusion choice."""
    from genrec.recommender.recommender import META_FILE

    path = recommender_dir / META_FILE
    fusion = read_json(path).get("fusion") if path.is_file() else None
    if not fusion or not fusion.get("grid"):
        return None
    keys = ("recall@10", "recall@10_se", "ndcg@10", "ndcg@10_se")
    exclude = fusion.get("exclude_seen")  # the chosen history rule (absent before it was a choice)
    rows = [r for r in fusion["grid"] if r.get("exclude_seen") == exclude]
    alone = next((r for r in rows if not any(r["weights"].values())), None)
    fused = next((r for r in rows if r["weights"] == fusion["weights"]), alone)
    if fused is None:
        return None
    return {"users": fusion.get("users"), "weights": fusion["weights"],
            "alone": {k: alone[k] for k in keys} if alone else None, "fused": {k: fused[k] for k in keys}}


def with_validation(result: dict, folder: Path) -> dict:
    """``result`` with its ``validation`` block (read from the run's folder when the result predates it)."""
    if "validation" in result:
        return result
    return {**result, "validation": validation_metrics(folder / "recommender")}


def run_one(run: Run) -> dict:
    """The run's result (from its result.json when it has finished before)."""
    settings = claim(run)
    result_file = run.folder / RESULT_FILE
    if result_file.is_file():
        return read_json(result_file)
    with open(run.folder / LOG_FILE, "a") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        result = _train_and_test(run, settings)
    atomic_write_json(result_file, result)
    return result


def _train_and_test(run: Run, settings: dict) -> dict:
    from genrec.recommender.recommender import META_FILE

    config, variant, folder = run.config, run.variant, run.folder
    tokenizer_dir, recommender_dir = folder / "tokenizer", folder / "recommender"
    seconds = {}
    started = time.perf_counter()
    if not (tokenizer_dir / "metrics.json").is_file():  # the artifact is written whole or not at all
        from genrec.tokenizer.registry import method_config

        collaborative = settings["collaborative"] or {"weight": 0.0, "dim": config.collaborative_dim}
        pipeline.train_tokenizer(pipeline.TokenizerTrainingConfig(
            run.dataset, method=variant.method, out=tokenizer_dir,
            options=method_config(variant.method, settings["tokenizer_options"]),
            encoder=run.encoder, progress=False, collaborative_weight=collaborative["weight"],
            collaborative_dim=collaborative["dim"]))
    seconds["tokenizer"] = time.perf_counter() - started
    started = time.perf_counter()
    threads = {"threads": run.threads} if run.threads else {}
    train, model = recipe_configs(config.recipe, {**settings["train"], **threads}, config.model)
    trained = pipeline.train_recommender(pipeline.RecommenderTrainingConfig(
        run.dataset, tokenizer=tokenizer_dir, out=recommender_dir, train=train, model=model,
        recipe=config.recipe, progress=False,
        fusion_grids={"prior": tuple(settings["fusion_grid"])}, fusion_users=config.fusion_users,
        sasrec_beside=None))  # the study compares tokenizers through the T5 alone
    seconds["recommender_and_fusion"] = time.perf_counter() - started
    started = time.perf_counter()
    test = pipeline.evaluate(pipeline.EvaluateConfig(run.dataset, model=recommender_dir, split="test",
                                                     beams=config.beams, output=folder / "test.json", progress=False))
    seconds["test"] = time.perf_counter() - started
    meta = read_json(recommender_dir / META_FILE)
    fused = {key: test[key] for key in RANKING_KEYS if key in test}
    alone = test["alone"].get("model")  # absent when the chosen prior weight is 0: fused is the model alone
    alone = {key: alone[key] for key in RANKING_KEYS if key in alone} if alone else dict(fused)
    sid = read_json(tokenizer_dir / "metrics.json")
    return {
        **{key: settings[key] for key in ("variant", "label", "method", "input", "group", "seed")},
        "tokenizer_options": settings["tokenizer_options"],
        "sid_metrics": {key: sid.get(key) for key in SID_KEYS},
        "fused": fused, "alone": alone,
        "fusion_weights": test.get("fusion", {}),
        "training": {"steps": meta["steps"], "best_step": meta["best_step"], "stop_reason": meta.get("stop_reason"),
                     "train_seconds": meta.get("train_seconds"), "best_valid_ndcg@10": meta["best_valid_ndcg@10"],
                     "recipe": trained.recipe or meta.get("recipe")},
        "validation_curve": validation_curve(recommender_dir),
        "validation": validation_metrics(recommender_dir),
        "seconds": {key: round(value, 1) for key, value in seconds.items()},
        "process": {"pid": os.getpid(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
                    "torch_threads": _torch_threads()},
    }


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@contextlib.contextmanager
def _one_thread_children():
    """Processes started inside the block inherit OMP_NUM_THREADS=1 (numpy and torch read it at
    import, before any code of ours runs there): one job per core."""
    names = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update({name: "1" for name in names})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _status(index: int, total: int, run: Run, result: dict | None, started: float) -> str:
    head = f"[compare] {index}/{total} {run.variant.name} seed {run.seed}"
    if result is None:
        return f"{head}: started"
    return (f"{head}: test Recall@10 {result['alone']['recall@10']:.4f} alone, {result['fused']['recall@10']:.4f} fused "
            f"({(time.perf_counter() - started) / 60:.1f} min)")


def run_all(runs: list[Run], jobs: int) -> list[dict]:
    """Every run's result, in the order given; finished ones are read back, the rest run ``jobs`` at a time."""
    results: dict[int, dict] = {}
    todo = []
    for index, run in enumerate(runs):
        claim(run)  # refuse mixed settings before any work starts
        if (run.folder / RESULT_FILE).is_file():
            results[index] = read_json(run.folder / RESULT_FILE)
        else:
            todo.append(index)
    print(f"[compare] {len(runs)} runs: {len(results)} finished before, {len(todo)} to run, {jobs} at a time",
          flush=True)
    started = time.perf_counter()
    if jobs == 1:
        for count, index in enumerate(todo, start=1):
            print(_status(count, len(todo), runs[index], None, started), flush=True)
            results[index] = run_one(runs[index])
            print(_status(count, len(todo), runs[index], results[index], started), flush=True)
    elif todo:
        import multiprocessing

        # A fresh process per run (maxtasksperchild=1), started with one thread; leaving the block (a
        # failed run, Ctrl-C) terminates the other workers: their runs resume on the next call.
        context = multiprocessing.get_context("spawn")
        with _one_thread_children(), context.Pool(jobs, maxtasksperchild=1) as pool:
            tasks = [(index, _with_threads(runs[index], 1)) for index in todo]
            for count, (index, result) in enumerate(pool.imap_unordered(_run_indexed, tasks), start=1):
                results[index] = result
                print(_status(count, len(todo), runs[index], result, started), flush=True)
    return [results[index] for index in range(len(runs))]


def _run_indexed(task: tuple[int, Run]) -> tuple[int, dict]:
    index, run = task
    return index, run_one(run)


def _with_threads(run: Run, threads: int) -> Run:
    return dataclasses.replace(run, threads=threads)


def plan(config: StudyConfig, dataset: Path, out: Path, encoder: str) -> list[Run]:
    """Every (variant, seed) run of the study, seed by seed: a study cut short has every variant at the
    same seeds, so its paired comparisons already cover all of them."""
    from genrec.tokenizer.r3vae import R3VAEConfig

    base_lambda = float(config.r3vae_options().get("metric_weight", R3VAEConfig().metric_weight))
    return [Run(config, dataset, out, encoder, variant, seed)
            for seed in range(config.seeds) for variant in config.variants(base_lambda)]


def archive(runs: list[Run], report_files: list[Path], dest: Path) -> None:
    """Copy each finished run's records (``ARCHIVED``; no model) to ``dest/runs/`` and the report files
    to ``dest``: a study folder that reports (``--report-only``) and, copied into a study's out folder,
    resumes on another machine."""
    copies = [(run.folder / name, dest / "runs" / run.folder.name / name)
              for run in finished_runs(runs) for name in ARCHIVED]
    copies += [(source, dest / source.name) for source in report_files]
    for source, target in copies:
        if source.is_file() and source.resolve() != target.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, source.read_bytes())


def finished_runs(runs: list[Run]) -> list[Run]:
    """The runs that have a result."""
    return [run for run in runs if (run.folder / RESULT_FILE).is_file()]


def check_options(config: StudyConfig) -> None:
    """Reject bad tokenizer / recommender options before hours of runs (each method's config, the recipe)."""
    from genrec.tokenizer.registry import build_tokenizer

    for variant in config.variants(base_lambda=float("nan")):
        build_tokenizer(variant.method, tokenizer_options(config, variant, 0))
    recipe_configs(config.recipe, config.train, config.model)
