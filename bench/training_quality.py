"""Does each of genrec's training-speed options keep the quality? One flag changed at a time, 3 seeds.

Run from the repository root:

    python -m bench.training_quality --dataset data/amazon-beauty --config bench/configs/training-quality.json \
        --work /tmp/tq --name beauty-training-quality

Trains the recommender with ``genrec.pipeline.train_recommender`` on the config's "train" and
"model" options once per (variant, seed): "defaults" is the trainer as it ships (plain random
batches cut into micro-batches, fast dropout, freed memory kept); every other variant changes
exactly one of those from the defaults (``VARIANTS``). Same steps, optimizer, schedule and seed
per row. There is no periodic validation (``eval_every`` is set past the last step), so the model
scored is the final step's, never a best-of-checkpoints pick, and ``genrec.pipeline.evaluate``
scores it on the whole validation split (all users, full catalogue).

Each run trains in its own fresh process (the malloc setting is process-wide); a finished run is
not trained again and an interrupted one resumes, so rerunning with more ``--seeds`` adds seeds.

Writes NAME.json, NAME.md and NAME.png (per variant: mean validation NDCG@10 and Recall@10 with
each seed's value) into --out, which defaults to the --work folder; pass ``--out bench/results``
to update the committed results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from bench.common import markdown_table, run_isolated, run_script, script_parser, write_report
from genrec.core.errors import GenrecError
from genrec.core.io import read_json

# name -> (train option overrides, keep freed memory, what the one change is)
VARIANTS = {
    "defaults": ({}, True, "the trainer's defaults"),
    "bucketing": ({"sort_window": 50}, True, "length-bucketed batches (--sort-window 50) instead of micro-batches"),
    "torch_dropout": ({"fast_dropout": False}, True, "torch's dropout instead of fast dropout (--no-fast-dropout)"),
    "padded": ({"micro_batches": 1}, True, "one padded batch per step (--micro-batches 1): same gradient"),
    "glibc_malloc": ({}, False, "glibc's default malloc (GENREC_KEEP_FREED_MEMORY=0): speed only"),
}
KEYS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr")


def main(argv: list[str] | None = None) -> int:
    return run_script("bench.training_quality", build_parser(), _run, argv)


def train_variant(payload: dict) -> dict:
    """Train (or resume, or find finished) one run and evaluate its final model on the validation split."""
    from genrec import pipeline as gp

    model = Path(payload["model"])
    result = gp.train_recommender(gp.RecommenderTrainingConfig.from_options(
        payload["dataset"], tokenizer=payload["tokenizer"], out=str(model), train=payload["train"],
        model=payload["model_options"], progress=False, sasrec_beside=None))
    if not (model / "eval_valid.json").is_file():
        gp.evaluate(gp.EvaluateConfig(payload["dataset"], model=str(model), split="valid", progress=False))
    return {"already_done": result.already_done}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, key in zip(axes, ("ndcg@10", "recall@10")):
        for x, name in enumerate(names):
            values = [run["valid"][key] for run in results[name]["runs"]]
            axis.scatter([x] * len(values), values, color="tab:blue", alpha=0.6)
            axis.errorbar([x], [np.mean(values)], yerr=[np.std(values, ddof=1) if len(values) > 1 else 0.0],
                          color="black", marker="_", markersize=20, capsize=4)
        axis.set_xticks(range(len(names)), names, rotation=20)
        axis.set(ylabel=f"validation {key} (all users)", title=f"{key}: seeds (dots), mean ± sd")
        axis.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser():
    parser = script_parser("bench.training_quality", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tokenizer", help="default DATASET/tokenizer")
    parser.add_argument("--config", required=True, help="JSON with \"train\" and \"model\" options")
    parser.add_argument("--work", required=True, help="folder for the trained models (WORK/VARIANT-seedS)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per variant")
    parser.add_argument("--out", help="report folder (default: --work; pass bench/results to update the repo's)")
    parser.add_argument("--name", default="training-quality")
    parser.add_argument("--note", default="", help="a line for the report, e.g. what else ran on the machine")
    return parser


def _mean_sd(values: list[float], signed: bool = False) -> str:
    sd = f" ± {np.std(values, ddof=1):.4f}" if len(values) > 1 else ""
    return f"{np.mean(values):{'+' if signed else ''}.4f}{sd}"


def _run(args: argparse.Namespace, command: str) -> int:
    """Train and evaluate every (variant, seed), each in its own process, then write the report."""
    from genrec.core.config import load_config_file
    from genrec.core.hardware import hardware, hardware_line

    config = load_config_file(args.config)
    unknown = sorted(set(config) - {"train", "model"})
    if unknown:
        raise GenrecError(f"{args.config}: unknown key(s) {', '.join(unknown)}; expected train, model")
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad or not variants:
        raise GenrecError(f"--variants: unknown {', '.join(bad) or '(none given)'}; choose from {', '.join(VARIANTS)}")
    if args.seeds < 1:
        raise GenrecError("--seeds must be at least 1")
    tokenizer = args.tokenizer or str(Path(args.dataset) / "tokenizer")
    work = Path(args.work)
    out = Path(args.out) if args.out else work
    # No periodic validation: the model kept is the last step's (best-of-checkpoints would favour
    # whichever variant's curve is noisier).
    base_train = {**config.get("train", {}), "eval_every": 10**9}
    results = {}
    for name in variants:
        overrides, keep, change = VARIANTS[name]
        runs = []
        for seed in range(args.seeds):
            model = work / f"{name}-seed{seed}"
            print(f"[{name} seed {seed}] {change} -> {model}", flush=True)
            run_isolated(train_variant, {"dataset": args.dataset, "tokenizer": tokenizer, "model": str(model),
                                         "train": {**base_train, **overrides, "seed": seed},
                                         "model_options": config.get("model", {})}, keep_freed_memory=keep)
            meta, valid = read_json(model / "genrec.json"), read_json(model / "eval_valid.json")
            if meta["best_step"] != meta["steps"]:
                raise GenrecError(f"{model}: kept step {meta['best_step']} is not the final step {meta['steps']}")
            runs.append({"seed": seed, "train_seconds": meta["train_seconds"], "steps": meta["steps"],
                         "epochs": meta["epochs"], "valid": {k: v for k, v in valid.items() if k != "popularity"}})
        results[name] = {"change": change, "train_overrides": overrides, "keep_freed_memory": keep, "runs": runs}
    info = hardware()
    report = {"command": command, "config": config, "hardware": info, "note": args.note, "seeds": args.seeds,
              "evaluation": "final step, validation split, all users, full catalogue", "variants": results}
    out.mkdir(parents=True, exist_ok=True)
    plot(results, out / f"{args.name}.png")
    lines = [f"# Training quality, one flag at a time ({hardware_line(info)})", "", f"Command: `{command}`",
             "", *([args.note, ""] if args.note else []), f"Recipe: `{json.dumps(config)}`; {args.seeds} seed(s) per "
             "variant; the final step's model scored on the whole validation split (all users, full catalogue).", ""]
    base = results.get("defaults")
    rows = []
    for name, r in results.items():
        seconds = [run["train_seconds"] for run in r["runs"]]
        speed = (f"{np.mean([x['train_seconds'] for x in base['runs']]) / np.mean(seconds):.2f}x" if base else "-")
        rows.append([name, r["change"], f"{np.mean(seconds):.0f}", speed,
                     *(_mean_sd([run["valid"][k] for run in r["runs"]]) for k in KEYS)])
    lines += markdown_table(["variant", "the one change", "train s (mean)", "speed vs defaults",
                             *(f"valid {k} (mean ± sd)" for k in KEYS)], rows)
    if base:
        lines += ["", "Paired by seed (a seed fixes the initial weights in every variant, and the batch order in "
                  "those that keep the default batching), variant minus defaults:", ""]
        by_seed = {run["seed"]: run for run in base["runs"]}
        paired = []
        for name, r in results.items():
            if name == "defaults":
                continue
            cells = []
            for key in KEYS:
                diffs = [run["valid"][key] - by_seed[run["seed"]]["valid"][key] for run in r["runs"] if run["seed"] in by_seed]
                cells.append(_mean_sd(diffs, signed=True) if diffs else "-")
            paired.append([name, *cells])
            report["variants"][name]["paired_difference_vs_defaults"] = dict(zip(KEYS, cells))
        lines += markdown_table(["variant", *(f"Δ valid {k} (mean ± sd)" for k in KEYS)], paired)
    lines += ["", "Every run:", ""]
    lines += markdown_table(["variant", "seed", "train s", "steps", *(f"valid {k}" for k in KEYS)],
                            [[name, run["seed"], f"{run['train_seconds']:.0f}", run["steps"],
                              *(f"{run['valid'][k]:.4f}" for k in KEYS)] for name, r in results.items() for run in r["runs"]])
    lines += ["", f"![validation metrics per variant and seed]({args.name}.png)", ""]
    write_report(out, args.name, report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
