"""Reproduction study: every tokenizer through the same recommender (paper Tables 1, 6-9).

One *run* = (variant, seed): train a tokenizer, train the recommender on its Semantic IDs with a
fixed recipe, evaluate on test. Each run lives in ``OUT/runs/<variant>-seed<k>/`` and ends with a
``result.json``; a rerun of ``genrec compare`` skips runs whose ``result.json`` exists, so an
interrupted study resumes where it stopped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from genrec import pipeline

from genrec.eval.correlation import spearman
from genrec.core.io import atomic_write_json, atomic_write_text, read_json

# SID metrics correlated with Recall@10 (paper Table 7). Name in tokenizer metrics.json -> label.
SID_METRICS = {
    "semantic_cohesion": "SC",
    "preference_discrimination": "PD",
    "collision_rate": "CR",
    "gini": "Gini",
}
RANKING_KEYS = ("recall@10", "recall@20", "recall@30", "ndcg@10", "ndcg@20", "ndcg@30")


@dataclass(frozen=True)
class Variant:
    """A tokenizer configuration in the study: a method plus options on top of the study's."""

    name: str
    method: str
    options: tuple[tuple[str, Any], ...] = ()  # (config field, value) pairs: hashable, ordered


# Paper Table 8 ablations and Table 9 lambda sweep, as R3-VAE config fields.
ABLATIONS = {
    "r3vae-no-ref": (("use_reference", False),),
    "r3vae-ste": (("rating", "ste"),),
    "r3vae-no-sc": (("use_sc", False),),
    "r3vae-no-pd": (("use_pd", False),),
}


def build_variants(methods: list[str], ablations: bool, lambdas: list[float]) -> list[Variant]:
    variants = [Variant(method, method) for method in methods]
    if ablations:
        variants += [Variant(name, "r3vae", options) for name, options in ABLATIONS.items()]
    for value in lambdas:
        variants.append(Variant(f"r3vae-lambda{value:g}", "r3vae", (("metric_weight", value),)))
    return variants


@dataclass
class Study:
    """The shared recipe. Options are config fields: ``tokenizer`` for every method,
    ``method_options`` per method (K-Means has no epochs), ``train``/``model`` for the recommender
    (recommender.train.TrainConfig / recommender.model.RecommenderConfig), ``evaluate`` for
    pipeline.EvaluateConfig (e.g. beams)."""

    dataset: Path
    out: Path
    variants: list[Variant]
    seeds: list[int]
    tokenizer: dict[str, Any] = field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)

    def run_dir(self, variant: Variant, seed: int) -> Path:
        return self.out / "runs" / f"{variant.name}-seed{seed}"

    def tokenizer_options(self, variant: Variant, seed: int) -> dict[str, Any]:
        return {**self.tokenizer, **self.method_options.get(variant.method, {}), **dict(variant.options), "seed": seed}


def run_one(study: Study, variant: Variant, seed: int) -> dict:
    """Tokenizer -> recommender -> test evaluation for one (variant, seed); cached in result.json."""
    run_dir = study.run_dir(variant, seed)
    result_file = run_dir / "result.json"
    if result_file.is_file():
        return read_json(result_file)
    run_dir.mkdir(parents=True, exist_ok=True)
    tokenizer_dir, recommender_dir = run_dir / "tokenizer", run_dir / "recommender"
    started = time.perf_counter()
    options = study.tokenizer_options(variant, seed)
    if not (tokenizer_dir / "metrics.json").is_file():
        pipeline.train_tokenizer(pipeline.TokenizerTrainingConfig(study.dataset, method=variant.method,
                                                                  options=options, out=tokenizer_dir, progress=False))
    tokenizer_seconds = time.perf_counter() - started
    # train_recommender resumes from its own checkpoints if a previous attempt was interrupted.
    pipeline.train_recommender(pipeline.RecommenderTrainingConfig(
        study.dataset, tokenizer=tokenizer_dir, out=recommender_dir, train={**study.train, "seed": seed},
        model=study.model, progress=False))
    ranking = pipeline.evaluate(pipeline.EvaluateConfig(study.dataset, model=recommender_dir, split="test",
                                                        output=run_dir / "test_metrics.json", progress=False,
                                                        **study.evaluate))
    result = {
        "variant": variant.name,
        "method": variant.method,
        "seed": seed,
        "tokenizer_options": options,
        "sid_metrics": read_json(tokenizer_dir / "metrics.json"),
        "ranking": ranking,
        "wall_seconds": time.perf_counter() - started,
        "tokenizer_seconds": tokenizer_seconds,
    }
    atomic_write_json(result_file, result)
    return result


