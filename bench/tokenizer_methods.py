"""Train every tokenizer method from the CLI on one dataset and tabulate their SID metrics
(bench/results/tokenizers/<name>.md + .json).

    python bench/tokenizer_methods.py --dataset data/amazon-beauty --name beauty

Each variant runs `genrec train-tokenizer --dataset D --method M --seed S --out SCRATCH/<variant> ...`
as a subprocess (the exact command lines are recorded); training time is the tokenizer's own fit time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

VARIANTS = {
    "r3vae": ["--method", "r3vae"],
    "rqvae": ["--method", "rqvae"],
    "rqvae-no-kmeans-init": ["--method", "rqvae", "--no-kmeans-init"],
    "vqvae": ["--method", "vqvae"],
    "rkmeans": ["--method", "rkmeans"],
    "rkmeans-balanced": ["--method", "rkmeans", "--balanced"],
    "opq": ["--method", "opq"],
    "r3vae-no-ref": ["--method", "r3vae", "--no-reference-vector"],
    "r3vae-ste": ["--method", "r3vae", "--rating", "ste"],
    "r3vae-no-sc-pd": ["--method", "r3vae", "--no-sc", "--no-pd"],
}


def fmt(values, spec=".3f"):
    return "/".join(format(v, spec) for v in values)


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| variant | collision rate | largest bucket | usage per level | perplexity per level | SC | PD | "
             "PD (input centroids) | Gini | recon ‖x−x̂‖² | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["metrics"]
        lines.append(f"| {r['variant']} | {m['collision_rate']:.3f} | {m['largest_bucket']} | {fmt(m['codebook_usage'], '.2f')} | "
                      f"{fmt(m['perplexity'], '.0f')} | {m['semantic_cohesion']:.3f} | {m['preference_discrimination']:.3f} | "
                      f"{m['preference_discrimination_input']:.3f} | {m['gini']:.3f} | {m['reconstruction_mse']:.3f} | "
                      f"{m['training_seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--name", required=True, help="bench/results/tokenizers/<name>.md/.json")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", default="/tmp/genrec_tokenizer_runs")
    parser.add_argument("--extra", default="", help="extra train-tokenizer flags for every variant")
    parser.add_argument("--rerun", action="store_true", help="retrain variants that already have metrics.json")
    args = parser.parse_args()
    rows = []
    for variant in args.variants.split(","):
        out = Path(args.scratch) / args.name / variant
        command = ["genrec", "train-tokenizer", "--dataset", args.dataset, *VARIANTS[variant], "--seed",
                   str(args.seed), "--out", str(out), "--no-progress", *shlex.split(args.extra)]
        started = time.perf_counter()
        if (out / "metrics.json").is_file() and not args.rerun:  # resumable: finished variants are kept
            print("done already:", shlex.join(command), flush=True)
        else:
            print("$", shlex.join(command), flush=True)
            subprocess.run(command, check=True, cwd=ROOT)
        metrics = json.loads((out / "metrics.json").read_text())
        rows.append({"variant": variant, "command": shlex.join(command), "metrics": metrics,
                     "history": json.loads((out / "training_history.json").read_text())})
    hardware = f"{platform.machine()}, {os.cpu_count()} CPU cores (shared with other jobs), torch CPU"
    report = {"dataset": args.dataset, "hardware": hardware,
              "script": "python bench/tokenizer_methods.py " + shlex.join(sys.argv[1:]), "runs": rows}
    header = (f"# Tokenizers on {args.name}\n\nMade by `{report['script']}` on {hardware}.\n"
              f"Per-variant commands are in {args.name}.json. Metric definitions: eval/sid_metrics.py.")
    results = ROOT / "bench" / "results" / "tokenizers"
    from genrec.core.io import atomic_write_json, atomic_write_text

    atomic_write_json(results / f"{args.name}.json", report)
    atomic_write_text(results / f"{args.name}.md", markdown(rows, header))
    print(markdown(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
