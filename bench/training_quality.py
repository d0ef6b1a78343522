"""Same model, same recipe, two training paths: does genrec's faster step keep the validation quality?

Run from the repository root:

    python -m bench.training_quality --dataset data/amazon-beauty --config bench/configs/training-quality.json \
        --work /tmp/tq --name beauty-training-quality

Trains the recommender twice with ``genrec.pipeline.train_recommender`` on the config's "train" and
"model" options (same seed, steps, optimizer, schedule and evaluation):

* plain: random batches (train option sort_window=1, so every batch is padded to its longest
  history, nearly always the maximum), torch's dropout (fast_dropout=False), glibc's default
  malloc behaviour (GENREC_KEEP_FREED_MEMORY=0);
* genrec: the defaults (length-bucketed batches, fast dropout, freed memory kept).

Each variant trains in its own fresh process (the malloc setting is process-wide and cannot be
undone), then ``genrec.pipeline.evaluate`` scores its final model on the whole validation split.
A finished variant is not trained again; an interrupted one resumes from its checkpoint.

Writes NAME.json, NAME.md and NAME.png (validation NDCG@10 on the periodic user sample against
training wall time and step) into --out, which defaults to the --work folder; pass
``--out bench/results`` to update the committed results.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import markdown_table, run_isolated, run_script, script_parser, write_report
from genrec.core.errors import GenrecError
from genrec.core.io import read_json

# name -> (train option overrides, keep freed memory)
VARIANTS = {
    "plain": ({"sort_window": 1, "fast_dropout": False}, False),
    "genrec": ({}, True),
}
KEYS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr")


def main(argv: list[str] | None = None) -> int:
    return run_script("bench.training_quality", build_parser(), _run, argv)


def train_variant(payload: dict) -> dict:
    """Train (or resume, or find finished) one variant and evaluate it on the validation split."""
    from genrec import pipeline as gp

    model = Path(payload["model"])
    result = gp.train_recommender(gp.RecommenderTrainingConfig(
        payload["dataset"], tokenizer=payload["tokenizer"], out=str(model), train=payload["train"],
        model=payload["model_options"], progress=False))
    if not (model / "eval_valid.json").is_file():
        gp.evaluate(gp.EvaluateConfig(payload["dataset"], model=str(model), split="valid", progress=False))
    return {"already_done": result.already_done}


def plot(logs: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (by_time, by_step) = plt.subplots(1, 2, figsize=(10, 3.8))
    for name, log in logs.items():
        evals = [r for r in log if "valid" in r]
        values = [r["valid"]["ndcg@10"] for r in evals]
        by_time.plot([r["seconds"] / 60 for r in evals], values, marker="o", label=name)
        by_step.plot([r["step"] for r in evals], values, marker="o", label=name)
    by_time.set(xlabel="training wall time (minutes)", ylabel="validation NDCG@10 (sampled users)")
    by_step.set(xlabel="optimizer step", ylabel="validation NDCG@10 (sampled users)")
    for axis in (by_time, by_step):
        axis.grid(alpha=0.3)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser():
    parser = script_parser("bench.training_quality", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tokenizer", help="default DATASET/tokenizer")
    parser.add_argument("--config", required=True, help="JSON with \"train\" and \"model\" options")
    parser.add_argument("--work", required=True, help="folder for the two trained models")
    parser.add_argument("--out", help="report folder (default: --work; pass bench/results to update the repo's)")
    parser.add_argument("--name", default="training-quality")
    parser.add_argument("--note", default="", help="a line for the report, e.g. what else ran on the machine")
    return parser


def _run(args: argparse.Namespace, command: str) -> int:
    """Train and evaluate both variants (each in its own process), then write the report."""
    from genrec.core.config import load_config_file
    from genrec.core.hardware import hardware, hardware_line

    config = load_config_file(args.config)
    unknown = sorted(set(config) - {"train", "model"})
    if unknown:
        raise GenrecError(f"{args.config}: unknown key(s) {', '.join(unknown)}; expected train, model")
    tokenizer = args.tokenizer or str(Path(args.dataset) / "tokenizer")
    work = Path(args.work)
    out = Path(args.out) if args.out else work
    logs, results = {}, {}
    for name, (overrides, keep) in VARIANTS.items():
        model = work / name
        print(f"[{name}] train options {overrides or '(defaults)'} -> {model}", flush=True)
        run_isolated(train_variant, {"dataset": args.dataset, "tokenizer": tokenizer, "model": str(model),
                                     "train": {**config.get("train", {}), **overrides},
                                     "model_options": config.get("model", {})}, keep_freed_memory=keep)
        logs[name] = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
        meta, valid = read_json(model / "genrec.json"), read_json(model / "eval_valid.json")
        results[name] = {"train_overrides": overrides, "keep_freed_memory": keep, "train_seconds": meta["train_seconds"],
                         "steps": meta["steps"], "epochs": meta["epochs"],
                         "valid_all_users": {k: v for k, v in valid.items() if k != "popularity"}}
    speedup = results["plain"]["train_seconds"] / results["genrec"]["train_seconds"]
    info = hardware()
    report = {"command": command, "config": config, "hardware": info, "note": args.note,
              "variants": results, "wall_time_speedup": speedup,
              "curves": {name: [r for r in log if "valid" in r] for name, log in logs.items()}}
    out.mkdir(parents=True, exist_ok=True)
    plot(logs, out / f"{args.name}.png")
    lines = [f"# Training quality: plain loop vs genrec ({hardware_line(info)})", "", f"Command: `{command}`",
             "", *([args.note, ""] if args.note else []), f"Recipe: `{json.dumps(config)}`", ""]
    rows = []
    for name, r in results.items():
        changes = [f"{k}={v}" for k, v in r["train_overrides"].items()]
        changes += [] if r["keep_freed_memory"] else ["GENREC_KEEP_FREED_MEMORY=0"]
        rows.append([name, f"`{' '.join(changes)}`" if changes else "(defaults)", f"{r['train_seconds']:.0f}",
                     r["steps"], r["epochs"], *(f"{r['valid_all_users'][k]:.4f}" for k in KEYS)])
    lines += markdown_table(["variant", "changed from the defaults", "train s", "steps", "epochs",
                             *(f"valid {k}" for k in KEYS)], rows)
    lines += ["", f"Same steps, {speedup:.2f}x less training wall time (validation metrics: all users, full catalog).",
              "", f"![validation NDCG@10 against wall time and step]({args.name}.png)", ""]
    write_report(out, args.name, report, "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
