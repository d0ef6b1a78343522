"""The study's report from its runs' results: means over seeds, paired differences against R3-VAE,
Spearman of the SID metrics with Recall@10 (paper Table 7), Tables 8-9 beside the paper's, the
validation curves (is the budget converged?), plots; ``compare.json`` + ``compare.md``."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np

from genrec.compare.config import ABLATIONS, REFERENCE
from genrec.compare.runs import PROJECTION_FILE, PROJECTION_PLOT
from genrec.core.io import atomic_write_json, read_json
from genrec.eval.correlation import spearman
from genrec.eval.paired import paired_difference

DECODINGS = {"alone": "model alone", "fused": "fused (transition prior, weight chosen on validation)"}
TABLE_KEYS = ("recall@5", "recall@10", "ndcg@5", "ndcg@10")
PAIRED_KEYS = ("recall@10", "ndcg@10")
# SID metric (result key) -> label; correlated with Recall@10 (paper Table 7).
SID_METRICS = {"semantic_cohesion": "SC", "preference_discrimination": "PD", "collision_rate": "CR",
               "gini": "Gini", "usage": "usage"}
PAPER_TABLE7 = {"SC": 0.94, "PD": -0.75, "CR": -0.93, "Gini": -0.64}  # Spearman with Recall@10
# Paper Tables 8 and 9 (Beauty): Recall@10, NDCG@10.
PAPER_FULL = (0.0716, 0.0393)
PAPER_TABLE8 = {"no-ref": (0.0642, 0.0357), "ste": (0.0640, 0.0351), "no-sc": (0.0652, 0.0369),
                "no-pd": (0.0647, 0.0367)}
PAPER_TABLE9 = {0.001: (0.0656, 0.0371), 0.01: PAPER_FULL, 0.1: (0.0669, 0.0373)}
LATE_SHARE = 0.25  # "late gain": best validation NDCG@10 minus the best before the last quarter of training


def sid_value(result: dict, key: str) -> float:
    """A run's SID metric; ``usage`` is the mean codebook usage over levels."""
    if key == "usage":
        usage = result["sid_metrics"].get("codebook_usage") or []
        return float(np.mean(usage)) if usage else float("nan")
    value = result["sid_metrics"].get(key)
    return float("nan") if value is None else float(value)


def late_gain(curve: list[dict]) -> float | None:
    """How much the best validation NDCG@10 rose in the last quarter of the run's training time
    (about 0 when the budget has converged); None without a curve."""
    if len(curve) < 2 or curve[-1].get("seconds") is None:
        return None
    cut = (1 - LATE_SHARE) * curve[-1]["seconds"]
    before = [point["ndcg@10"] for point in curve if point["seconds"] <= cut]
    return max(p["ndcg@10"] for p in curve) - max(before) if before else None


def _mean_std(values) -> list[float]:
    array = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if not len(array):
        return [float("nan"), float("nan")]
    return [float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0]


