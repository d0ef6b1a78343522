"""Fused decoding speed against a baseline build of genrec, and whether both give the same top-K.

    pip install --no-deps --no-build-isolation --target /tmp/base-lib <checkout of the baseline commit>
    python -m bench.decode_speed --dataset data/amazon-beauty --baseline-lib /tmp/base-lib \\
        --users 0 --rounds 2 --out bench/results/decode-speed

Each (build, round) is its own process, one torch thread, run from outside any source tree (so
``--baseline-lib`` is the genrec it imports, and the other the installed one), the builds alternating
so both see the same load. Each loads DATASET's recommender under its recorded decoding policy
(fusion weights, history rule unless --exclude-seen; count scorers on every interaction, as recommend
and serve), decodes
--users users (0 = all) with --beams beams after a warm-up batch, and saves items and scores. The
report gives users/s per build and round, the speed ratio (the median over rounds), and how many
users get the identical top --top-k from both (and the largest score difference among them).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench.common import markdown_table, run_script, script_parser, write_report

CHILD = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
import genrec
from genrec.pipeline import load_trained
s = json.loads(sys.argv[1])
recommender, dataset = load_trained(s["dataset"], s["model"], fit="all")
users = np.arange(1, dataset.num_users + 1)
if s["users"]:
    users = np.sort(np.random.default_rng(s["seed"]).choice(users, min(s["users"], len(users)), replace=False))
histories = [dataset.history(int(u)) for u in users]
options = {"beams": s["beams"], "exclude_seen": s["exclude_seen"]}
recommender.recommend(histories[:256], s["top_k"], users=users[:256].tolist(), **options)  # warm-up
started = time.perf_counter()
items, scores = recommender.recommend(histories, s["top_k"], users=users.tolist(), batch_size=256, **options)
seconds = time.perf_counter() - started
np.savez(s["out"], items=items, scores=scores, users=users)
print(json.dumps({"seconds": seconds, "users": len(users), "genrec": genrec.__file__,
                  "weights": recommender.policy.weights,
                  "exclude_seen": recommender.policy.exclude_seen if s["exclude_seen"] is None else s["exclude_seen"]}))
"""


def _child(lib: str | None, settings: dict, scratch: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)
    if lib:
        env["PYTHONPATH"] = str(Path(lib).resolve())
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(settings)], cwd=scratch, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        from genrec.core.errors import GenrecError

        raise GenrecError(f"decoding with {lib or 'this build'} failed: {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_top_k(a: dict, b: dict, k: int) -> tuple[int, float]:
    """Users whose top ``k`` items are identical in both, and the largest score difference among them."""
    same = (a["items"][:, :k] == b["items"][:, :k]).all(axis=1)
    finite = np.isfinite(a["scores"][same, :k]) & np.isfinite(b["scores"][same, :k])
    gap = np.abs(a["scores"][same, :k] - b["scores"][same, :k])[finite]
    return int(same.sum()), float(gap.max()) if gap.size else 0.0


def _run(args, command: str) -> int:
    from genrec.core.hardware import hardware_line

    dataset = str(Path(args.dataset).resolve())
    model = str(Path(args.model).resolve()) if args.model else None
    builds = {"baseline": args.baseline_lib, "this build": None}
    runs, arrays = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(args.rounds):
            for name, lib in builds.items():
                out = Path(scratch) / f"{name.replace(' ', '-')}-{round_}.npz"
                settings = {"dataset": dataset, "model": model, "users": args.users, "seed": args.seed,
                            "beams": args.beams, "top_k": args.top_k, "out": str(out),
                            "exclude_seen": True if args.exclude_seen else None}
                result = _child(lib, settings, Path(scratch))
                result.update(build=name, round=round_, users_per_s=result["users"] / result["seconds"])
                print(f"{name} round {round_}: {result['users_per_s']:.1f} users/s ({result['genrec']})", flush=True)
                runs.append(result)
                arrays[name] = dict(np.load(out))
    speed = {name: statistics.median(r["users_per_s"] for r in runs if r["build"] == name) for name in builds}
    same, gap = same_top_k(arrays["baseline"], arrays["this build"], args.top_k)
    users = len(arrays["baseline"]["users"])
    report = {"command": command, "hardware": hardware_line(), "dataset": dataset, "users": users,
              "beams": args.beams, "top_k": args.top_k, "policy": {k: runs[0][k] for k in ("weights", "exclude_seen")},
              "runs": runs, "users_per_s": speed, "ratio": speed["this build"] / speed["baseline"],
              "same_top_k_users": same, "max_score_difference": gap}
    rows = [[r["build"], r["round"], f"{r['users_per_s']:.1f}", f"{r['seconds']:.1f}"] for r in runs]
    markdown = "\n".join([
        f"# Fused decoding speed: {Path(dataset).name}", "", f"Command: `{command}`", "",
        f"Hardware: {hardware_line()}; one process at a time, one torch thread, the builds alternating.", "",
        f"{users:,} users, beam {args.beams}, policy {report['policy']['weights'] or 'the model alone'} "
        f"(history left out: {report['policy']['exclude_seen']}).", "",
        *markdown_table(["build", "round", "users/s", "seconds"], rows), "",
        f"Speed ratio (median users/s, this build / baseline): **{report['ratio']:.2f}x**.", "",
        f"Identical top {args.top_k}: {same:,} of {users:,} users; largest score difference among them {gap:.2e}.",
        ""])
    write_report(args.out, args.name, report, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.decode_speed", __doc__)
    parser.add_argument("--dataset", required=True, help="prepared dataset with a trained recommender")
    parser.add_argument("--model", help="the recommender (default DATASET/recommender)")
    parser.add_argument("--baseline-lib", required=True, help="folder where the baseline genrec is installed "
                                                              "(pip install --target)")
    parser.add_argument("--users", type=int, default=2000, help="users decoded (0 = all)")
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--exclude-seen", action="store_true",
                        help="leave each user's history out (default: as the recorded policy says)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="decode-speed")
    return run_script("bench.decode_speed", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
