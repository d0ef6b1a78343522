"""CPU time-to-quality: the whole pipeline on one dataset under a wall-clock budget (issue 5).

    python bench/time_to_quality.py --raw-dir ../shared/datasets/amazon-beauty \
        --config bench/configs/beauty-cpu-60min.json --work /tmp/ttq --out bench/results --name beauty-cpu-60min

Runs, each as the `genrec` command a user would type, in a fresh data folder (so nothing is cached:
the item texts are embedded again), timing every stage:

    genrec prepare NAME --raw-dir RAW
    genrec embed
    genrec train-tokenizer [tokenizer options from the config]
    genrec train-recommender --config CONFIG
    genrec evaluate --split test

Writes NAME.json (stage times, test metrics, the validation curve), NAME.md and NAME.png (validation
NDCG@10 on the periodic sample of users against pipeline wall time). Rerunning after an interruption
skips finished stages (train-recommender resumes from its checkpoint); the report then sums the
stage times of all attempts.
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
sys.path.insert(0, str(ROOT))

from genrec.core.io import atomic_write_json, atomic_write_text, read_json  # noqa: E402


def run_stage(name: str, argv: list[str], env: dict, state: dict, state_file: Path) -> None:
    if name in state["done"]:
        print(f"[{name}] done in an earlier attempt ({state['seconds'][name]:.0f} s)")
        return
    print(f"[{name}] $ genrec {shlex.join(argv)}", flush=True)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "genrec.cli", *argv], env=env, cwd=ROOT)
    state["seconds"][name] = state["seconds"].get(name, 0.0) + time.perf_counter() - started
    atomic_write_json(state_file, state)
    if result.returncode:
        raise SystemExit(f"stage {name} failed with exit code {result.returncode}; rerun to continue")
    state["done"].append(name)
    state["commands"][name] = "genrec " + shlex.join(argv)
    atomic_write_json(state_file, state)


def plot_curve(log: list[dict], train_start: float, stage_ends: dict, test: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in log if "valid" in r]
    minutes = [(train_start + r["seconds"]) / 60 for r in evals]
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.plot(minutes, [r["valid"]["ndcg@10"] for r in evals], marker="o", label="validation NDCG@10 (sampled users)")
    axis.plot(minutes, [r["valid"]["recall@10"] for r in evals], marker=".", alpha=0.6, label="validation Recall@10")
    end = stage_ends["evaluate"] / 60
    axis.scatter([end, end], [test["ndcg@10"], test["recall@10"]], marker="*", s=120, color="black",
                 label="test NDCG@10 / Recall@10 (all users)", zorder=3)
    for name, seconds in stage_ends.items():
        axis.axvline(seconds / 60, color="grey", lw=0.6, ls=":")
        axis.text(seconds / 60, axis.get_ylim()[1] * 0.98, name, rotation=90, va="top", ha="right", fontsize=7)
    axis.set(xlabel="pipeline wall time (minutes)", ylabel="metric", title="Beauty on 2 CPU cores: quality vs wall time")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset-name", default="amazon-beauty")
    parser.add_argument("--raw-dir", required=True)
    parser.add_argument("--config", required=True, help="train-recommender config (may hold a \"tokenizer_args\" list)")
    parser.add_argument("--work", required=True, help="scratch folder for the data (GENREC_DATA)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--name", default="time-to-quality")
    args = parser.parse_args()

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GENREC_DATA": str(work)}
    config = read_json(args.config)
    tokenizer_args = [str(x) for x in config.pop("tokenizer_args", [])]
    recommender_config = work / "recommender_config.json"
    atomic_write_json(recommender_config, config)  # train-recommender's own keys only
    dataset = work / args.dataset_name
    state_file = work / "time_to_quality_state.json"
    state = read_json(state_file) if state_file.is_file() else {"done": [], "seconds": {}, "commands": {}}

    stages = [
        ("prepare", ["prepare", args.dataset_name, "--raw-dir", str(Path(args.raw_dir).resolve())]),
        ("embed", ["embed", "--dataset", str(dataset)]),
        ("train-tokenizer", ["train-tokenizer", "--dataset", str(dataset), "--no-progress", *tokenizer_args]),
        ("train-recommender", ["train-recommender", "--dataset", str(dataset), "--config", str(recommender_config),
                               "--no-progress"]),
        ("evaluate", ["evaluate", "--dataset", str(dataset), "--model", str(dataset / "recommender"), "--split", "test"]),
    ]
    for name, argv in stages:
        run_stage(name, argv, env, state, state_file)

    ends, total = {}, 0.0
    for name, _ in stages:
        total += state["seconds"][name]
        ends[name] = total
    train_start = ends["train-tokenizer"]
    log = [json.loads(line) for line in (dataset / "recommender" / "metrics.jsonl").read_text().splitlines()]
    test = read_json(dataset / "recommender" / "eval_test.json")
    meta = read_json(dataset / "recommender" / "genrec.json")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "command": "python bench/time_to_quality.py " + shlex.join(sys.argv[1:]),
        "config": read_json(args.config),
        "hardware": f"{platform.machine()}, {os.cpu_count()} cores, CPU only",
        "stage_seconds": state["seconds"], "stage_commands": state["commands"], "total_seconds": total,
        "test": {k: v for k, v in test.items() if k != "popularity"}, "popularity_test": test["popularity"],
        "recommender": {k: meta[k] for k in ("best_step", "best_valid_ndcg@10", "steps", "epochs", "train_seconds")},
        "validation_curve": [{"pipeline_seconds": round(train_start + r["seconds"], 1), "step": r["step"], **r["valid"]}
                             for r in log if "valid" in r],
    }
    atomic_write_json(out / f"{args.name}.json", report)
    plot_curve(log, train_start, ends, test, out / f"{args.name}.png")
    lines = [f"# Time to quality: {args.dataset_name} on {report['hardware']}", "",
             f"Command: `{report['command']}`", "", "| stage | command | seconds |", "|---|---|---|"]
    lines += [f"| {n} | `{state['commands'][n]}` | {state['seconds'][n]:.0f} |" for n, _ in stages]
    lines += [f"| **total** | | **{total:.0f}** ({total / 60:.1f} min) |", "",
              "| test (all users, full catalog) | Recall@5 | Recall@10 | Recall@20 | NDCG@5 | NDCG@10 | NDCG@20 | MRR |",
              "|---|---|---|---|---|---|---|---|",
              "| genrec | " + " | ".join(f"{test[k]:.4f}" for k in ("recall@5", "recall@10", "recall@20", "ndcg@5",
                                                                      "ndcg@10", "ndcg@20", "mrr")) + " |",
              "| popularity | " + " | ".join(f"{test['popularity'][k]:.4f}" for k in (
                  "recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20", "mrr")) + " |", "",
              f"Recommender: {meta['steps']} steps ({meta['epochs']} epochs) in {meta['train_seconds']:.0f} s, best "
              f"validation NDCG@10 {meta['best_valid_ndcg@10']:.4f} (sampled users) at step {meta['best_step']}.", "",
              f"![validation NDCG@10 against wall time]({args.name}.png)", ""]
    atomic_write_text(out / f"{args.name}.md", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