def _by_variant(results: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(result["variant"], []).append(result)
    return groups


def summarize(results: list[dict], level: float = 0.95) -> dict:
    """Per variant: mean ± std over seeds of the test metrics (alone and fused), SID metrics, training
    length and late gain; paired differences (same seed) against the plain R3-VAE on the same input
    with a ``level`` t-interval; Spearman of each SID metric with Recall@10 over all runs."""
    variants = {}
    for name, runs in _by_variant(results).items():
        first = runs[0]
        variants[name] = {
            **{key: first[key] for key in ("label", "method", "input", "group")},
            "seeds": [r["seed"] for r in runs],
            **{decoding: {key: _mean_std(r[decoding][key] for r in runs) for key in TABLE_KEYS} for decoding in DECODINGS},
            "sid": {key: _mean_std(sid_value(r, key) for r in runs) for key in SID_METRICS},
            "prior_weights": [r["fusion_weights"].get("prior", 0.0) for r in runs],
            "steps": _mean_std(r["training"]["steps"] for r in runs),
            "best_step": _mean_std(r["training"]["best_step"] for r in runs),
            "train_minutes": _mean_std((r["training"]["train_seconds"] or 0) / 60 for r in runs),
            "late_gain_ndcg@10": _mean_std(late_gain(r["validation_curve"]) for r in runs),
            "valid_ndcg@10_se": _mean_std((r["validation_curve"][-1].get("ndcg@10_se") if r["validation_curve"] else None)
                                          for r in runs),
            "validation": {decoding: {key: _mean_std(_valid(r, decoding, key) for r in runs) for key in PAIRED_KEYS}
                           for decoding in DECODINGS},
        }
    paired = {}
    by_variant = _by_variant(results)
    for name, row in variants.items():
        reference = f"{REFERENCE}@{row['input']}"
        if name == reference or reference not in by_variant:
            continue
        paired[name] = {"against": reference, **{
            decoding: {key: paired_difference({r["seed"]: r[decoding][key] for r in by_variant[reference]},
                                              {r["seed"]: r[decoding][key] for r in by_variant[name]}, level).to_dict()
                       for key in PAIRED_KEYS}
            for decoding in DECODINGS}}
    return {"variants": variants, "paired_differences": paired, "level": level,
            "default_choice": choose_default(results, level),
            "spearman_with_recall@10": correlations(results),
            "spearman_by_input": {name: correlations([r for r in results if r["input"] == name])
                                  for name in dict.fromkeys(r["input"] for r in results)},
            "num_runs": len(results)}


def _valid(result: dict, decoding: str, key: str) -> float | None:
    """A run's validation metric (``runs.validation_metrics``), None where it has none."""
    block = (result.get("validation") or {}).get(decoding)
    return block[key] if block else None


def choose_default(results: list[dict], level: float = 0.95) -> dict | None:
    """The tokenizer (method and input) the hour configs use, chosen on validation: each method
    variant's fused validation NDCG@10 (the chosen decoding on the fusion-choice users), mean over
    seeds. R3-VAE, on its better input, unless the best variant beats it beyond seed noise (the
    paired ``level`` t-interval over seeds excludes 0); then the best. None without validation."""
    scored = _by_variant([r for r in results if r["group"] == "method" and _valid(r, "fused", "ndcg@10") is not None])
    if not scored:
        return None
    mean = {name: float(np.mean([_valid(r, "fused", "ndcg@10") for r in runs])) for name, runs in scored.items()}
    best = max(mean, key=mean.get)
    references = [name for name in scored if scored[name][0]["method"] == REFERENCE]
    if not references:
        return {"chosen": best, "best": best, "reference": None, "difference": None, "validation_ndcg@10": mean}
    reference = max(references, key=mean.get)
    seeds = lambda name: {r["seed"]: _valid(r, "fused", "ndcg@10") for r in scored[name]}  # noqa: E731
    difference = paired_difference(seeds(reference), seeds(best), level)
    chosen = best if difference.beyond_noise and difference.mean > 0 else reference
    return {"chosen": chosen, "best": best, "reference": reference, "difference": difference.to_dict(),
            "validation_ndcg@10": mean}


def correlations(results: list[dict]) -> dict:
    """Spearman's rho of each SID metric with test Recall@10 (alone and fused) over ``results``."""
    return {decoding: {label: spearman([sid_value(r, key) for r in results], [r[decoding]["recall@10"] for r in results])
                       for key, label in SID_METRICS.items()}
            for decoding in DECODINGS}


# -- markdown -------------------------------------------------------------------------------------
def _pm(pair, digits: int = 4) -> str:
    mean, std = pair
    return "n/a" if mean != mean else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _interval(d: dict, digits: int = 4) -> str:
    if d["n"] == 0:
        return "n/a"
    star = " *" if d["beyond_noise"] else ""
    relative = "" if d["relative"] != d["relative"] else f" ({100 * d['relative']:+.1f}%)"
    if d["n"] < 2:
        return f"{d['mean']:+.{digits}f}{relative}, 1 seed"
    return f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]{relative}{star}"


def _rho(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:+.2f}"


