"""T5 options side by side at one training budget, chosen on validation users.

Each variant is `genrec train-recommender --recipe cpu --time-budget MINUTES --threads 1` plus its own
flags (no fusion: the model alone), run --jobs at a time (one torch thread each), then decoded for
every validation user (beam 30, the user's own history left out, as the hour rows). Per-user hits
and NDCG@10 are kept, so each variant is compared with the first one paired over the same users
(difference ± its standard error). With --test, the named variants are also decoded once on test.
Resumable: a finished variant (trained and decoded) is not run again.

    python -m bench.t5_options --dataset data/amazon-beauty --minutes 30 --work runs/t5-options \
        --variants base= text_ids="--item-text --item-ids" --out bench/results/t5-options-beauty
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.common import report_page, run_script, script_parser, write_report

KS = (10, 20)
# The recipe as this study read it (before it put item text + ids into the cpu recipe): each variant's flags on top.
BASE_FLAGS = ("--no-item-text", "--no-item-ids")


def _budget_flags(minutes: float, steps: int | None) -> list[str]:
    """A wall-clock budget, or with ``steps`` a fixed step count (the same run however busy the cores are)."""
    if steps:
        return ["--time-budget", "0", "--max-steps", str(steps)]
    return ["--time-budget", f"{minutes:g}"]


def _train_command(dataset: str, out: Path, minutes: float, flags: str, steps: int | None = None) -> list[str]:
    return [sys.executable, "-m", "genrec.cli", "train-recommender", "--dataset", dataset, "--recipe", "cpu",
            *_budget_flags(minutes, steps), "--threads", "1", "--fusion-weights", "prior=0", "--out", str(out),
            "--no-progress", "--t5-only", *BASE_FLAGS, *shlex.split(flags)]


def _train_all(args, variants: dict[str, str], work: Path) -> None:
    """Train every variant not yet trained, --jobs at a time; each one's log beside its folder."""
    pending = [name for name in variants if not (work / name / "genrec.json").is_file()]
    running: list[tuple[str, subprocess.Popen]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    while pending or running:
        while pending and len(running) < args.jobs:
            name = pending.pop(0)
            log = open(work / f"{name}.train.log", "a")
            command = _train_command(args.dataset, work / name, args.minutes, variants[name], args.steps)
            print(f"training {name}: {shlex.join(command[1:])}", flush=True)
            running.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)))
        name, process = running.pop(0)
        if process.wait() != 0:
            from genrec.core.errors import GenrecError

            raise GenrecError(f"variant {name} failed; see {work / f'{name}.train.log'}")


def per_user(model: Path, dataset: str, split: str, beams: int = 30, policy: str = "alone") -> dict[str, np.ndarray]:
    """Hit@K and NDCG@K per user of ``split`` (all users): the model alone with history left out, or
    with ``policy="chosen"`` the decoding policy recorded after training (fusion and history rule)."""
    from genrec.pipeline import load_trained
    from genrec.recommender.data import split_examples

    if policy not in ("alone", "chosen"):
        raise ValueError(f"policy is 'alone' or 'chosen', not {policy!r}")
    alone = policy == "alone"
    recommender, data = load_trained(dataset, model, fusion={} if alone else None, exclude_seen=True if alone else None)
    examples = split_examples(data, split)
    items, _ = recommender.recommend([h for _, h, _ in examples], beams, users=[u for u, _, _ in examples],
                                     beams=beams)
    targets = np.asarray([t for _, _, t in examples])
    found = items == targets[:, None]
    rank = np.where(found.any(axis=1), found.argmax(axis=1), beams)  # 0-based; beams = not found
    out = {}
    for k in KS:
        out[f"hit@{k}"] = (rank < k).astype(np.float64)
        out[f"ndcg@{k}"] = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
    return out


def _decoded(work: Path, name: str, dataset: str, split: str) -> dict[str, np.ndarray]:
    path = work / f"{name}.{split}.npz"
    if not path.is_file():
        arrays = per_user(work / name, dataset, split)
        np.savez(work / f".{name}.{split}.tmp.npz", **arrays)
        os.replace(work / f".{name}.{split}.tmp.npz", path)
    return dict(np.load(path))


