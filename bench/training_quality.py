"""Same model, same recipe, two training paths: does genrec's faster step keep the validation quality?

    python bench/training_quality.py --dataset data/amazon-beauty --config bench/configs/training-quality.json \
        --work /tmp/tq --out bench/results --name beauty-training-quality

Trains the recommender twice with `genrec train-recommender --config CONFIG` (same seed, steps,
optimizer, schedule and evaluation):

* plain: random batches (--sort-window 1, so every batch is padded to its longest history, nearly
  always the maximum), torch's dropout (--no-fast-dropout), glibc's default malloc behaviour
  (GENREC_KEEP_FREED_MEMORY=0);
* genrec: the defaults (length-bucketed batches, fast dropout, freed memory kept).

Then evaluates both final models on the whole validation split and writes NAME.json, NAME.md and
NAME.png (validation NDCG@10 on the periodic user sample against training wall time and step).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genrec.core.io import atomic_write_json, atomic_write_text, read_json  # noqa: E402

VARIANTS = {
    "plain": (["--sort-window", "1", "--no-fast-dropout"], {"GENREC_KEEP_FREED_MEMORY": "0"}),
    "genrec": ([], {}),
}


def genrec(argv: list[str], env: dict) -> None:
    print("$ genrec " + shlex.join(argv), flush=True)
    subprocess.run([sys.executable, "-m", "genrec.cli", *argv], env=env, cwd=ROOT, check=True)


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tokenizer", help="default DATASET/tokenizer")
    parser.add_argument("--config", required=True, help="train-recommender config file")
    parser.add_argument("--work", required=True, help="folder for the two trained models")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--name", default="training-quality")
    parser.add_argument("--note", default="", help="a line for the report, e.g. what else ran on the machine")
    args = parser.parse_args()

    tokenizer = args.tokenizer or str(Path(args.dataset) / "tokenizer")
    work, out = Path(args.work), Path(args.out)
    logs, results = {}, {}
    for name, (flags, extra_env) in VARIANTS.items():
        model = work / name
        env = {**os.environ, **extra_env}
        genrec(["train-recommender", "--dataset", args.dataset, "--tokenizer", tokenizer, "--out", str(model),
                "--config", args.config, "--no-progress", *flags], env)
        if not (model / "eval_valid.json").is_file():
            genrec(["evaluate", "--dataset", args.dataset, "--model", str(model), "--split", "valid"], env)
        logs[name] = [json.loads(line) for line in (model / "metrics.jsonl").read_text().splitlines()]
        meta, valid = read_json(model / "genrec.json"), read_json(model / "eval_valid.json")
        results[name] = {"flags": flags, "env": extra_env, "train_seconds": meta["train_seconds"],
                         "steps": meta["steps"], "epochs": meta["epochs"],
                         "valid_all_users": {k: v for k, v in valid.items() if k != "popularity"}}
    speedup = results["plain"]["train_seconds"] / results["genrec"]["train_seconds"]
    report = {"command": "python bench/training_quality.py " + shlex.join(sys.argv[1:]),
              "config": read_json(args.config), "hardware": f"{platform.machine()}, {os.cpu_count()} cores, CPU only, "
                                f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}", "note": args.note,
              "variants": results, "wall_time_speedup": speedup,
              "curves": {name: [r for r in log if "valid" in r] for name, log in logs.items()}}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / f"{args.name}.json", report)
    plot(logs, out / f"{args.name}.png")
    keys = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr")
    lines = [f"# Training quality: plain loop vs genrec ({report['hardware']})", "", f"Command: `{report['command']}`",
             "", *([args.note, ""] if args.note else []), f"Recipe: `{json.dumps(report['config'])}`", "",
             "| variant | extra flags | train s | steps | epochs | " + " | ".join(f"valid {k}" for k in keys) + " |",
             "|---|---|---|---|---|" + "---|" * len(keys)]
    for name, r in results.items():
        flags = " ".join(r["flags"] + [f"{k}={v}" for k, v in r["env"].items()]) or "(defaults)"
        lines.append(f"| {name} | `{flags}` | {r['train_seconds']:.0f} | {r['steps']} | {r['epochs']} | "
                     + " | ".join(f"{r['valid_all_users'][k]:.4f}" for k in keys) + " |")
    lines += ["", f"Same steps, {speedup:.2f}x less training wall time (validation metrics: all users, full catalog).",
              "", f"![validation NDCG@10 against wall time and step]({args.name}.png)", ""]
    atomic_write_text(out / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