def render_markdown(summary: dict, header: str) -> str:
    variants, paired = summary["variants"], summary["paired_differences"]
    lines = [header, ""]
    for decoding, title in DECODINGS.items():
        lines += [f"## Test, {title}: mean ± std over seeds", "",
                  "| variant | seeds | Recall@5 | Recall@10 | NDCG@5 | NDCG@10 |", "|---|---|---|---|---|---|"]
        lines += [f"| {name} | {len(row['seeds'])} | " + " | ".join(_pm(row[decoding][k]) for k in TABLE_KEYS) + " |"
                  for name, row in variants.items()]
        lines.append("")
    percent = round(100 * summary["level"])
    lines += [f"## Paired differences against R3-VAE on the same input (same seed): mean [{percent}% t-interval] "
              "(relative); * = the interval excludes 0", "",
              "| variant | against | seeds | ΔRecall@10 alone | ΔNDCG@10 alone | ΔRecall@10 fused | ΔNDCG@10 fused |",
              "|---|---|---|---|---|---|---|"]
    for name, d in paired.items():
        lines.append(f"| {name} | {d['against']} | {d['alone']['recall@10']['n']} | "
                     + " | ".join(_interval(d[dec][k]) for dec in DECODINGS for k in PAIRED_KEYS) + " |")
    lines += _validation_section(summary)
    lines += _paper_tables(variants, paired)
    lines += ["", "## SID metrics: mean ± std over seeds (SC and PD in each run's input space)", "",
              "| variant | " + " | ".join(SID_METRICS.values()) + " | prior weights chosen |", "|---" * 7 + "|"]
    for name, row in variants.items():
        weights = ", ".join(f"{w:g}" for w in row["prior_weights"])
        lines.append(f"| {name} | " + " | ".join(_pm(row["sid"][k], 3) for k in SID_METRICS) + f" | {weights} |")
    lines += ["", f"## Spearman rank correlation with test Recall@10 over all {summary['num_runs']} runs (paper Table 7)",
              "", "| metric | paper | model alone | fused | " + " | ".join(f"{i} alone" for i in summary["spearman_by_input"])
              + " |", "|---" * (4 + len(summary["spearman_by_input"])) + "|"]
    for label in SID_METRICS.values():
        cells = [_rho(PAPER_TABLE7.get(label)), _rho(summary["spearman_with_recall@10"]["alone"][label]),
                 _rho(summary["spearman_with_recall@10"]["fused"][label])]
        cells += [_rho(by_input["alone"][label]) for by_input in summary["spearman_by_input"].values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"## Training budget: is validation still improving? (late gain = best validation NDCG@10 minus the "
              f"best before the last {round(100 * LATE_SHARE)}% of training time; plot: validation_curves.png)", "",
              "| variant | steps | best step | training min | late gain NDCG@10 | validation s.e. |", "|---" * 6 + "|"]
    for name, row in variants.items():
        lines.append(f"| {name} | {_pm(row['steps'], 0)} | {_pm(row['best_step'], 0)} | {_pm(row['train_minutes'], 1)} | "
                     f"{_pm(row['late_gain_ndcg@10'])} | {_pm(row['valid_ndcg@10_se'])} |")
    if "reference_projection" in summary:
        p = summary["reference_projection"]
        lines += ["", f"## Reference-vector projection (paper §4.7, Figure 2: PD -0.284 -> -1.917 on its data), "
                  f"{p['run']}; plot: reference_projection.png", "",
                  "| embeddings | PD over items | PD over level-1 centroids | mean pairwise cosine |", "|---|---|---|---|"]
        for name in ("original", "projected"):
            lines.append(f"| {name} | {p[name]['pd_items']:.3f} | {p[name]['pd_level1_centroids']:.3f} "
                         f"| {p[name]['mean_pairwise_cosine']:.3f} |")
    return "\n".join(lines) + "\n"