def _mean_std(values: list[float]) -> tuple[float, float]:
    array = np.asarray(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def summarize(results: list[dict]) -> dict:
    """Mean/std per variant and Spearman of each SID metric with Recall@10 over all runs."""
    by_variant: dict[str, list[dict]] = {}
    for result in results:
        by_variant.setdefault(result["variant"], []).append(result)
    table = {}
    for name, runs in by_variant.items():
        row = {"runs": len(runs)}
        for key in RANKING_KEYS:
            row[key] = _mean_std([r["ranking"][key] for r in runs])
        for key in SID_METRICS:
            row[key] = _mean_std([r["sid_metrics"][key] for r in runs])
        table[name] = row
    recall = [r["ranking"]["recall@10"] for r in results]
    correlations = {key: spearman([r["sid_metrics"][key] for r in results], recall) for key in SID_METRICS}
    return {"table": table, "spearman_with_recall@10": correlations, "num_runs": len(results)}


def _fmt(pair: tuple[float, float], digits: int = 4) -> str:
    mean, std = pair
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render_markdown(summary: dict, header: str) -> str:
    lines = [header, "", "| variant | runs | " + " | ".join(RANKING_KEYS) + " | SC | PD | CR | Gini |",
             "|" + "---|" * (len(RANKING_KEYS) + 6)]
    for name, row in summary["table"].items():
        cells = [_fmt(row[k]) for k in RANKING_KEYS] + [_fmt(row[k], 3) for k in SID_METRICS]
        lines.append(f"| {name} | {row['runs']} | " + " | ".join(cells) + " |")
    lines += ["", f"Spearman rank correlation with Recall@10 over all {summary['num_runs']} runs:", "",
              "| metric | rho |", "|---|---|"]
    for key, label in SID_METRICS.items():
        rho = summary["spearman_with_recall@10"][key]
        lines.append(f"| {label} | {'n/a' if math.isnan(rho) else f'{rho:+.3f}'} |")
    if "reference_projection" in summary:
        p = summary["reference_projection"]
        lines += ["", "Reference-vector projection (paper §4.7, Figure 2: PD -0.284 -> -1.917 on its data), "
                  "first R3-VAE run; plot: reference_projection.png", "",
                  "| embeddings | PD over items | PD over level-1 centroids | mean pairwise cosine |", "|---|---|---|---|"]
        for name in ("original", "projected"):
            lines.append(f"| {name} | {p[name]['pd_items']:.3f} | {p[name]['pd_level1_centroids']:.3f} "
                         f"| {p[name]['mean_pairwise_cosine']:.3f} |")
    return "\n".join(lines) + "\n"


def plot_metric_scatter(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SID_METRICS), figsize=(4 * len(SID_METRICS), 3.6))
    variants = sorted({r["variant"] for r in results})
    colors = {name: plt.cm.tab10(i % 10) for i, name in enumerate(variants)}
    recall = [r["ranking"]["recall@10"] for r in results]
    for axis, (key, label) in zip(axes, SID_METRICS.items()):
        values = [r["sid_metrics"][key] for r in results]
        for r, x, y in zip(results, values, recall):
            axis.scatter(x, y, color=colors[r["variant"]], label=r["variant"])
        rho = spearman(values, recall)
        axis.set_title(f"{label} (Spearman {rho:+.2f})")
        axis.set_xlabel(label)
        axis.set_ylabel("Recall@10")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_usage_curves(study: Study, path: Path) -> None:
    """Codebook usage per level over tokenizer training, one panel per variant (first seed; paper
    Figure 4). Methods without training epochs (K-Means, OPQ) show their final usage as flat lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(study.variants), figsize=(3.2 * len(study.variants), 3.2), squeeze=False)
    for axis, variant in zip(axes[0], study.variants):
        folder = study.run_dir(variant, study.seeds[0]) / "tokenizer"
        history = read_json(folder / "training_history.json") if (folder / "training_history.json").is_file() else {}
        usage = np.asarray(history.get("usage") or [])
        if usage.ndim == 2 and len(usage) > 1:
            for level in range(usage.shape[1]):
                axis.plot(history["epoch"], usage[:, level], label=f"level {level + 1}")
            axis.set_xlabel("epoch")
        elif (folder / "metrics.json").is_file():
            for level, value in enumerate(read_json(folder / "metrics.json")["codebook_usage"]):
                axis.axhline(value, color=f"C{level}", label=f"level {level + 1} (final)")
            axis.set_xlabel("(no training epochs)")
        axis.set(title=variant.name, ylim=(0, 1.05))
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("codebook usage")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reference_projection(study: Study, out: Path) -> dict | None:
    """Paper Figure 2 and §4.7's PD before/after the reference projection, from the first R3-VAE run."""
    import torch

    from genrec.data_prep.embeddings import load_or_compute_item_embeddings
    from genrec.eval.projection import plot_projection, projection_report
    from genrec.tokenizer.registry import load_tokenizer

    variant = next((v for v in study.variants if v.name == "r3vae"), None)
    if variant is None:
        return None
    folder = study.run_dir(variant, study.seeds[0]) / "tokenizer"
    tokenizer = load_tokenizer(folder)
    encoder = read_json(folder / "config.json").get("encoder")
    x = load_or_compute_item_embeddings(study.dataset, encoder=encoder, show_progress=False).vectors
    with torch.no_grad():
        e0 = tokenizer.model.project(torch.from_numpy(x))[1].numpy()
    level1 = np.load(folder / "semantic_ids.npy")[:, 0]
    report = projection_report(x, e0, level1)
    plot_projection(x, e0, level1, report, out / "reference_projection.png")
    return {"tokenizer": str(folder), **report}


def run_study(study: Study, command_line: str, hardware: str) -> dict:
    results = []
    total = len(study.variants) * len(study.seeds)
    for index, (variant, seed) in enumerate((v, s) for v in study.variants for s in study.seeds):
        print(f"[compare] run {index + 1}/{total}: {variant.name} seed {seed}", flush=True)
        results.append(run_one(study, variant, seed))
    summary = summarize(results)
    summary.update({"command": command_line, "hardware": hardware, "runs": results})
    atomic_write_json(study.out / "compare.json", summary)
    header = f"# Tokenizer comparison on {study.dataset.name}\n\nCommand: `{command_line}`\n\nHardware: {hardware}"
    atomic_write_text(study.out / "compare.md", render_markdown(summary, header))
    plot_metric_scatter(results, study.out / "sid_metrics_vs_recall.png")
    plot_usage_curves(study, study.out / "codebook_usage.png")
    projection = reference_projection(study, study.out)
    if projection is not None:
        summary["reference_projection"] = projection
        atomic_write_json(study.out / "compare.json", summary)
        atomic_write_text(study.out / "compare.md", render_markdown(summary, header))
    return summary