def summary(arrays: dict[str, np.ndarray], base: dict[str, np.ndarray] | None) -> dict:
    """Mean ± s.e. of each per-user metric and, against ``base``, the paired difference ± s.e."""
    out = {}
    for key, values in arrays.items():
        n = len(values)
        out[key] = float(values.mean())
        out[f"{key}_se"] = float(values.std(ddof=1) / np.sqrt(n))
        if base is not None:
            diff = values - base[key]
            out[f"{key}_diff"] = float(diff.mean())
            out[f"{key}_diff_se"] = float(diff.std(ddof=1) / np.sqrt(n))
    return out


def paired_cell(result: dict) -> str:
    """``+d ± se / +d ± se``: a ``summary``'s paired Recall@10 and NDCG@10 differences."""
    return (f"{result['hit@10_diff']:+.4f} ± {result['hit@10_diff_se']:.4f} / "
            f"{result['ndcg@10_diff']:+.4f} ± {result['ndcg@10_diff_se']:.4f}")


def _run(args, command: str) -> int:
    from genrec.core.errors import GenrecError
    from genrec.core.hardware import hardware_line
    from genrec.core.io import read_json

    variants = {}
    for spec in args.variants:
        name, sep, flags = spec.partition("=")
        if not sep or not name:
            raise GenrecError(f"--variants takes NAME=FLAGS, got {spec!r}")
        variants[name] = flags
    unknown = set(args.test) - set(variants)
    if unknown:
        raise GenrecError(f"--test names no variant: {', '.join(sorted(unknown))}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    _train_all(args, variants, work)
    first = next(iter(variants))
    budget = f"{args.steps:,}-step" if args.steps else f"{args.minutes:g}-minute"
    report = {"command": command, "hardware": hardware_line(), "minutes": None if args.steps else args.minutes,
              "steps": args.steps, "variants": {}}
    rows = []
    splits = {"valid": list(variants), "test": list(args.test)}
    for split, names in splits.items():
        base = _decoded(work, first, args.dataset, split) if names else None
        for name in names:
            arrays = _decoded(work, name, args.dataset, split)
            meta = read_json(work / name / "genrec.json")
            result = summary(arrays, None if name == first else base)
            report["variants"].setdefault(name, {"flags": variants[name], "steps": meta["steps"],
                                                 "best_step": meta["best_step"], "epochs": meta["epochs"]})[split] = result
            diff = "" if name == first else paired_cell(result)
            rows.append([split, name, f"`{variants[name]}`" if variants[name] else "(recipe)", f"{meta['steps']:,}",
                         f"{result['hit@10']:.4f} / {result['ndcg@10']:.4f}", f"{result['hit@20']:.4f}", diff])
    n = len(_decoded(work, first, args.dataset, "valid")["hit@10"])
    markdown = report_page(
        f"T5 options at a {budget} budget: {args.dataset}", command,
        f"{hardware_line()}; {args.jobs} variants at a time, one torch thread each.",
        f"Every user of the split ({n:,}), full catalogue, beam 30, the user's own history left out, the model "
        f"alone. Paired: the difference with `{first}` over the same users ± its standard error.",
        ["split", "variant", "flags", "steps", "Recall@10 / NDCG@10", "Recall@20",
         f"paired vs {first}: Recall@10 / NDCG@10"], rows)
    write_report(args.out, args.name, report, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.t5_options", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--variants", nargs="+", required=True, metavar="NAME=FLAGS",
                        help="the first is the one the others are compared with")
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per variant")
    parser.add_argument("--steps", type=int, default=None,
                        help="train each variant this many steps instead of --minutes (a budget that busy cores "
                             "do not change)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--test", nargs="*", default=[], metavar="NAME", help="variants also decoded on test")
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="t5-options")
    return run_script("bench.t5_options", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