def _validation_section(summary: dict) -> list[str]:
    """Validation metrics per variant and the default tokenizer chosen on them (``choose_default``)."""
    choice = summary.get("default_choice")
    if choice is None:
        return []
    lines = ["", "## Validation (fusion-choice users): mean ± std over seeds; the default tokenizer is chosen here", "",
             "| variant | seeds | Recall@10 alone | NDCG@10 alone | Recall@10 fused | NDCG@10 fused |", "|---" * 6 + "|"]
    for name, row in summary["variants"].items():
        if row["group"] == "method":
            lines.append(f"| {name} | {len(row['seeds'])} | "
                         + " | ".join(_pm(row["validation"][dec][k]) for dec in DECODINGS for k in PAIRED_KEYS) + " |")
    percent = round(100 * summary["level"])
    if choice["reference"] is None:
        lines += ["", f"Default: **{choice['chosen']}** (best fused validation NDCG@10; no R3-VAE run to prefer)."]
    elif choice["best"] == choice["reference"]:
        lines += ["", f"Default: **{choice['chosen']}**, the best fused validation NDCG@10."]
    else:
        verdict = "beyond seed noise" if choice["chosen"] == choice["best"] else "within seed noise"
        lines += ["", f"Default: **{choice['chosen']}**. Best fused validation NDCG@10: {choice['best']}, "
                  f"{_interval(choice['difference'])} against {choice['reference']} (paired, {percent}% t-interval): "
                  f"{verdict}; R3-VAE stays the default unless beaten beyond noise."]
    return lines


def _paper_tables(variants: dict, paired: dict) -> list[str]:
    """Tables 8 (ablations) and 9 (lambda): our paired relative change beside the paper's."""
    lines = []
    rows = [(name, row) for name, row in variants.items() if row["group"] in ("ablation", "lambda")]
    if not rows:
        return lines
    lines += ["", "## Paper Tables 8-9 (Beauty): relative change against full R3-VAE, ours (model alone, paired "
              "mean) beside the paper's", "", "| variant | paper row | ours ΔRecall@10 | paper ΔRecall@10 | ours ΔNDCG@10 | "
              "paper ΔNDCG@10 |", "|---|---|---|---|---|---|"]
    for name, row in rows:
        key = row["label"].removeprefix(f"{REFERENCE}-")
        if row["group"] == "ablation":
            paper_row, paper = ABLATIONS[key].paper_row, PAPER_TABLE8[key]
        else:
            value = float(key.removeprefix("lambda"))
            paper_row, paper = f"lambda {value:g}", PAPER_TABLE9.get(value)
        ours = paired.get(name, {}).get("alone")
        cells = []
        for index, metric in enumerate(PAIRED_KEYS):
            cells.append(f"{100 * ours[metric]['relative']:+.1f}%" if ours and ours[metric]["n"] else "n/a")
            cells.append(f"{100 * (paper[index] / PAPER_FULL[index] - 1):+.1f}%" if paper else "n/a")
        lines.append(f"| {name} | {paper_row} | " + " | ".join(cells) + " |")
    return lines


