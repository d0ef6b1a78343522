"""One command that measures the GPU path the first time a GPU is at hand: the `tiger` recipe on a
prepared dataset (Beauty), over every visible GPU (`accelerate launch` when there are several).

    python -m bench.gpu_check --dataset DIR --out DIR [--minutes 5]

Stages, each a genrec command in a subprocess: `train-tokenizer` (R3-VAE, the default) when the
dataset has no tokenizer, `train-recommender --recipe tiger --time-budget MINUTES --t5-only`, then
`evaluate --split test`. Writes OUT/gpu_check.json and OUT/gpu_check.md: each stage's seconds, the
T5's steps and steps/s, its best validation NDCG@10, the test metrics (fused with the prior as
chosen on validation, and the T5 alone) and the hardware. A stage that fails stops the check with
its log's end in the report. Sized for a 15-minute device lease: about 8 minutes with the default
5-minute budget on one H100-class GPU. `bench/gpu_pack.sh` makes the folder that travels with it
(the prepared dataset and the wheels the GPU machine lacks); docs/benchmarks.md has the call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import markdown_table, run_script, script_parser, write_report
from genrec.core.hardware import hardware, hardware_line


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def genrec_command(args: list[str], processes: int) -> list[str]:
    """``genrec ARGS`` in a fresh interpreter; through `accelerate launch` over ``processes`` GPUs."""
    if processes > 1:
        return [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(processes),
                "--multi_gpu", "-m", "genrec.cli", *args]
    return [sys.executable, "-m", "genrec.cli", *args]


def run_stage(name: str, command: list[str], out: Path, stages: list[dict]) -> bool:
    """Run one stage, its output to OUT/NAME.log; record its seconds and exit code."""
    started = time.perf_counter()
    with open(out / f"{name}.log", "w") as log:
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    stages.append({"stage": name, "seconds": round(time.perf_counter() - started, 1), "exit": code,
                   "command": " ".join(command[1:] if command[0] == sys.executable else command)})
    if code != 0:
        stages[-1]["log_tail"] = (out / f"{name}.log").read_text()[-3000:]
    print(f"[{name}] exit {code} in {stages[-1]['seconds']:.0f} s", flush=True)
    return code == 0


def check(args) -> dict:
    out, data = Path(args.out), str(args.dataset)
    out.mkdir(parents=True, exist_ok=True)
    processes = gpu_count() if args.processes is None else args.processes
    model = out / "recommender"
    stages: list[dict] = []
    ok = True
    if not (Path(data) / "tokenizer" / "semantic_ids.npy").is_file():
        ok = run_stage("train-tokenizer", genrec_command(["train-tokenizer", "--dataset", data], 1), out, stages)
    train = ["train-recommender", "--dataset", data, "--out", str(model), "--recipe", "tiger", "--t5-only",
             "--time-budget", f"{args.minutes:g}", "--no-progress", "--restart", *args.train_flags]
    ok = ok and run_stage("train-recommender", genrec_command(train, max(1, processes)), out, stages)
    evaluation = ["evaluate", "--dataset", data, "--model", str(model), "--split", "test", "--output",
                  str(out / "eval_test.json"), "--no-progress"]
    ok = ok and run_stage("evaluate", genrec_command(evaluation, 1), out, stages)
    report = {"stages": stages, "ok": ok, "processes": max(1, processes), "minutes": args.minutes}
    if (model / "genrec.json").is_file():
        meta = json.loads((model / "genrec.json").read_text())
        report["training"] = {key: meta.get(key) for key in ("steps", "epochs", "train_seconds", "best_step",
                                                             "best_valid_ndcg@10", "stop_reason", "recipe")}
        report["training"]["steps_per_second"] = round(meta["steps"] / max(meta["train_seconds"], 1e-9), 2)
    if (out / "eval_test.json").is_file():
        result = json.loads((out / "eval_test.json").read_text())
        keys = ("recall@10", "ndcg@10", "recall@20", "ndcg@20")
        report["test"] = {"fused": {key: result.get(key) for key in keys}, "fusion": result.get("fusion"),
                          "model_alone": {key: result.get("alone", {}).get("model", {}).get(key) for key in keys}}
    return report


def markdown(report: dict) -> str:
    stages = [[s["stage"], s["seconds"], s["exit"], f"`{s['command']}`"] for s in report["stages"]]
    lines = ["# GPU check: the tiger recipe", "", f"`{report['command']}`", "", f"Hardware: {report['hardware_line']}",
             f"({report['processes']} process(es)), time budget {report['minutes']:g} min.", "",
             *markdown_table(["stage", "seconds", "exit", "command"], stages), ""]
    if "training" in report:
        t = report["training"]
        lines += [f"T5 (recipe {t['recipe']}): {t['steps']:,} steps ({t['epochs']} epochs) in {t['train_seconds']} s, "
                  f"{t['steps_per_second']} steps/s (validations included); best validation NDCG@10 {t['best_valid_ndcg@10']:.4f} at step "
                  f"{t['best_step']:,} (stopped by {t['stop_reason']}).", ""]
    if "test" in report:
        fused, alone = report["test"]["fused"], report["test"]["model_alone"]
        lines += [f"Test, all users: fused ({report['test']['fusion']}) Recall@10 {fused['recall@10']:.4f}, NDCG@10 "
                  f"{fused['ndcg@10']:.4f}; the T5 alone {alone['recall@10']:.4f} / {alone['ndcg@10']:.4f}.", ""]
    for stage in report["stages"]:
        if stage["exit"]:
            lines += [f"`{stage['stage']}` failed; the end of its log:", "", "```", stage["log_tail"], "```", ""]
    return "\n".join(lines)


def run(args, command: str) -> int:
    report = check(args)
    info = hardware()
    report = {"command": command, "hardware": info, "hardware_line": hardware_line(info), **report}
    write_report(Path(args.out), "gpu_check", report, markdown(report))
    return 0 if report["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.gpu_check", __doc__)
    parser.add_argument("--dataset", required=True, help="prepared dataset directory (with its embeddings)")
    parser.add_argument("--out", required=True, help="report directory (the trained model goes there too)")
    parser.add_argument("--minutes", type=float, default=5.0, help="the T5's training budget (default 5)")
    parser.add_argument("--processes", type=int, help="training processes (default: one per visible GPU)")
    parser.add_argument("--train-flag", dest="train_flags", action="append", default=[], metavar="FLAG",
                        help="one more train-recommender flag (repeatable), e.g. --train-flag=--max-steps=40 "
                             "for a dry run")
    return run_script("bench.gpu_check", parser, run, argv)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
