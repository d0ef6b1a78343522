"""Scale: every pipeline stage on synthetic catalogues of growing size, with time, memory and growth.

    python -m bench.scale [--sizes 10000,100000,1000000] [--out bench/results/scale] [--work DIR]

For each size N (items; users = --users-per-item x N) in its own process, one stage at a time:
prepare (the synthetic preset, embeddings included), train-tokenizer (--tokenizer-method),
train-recommender (--train-steps steps, no validation until the end, fusion not chosen),
fused decoding (a --decode-users sample decoded with the transition prior fused: users/s),
recommend --all --partitioned (every user; skipped above --max-all-users) and serve (POST /recommend
at --serve-clients clients, bench.serve_load: p50 / p99); the last three decode with the prior at
--prior-weight keeping --prior-successors per item (recorded in the model's genrec.json); then
train-sasrec (--train-steps steps of the sampled softmax over shared popularity negatives, with
text, validated once at the end on 200 users).
Per stage: wall time and the stage process's peak RSS (os.wait4; recommend --all over
--all-processes: the largest process's; serve: not measured, the server is the load client's
child), and between consecutive sizes the growth exponent log(cost ratio) / log(size ratio) of
time and peak RSS (training: time per step; decoding: time per user; serve: p99), where 1 means
"grows like the catalogue". Threads: --threads per process
(default 1).
Writes OUT/scale.json and OUT/scale.md (command and hardware included).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import markdown_table, run_script, script_parser, write_report

STAGES = ("prepare", "tokenizer", "train", "decode", "recommend_all", "serve", "sasrec")


def build_parser():
    parser = script_parser("bench.scale", __doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="catalogue sizes, comma-separated")
    parser.add_argument("--users-per-item", type=float, default=2.0)
    parser.add_argument("--out", default="bench/results/scale", help="report folder")
    parser.add_argument("--work", help="folder for the generated datasets and models (default: a temporary one, removed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per stage process")
    parser.add_argument("--tokenizer-method", default="rkmeans")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--decode-users", type=int, default=2000, help="users in the fused-decoding sample")
    parser.add_argument("--prior-weight", type=float, default=2.0, help="fusion weight of the transition prior")
    parser.add_argument("--prior-successors", type=int, default=200,
                        help="followers the prior keeps per item (0 = all; at 1M synthetic items every successor "
                             "means ~21k counted items per user and the prior alone caps decoding near 90 users/s)")
    parser.add_argument("--max-all-users", type=int, default=250_000,
                        help="recommend --all runs only where the dataset has at most this many users")
    parser.add_argument("--all-processes", type=int, default=1,
                        help="recommend --all as this many processes (accelerate launch; each --threads threads)")
    parser.add_argument("--serve-clients", type=int, default=8)
    parser.add_argument("--serve-requests", type=int, default=200)
    parser.add_argument("--stages", default=",".join(STAGES), help="stages to run (the later ones need the earlier)")
    return parser


def run_stage(argv: list[str], env: dict, log: Path) -> dict:
    """``argv`` as a child process: its wall time and peak RSS (its own, from wait4), or an error."""
    started = time.perf_counter()
    with open(log, "w") as handle:
        process = subprocess.Popen(argv, env=env, stdout=handle, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    result = {"wall_s": round(time.perf_counter() - started, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    if process.returncode != 0:
        result["error"] = f"exit {process.returncode}: " + log.read_text()[-400:].strip().replace("\n", " | ")
    return result


def decode_sample(payload: str) -> None:
    """Child of the decode stage: fused decoding of a user sample, users/s to payload["out"]."""
    import numpy as np

    from genrec.pipeline import load_trained

    settings = json.loads(payload)
    started = time.perf_counter()
    recommender, dataset = load_trained(settings["dataset"], None, fit="all")  # fused as recorded after training
    assert recommender.policy.weights == {"prior": settings["weight"]}, recommender.policy.weights
    load_seconds = time.perf_counter() - started
    rng = np.random.default_rng(settings["seed"])
    users = np.sort(rng.choice(dataset.num_users, min(settings["users"], dataset.num_users), replace=False)) + 1
    histories = [dataset.history(int(u)) for u in users]
    started = time.perf_counter()
    recommender.recommend(histories, 10, users=users.tolist(), beams=20, exclude_seen=True, batch_size=256)
    seconds = time.perf_counter() - started
    Path(settings["out"]).write_text(json.dumps({"users": len(users), "decode_s": round(seconds, 2),
                                                 "users_per_s": round(len(users) / seconds, 1),
                                                 "load_s": round(load_seconds, 2)}))


def stage_argv(stage: str, args, size: int, data: Path, scratch: Path) -> list[str]:
    python, cli = sys.executable, [sys.executable, "-m", "genrec.cli"]
    users = int(round(size * args.users_per_item))
    if stage == "prepare":
        return [*cli, "prepare", "synthetic", "--items", str(size), "--users", str(users), "--seed", str(args.seed),
                "--out", str(data)]
    if stage == "tokenizer":
        return [*cli, "train-tokenizer", "--dataset", str(data), "--method", args.tokenizer_method]
    if stage == "train":
        config = scratch / "train.json"
        config.write_text(json.dumps({"train": {"max_steps": args.train_steps, "eval_every": args.train_steps,
                                                "eval_users": 200, "time_budget_minutes": 0,
                                                "threads": args.threads},
                                      # the T5 over Semantic IDs alone, as the committed runs measured it
                                      "model": {"item_text": False, "item_ids": False}}))
        return [*cli, "train-recommender", "--dataset", str(data), "--config", str(config), "--recipe", "cpu",
                "--fusion-weights", "0", "--restart", "--t5-only"]
    if stage == "decode":
        payload = json.dumps({"dataset": str(data), "weight": args.prior_weight, "successors": args.prior_successors,
                              "users": args.decode_users, "seed": args.seed, "out": str(scratch / "decode.json")})
        return [python, "-c", f"from bench.scale import decode_sample; decode_sample({payload!r})"]
    if stage == "recommend_all":
        if args.all_processes > 1:  # CPU processes over gloo, as training runs under accelerate
            from bench.serve_load import free_port

            cli = [python, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes",
                   str(args.all_processes), "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend",
                   "no", "--main_process_port", str(free_port()), "-m", "genrec.cli"]
        return [*cli, "recommend", "--all", "--partitioned", "--out", str(scratch / "recs"), "--dataset", str(data),
                "--no-progress"]  # fused as recorded after training (stage_details)
    if stage == "sasrec":
        return [*cli, "train-sasrec", "--dataset", str(data), "--out", str(scratch / "sasrec"), "--loss", "sampled",
                "--max-steps", str(args.train_steps), "--eval-every", str(args.train_steps), "--eval-users", "200",
                "--time-budget", "0", "--threads", str(args.threads), "--fusion-weights", "prior=0", "--restart",
                "--no-progress"]
    if stage == "serve":
        return [python, "-m", "bench.serve_load", "--dataset", str(data), "--out", str(scratch / "serve"),
                "--levels", str(args.serve_clients), "--requests", str(args.serve_requests), "--time-limit", "120"]
    raise ValueError(stage)


def stage_details(stage: str, data: Path, scratch: Path, result: dict, settings) -> None:
    """What a finished stage reports besides time and memory."""
    from genrec.core.io import atomic_write_json

    if stage == "sasrec":
        meta = json.loads((scratch / "sasrec" / "genrec.json").read_text())
        result.update({"steps": meta["steps"], "train_s": meta["train_seconds"], "examples": meta["examples"],
                       "s_per_step": round(meta["train_seconds"] / max(meta["steps"], 1), 4),
                       "loss": meta["train_config"]["loss"], "negatives": meta["train_config"]["negatives"]})
    elif stage == "train":
        meta_file = data / "recommender" / "genrec.json"
        meta = json.loads(meta_file.read_text())
        # The fusion the later stages decode with, recorded where train-recommender records its
        # chosen weights, so recommend --all and serve use it too (choosing it would cost a search).
        meta["fusion"] = {"weights": {"prior": settings.prior_weight}, "prior_successors": settings.prior_successors,
                          "set_by": "bench.scale"}
        atomic_write_json(meta_file, meta)
        result["steps"] = meta["steps"]
        result["train_s"] = meta["train_seconds"]
        result["s_per_step"] = round(meta["train_seconds"] / max(meta["steps"], 1), 4)
        result["examples"] = meta["examples"]
    elif stage == "decode":
        result.update(json.loads((scratch / "decode.json").read_text()))
    elif stage == "recommend_all":
        manifest = json.loads((scratch / "recs" / "_recommendations.json").read_text())
        result.update({"users": manifest["num_users"], "parts": manifest["parts"],
                       "processes": manifest.get("processes", 1)})
        result["users_per_s"] = round(manifest["num_users"] / result["wall_s"], 1)
    elif stage == "serve":
        level = json.loads((scratch / "serve" / "serve_load.json").read_text())["levels"][0]
        result.update({key: level[key] for key in ("clients", "requests", "errors", "p50_ms", "p99_ms",
                                                   "requests_per_second")})
        result["peak_rss_mb"] = None  # the load client's, not the server's: not reported


def run_size(size: int, args, work: Path, stages: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    data, scratch = work / f"synthetic-{size}", work / f"scratch-{size}"
    scratch.mkdir(parents=True, exist_ok=True)
    users = int(round(size * args.users_per_item))
    results = {"items": size, "users": users}
    for stage in stages:
        if stage == "recommend_all" and users > args.max_all_users:
            results[stage] = {"skipped": f"{users:,} users > --max-all-users {args.max_all_users:,}"}
            continue
        print(f"scale {size:,}: {stage} ...", file=sys.stderr, flush=True)
        result = run_stage(stage_argv(stage, args, size, data, scratch), env, scratch / f"{stage}.log")
        if "error" not in result:
            stage_details(stage, data, scratch, result, args)
        results[stage] = result
        print(f"scale {size:,}: {stage}: {result}", file=sys.stderr, flush=True)
        if "error" in result:
            break
    return results


def exponent(a: float | None, b: float | None, ratio: float) -> float | None:
    if not a or not b or a <= 0 or b <= 0:
        return None
    return round(math.log(b / a) / math.log(ratio), 2)


def cost(stage: str, result: dict) -> float | None:
    """The stage's time that should grow no faster than its work: per step, per user, or the whole stage."""
    if not result or "wall_s" not in result or "error" in result:
        return None
    if stage in ("train", "sasrec"):
        return result.get("s_per_step")
    if stage in ("decode", "recommend_all"):
        return 1.0 / result["users_per_s"] if result.get("users_per_s") else None
    if stage == "serve":
        return result.get("p99_ms")
    return result["wall_s"]