# -- plots ----------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_recall(results: list[dict], path: Path) -> None:
    """Test Recall@10 per variant: one dot per seed, a bar at the mean; model alone and fused."""
    plt = _pyplot()
    names = list(_by_variant(results))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.1 * len(names) + 3), 4.2), sharey=True)
    for axis, (decoding, title) in zip(axes, DECODINGS.items()):
        for x, name in enumerate(names):
            values = [r[decoding]["recall@10"] for r in results if r["variant"] == name]
            axis.scatter(np.full(len(values), x) + np.linspace(-0.15, 0.15, len(values)), values, s=18, color=f"C{x % 10}")
            axis.hlines(np.mean(values), x - 0.3, x + 0.3, color="black")
        axis.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
        axis.set_title(f"test Recall@10, {title.split(' (')[0]}")
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("Recall@10 (dots: seeds, bar: mean)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_metric_scatter(results: list[dict], path: Path) -> None:
    """Each SID metric against test Recall@10 (model alone), one point per run (paper Table 7)."""
    plt = _pyplot()
    names = list(_by_variant(results))
    colors = {name: plt.cm.tab20(i % 20) for i, name in enumerate(names)}
    fig, axes = plt.subplots(1, len(SID_METRICS), figsize=(3.6 * len(SID_METRICS), 3.6))
    recall = [r["alone"]["recall@10"] for r in results]
    for axis, (key, label) in zip(axes, SID_METRICS.items()):
        values = [sid_value(r, key) for r in results]
        for r, x, y in zip(results, values, recall):
            axis.scatter(x, y, color=colors[r["variant"]], label=r["variant"], s=14)
        axis.set_title(f"{label} (Spearman {_rho(spearman(values, recall))})")
        axis.set_xlabel(label)
    axes[0].set_ylabel("test Recall@10, model alone")
    handles, labels = axes[0].get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    fig.legend(unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 5), fontsize=7)
    fig.tight_layout(rect=(0, 0.05 + 0.04 * math.ceil(len(unique) / 5), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_validation_curves(results: list[dict], path: Path) -> None:
    """Validation NDCG@10 against training minutes, one line per run, one colour per variant."""
    plt = _pyplot()
    names = list(_by_variant(results))
    fig, axis = plt.subplots(figsize=(8, 4.8))
    for r in results:
        curve = [p for p in r["validation_curve"] if p.get("seconds") is not None]
        if curve:
            color = plt.cm.tab20(names.index(r["variant"]) % 20)
            axis.plot([p["seconds"] / 60 for p in curve], [p["ndcg@10"] for p in curve], color=color, alpha=0.8,
                      marker=".", label=r["variant"] if r["seed"] == min(x["seed"] for x in results) else None)
    axis.set(xlabel="training minutes", ylabel="validation NDCG@10 (sampled users)", title="validation per run")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_usage_curves(results: list[dict], folders: dict[str, Path], path: Path) -> None:
    """Codebook usage per level over tokenizer training, one panel per variant (its first run; paper
    Figure 4; ``folders``: variant -> that run's folder). Methods without training epochs (K-Means, OPQ) show their final usage as flat lines."""
    plt = _pyplot()
    firsts = {}
    for r in results:
        firsts.setdefault(r["variant"], r)
    columns = min(5, len(firsts))
    rows = math.ceil(len(firsts) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.0 * rows), squeeze=False)
    for axis in axes.flat[len(firsts):]:
        axis.axis("off")
    for axis, (name, r) in zip(axes.flat, firsts.items()):
        folder = folders[name] / "tokenizer"
        history = read_json(folder / "training_history.json") if (folder / "training_history.json").is_file() else {}
        usage = np.asarray(history.get("usage") or [])
        if usage.ndim == 2 and len(usage) > 1:
            for level in range(usage.shape[1]):
                axis.plot(history["epoch"], usage[:, level], label=f"level {level + 1}")
            axis.set_xlabel("epoch")
        else:
            for level, value in enumerate(r["sid_metrics"].get("codebook_usage") or []):
                axis.axhline(value, color=f"C{level}", label=f"level {level + 1} (final)")
            axis.set_xlabel("(no training epochs)")
        axis.set(ylim=(0, 1.05))
        axis.set_title(name, fontsize=8)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("codebook usage")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def reference_projection(run_folder: Path, dataset: Path, out: Path) -> dict | None:
    """Paper Figure 2 and §4.7's PD before/after the reference projection, for one R3-VAE run's
    tokenizer, on the input it was trained on (text, or text + collaborative vectors). Kept in the run
    folder (``projection.json`` + plot) so a study whose finished runs were archived without their
    models still reports it; None when neither the record nor the tokenizer is there."""
    record, plot = run_folder / PROJECTION_FILE, run_folder / PROJECTION_PLOT
    if not record.is_file():
        if not (run_folder / "tokenizer" / "model.safetensors").is_file():
            return None
        atomic_write_json(record, _projection(run_folder / "tokenizer", dataset, plot))
    if plot.is_file() and plot.resolve() != (out / PROJECTION_PLOT).resolve():
        shutil.copyfile(plot, out / PROJECTION_PLOT)
    return read_json(record)


def _projection(tokenizer_dir: Path, dataset: Path, plot: Path) -> dict:
    import torch

    from genrec.data_prep.collaborative import artifact_input
    from genrec.data_prep.embeddings import load_or_compute_item_embeddings
    from genrec.eval.projection import plot_projection, projection_report
    from genrec.tokenizer.registry import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    encoder = read_json(tokenizer_dir / "config.json").get("encoder")
    text = load_or_compute_item_embeddings(dataset, encoder=encoder, show_progress=False).vectors
    x = artifact_input(text, tokenizer_dir)
    with torch.no_grad():
        e0 = tokenizer.model.project(torch.from_numpy(x))[1].numpy()
    level1 = np.load(tokenizer_dir / "semantic_ids.npy")[:, 0]
    report = projection_report(x, e0, level1)
    plot_projection(x, e0, level1, report, plot)
    return report