def growth(runs: list[dict], stages: list[str]) -> list[dict]:
    out = []
    for small, large in zip(runs, runs[1:]):
        ratio = large["items"] / small["items"]
        row = {"from": small["items"], "to": large["items"]}
        for stage in stages:
            a, b = small.get(stage, {}), large.get(stage, {})
            row[stage] = {"time": exponent(cost(stage, a), cost(stage, b), ratio),
                          "peak_rss": exponent(a.get("peak_rss_mb"), b.get("peak_rss_mb"), ratio)}
        out.append(row)
    return out


def markdown(report: dict, stages: list[str]) -> str:
    rows = []
    for run in report["runs"]:
        for stage in stages:
            result = run.get(stage)
            if result is None:
                continue
            detail = {"train": lambda r: f"{r.get('s_per_step')} s/step ({r.get('steps')} steps)",
                      "decode": lambda r: f"{r.get('users_per_s')} users/s ({r.get('users')} users)",
                      "recommend_all": lambda r: f"{r.get('users_per_s')} users/s, {r.get('parts')} parts, "
                                                 f"{r.get('processes', 1)} process(es)",
                      "serve": lambda r: f"p50 {r.get('p50_ms')} ms, p99 {r.get('p99_ms')} ms, {r.get('clients')} clients",
                      "sasrec": lambda r: f"{r.get('s_per_step')} s/step ({r.get('steps')} steps, {r.get('loss')} "
                                          f"softmax, {r.get('negatives')} negatives)",
                      }.get(stage, lambda r: "")
            text = result.get("skipped") or result.get("error") or detail(result)
            rows.append([f"{run['items']:,}", f"{run['users']:,}", stage, result.get("wall_s", ""),
                         result.get("peak_rss_mb") or "", text])
    lines = ["# Scale: the pipeline on synthetic catalogues", "", f"`{report['command']}`", "",
             f"Hardware: {report['hardware_line']}; {report['settings']['threads']} thread(s) per stage", "",
             *markdown_table(["items", "users", "stage", "wall s", "peak RSS MB", ""], rows), ""]
    if report["growth"]:
        lines += ["Growth exponents (time: per step for training, per user for decoding, p99 for serve; "
                  "1 = grows like the catalogue):", ""]
        grow_rows = [[f"{g['from']:,} -> {g['to']:,}", stage, g[stage]["time"], g[stage]["peak_rss"]]
                     for g in report["growth"] for stage in stages]
        lines += [*markdown_table(["sizes", "stage", "time exponent", "peak RSS exponent"], grow_rows), ""]
    return "\n".join(lines)


def run(args, command: str) -> int:
    from genrec.core.errors import GenrecError
    from genrec.core.hardware import hardware, hardware_line

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    stages = [s for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if not sizes or min(sizes) < 10 or unknown:
        raise GenrecError(f"--sizes must be numbers >= 10 and --stages a subset of {', '.join(STAGES)}")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="genrec-scale-"))
    try:
        runs = [run_size(size, args, work, stages) for size in sizes]
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    info = hardware()
    report = {"command": command, "hardware": info, "hardware_line": hardware_line(info),
              "settings": {key: getattr(args, key) for key in ("users_per_item", "seed", "threads", "tokenizer_method",
                                                               "train_steps", "decode_users", "prior_weight",
                                                               "prior_successors", "max_all_users", "all_processes",
                                                               "serve_clients", "serve_requests")},
              "runs": runs, "growth": growth(runs, stages)}
    write_report(Path(args.out), "scale", report, markdown(report, stages))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_script("bench.scale", build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
