"""Tokenizer input options side by side over seeds, chosen on validation users (the T5 alone).

    python -m bench.tokenizer_inputs --dataset DIR --work DIR --out DIR --minutes 10 --seeds 3 \
        --variants "w1=--collaborative-weight 1" "w2=--collaborative-weight 2" [--jobs 2]

For each (variant, seed): a copy of the prepared dataset (its embeddings, no tokenizer) gets
`genrec train-tokenizer FLAGS --seed S` (R3-VAE unless FLAGS say otherwise), then `genrec
train-recommender --recipe cpu --time-budget MINUTES --threads 1 --t5-only --fusion-weights prior=0
--seed S`, then every validation user is decoded (beam 30, the user's own history left out, the T5
alone: bench.t5_options.per_user), --jobs (variant, seed) chains at a time, one torch thread each.
Reported per variant: Recall@10 / NDCG@10 mean ± std over seeds; against the first variant, the
paired difference per seed (same users, same seed) and its mean with a 95% t-interval over seeds.
Resumable: a finished (variant, seed) is not run again. Test is never read.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from bench.common import report_page, run_script, script_parser, write_report

DATASET_FILES = ("items.parquet", "sequences.parquet", "users.parquet", "stats.json", "embeddings")


def copy_dataset(source: Path, target: Path) -> None:
    """The prepared dataset without its tokenizer or models (written whole, then renamed)."""
    if (target / "stats.json").is_file():
        return
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in DATASET_FILES:
        path = source / name
        (shutil.copytree if path.is_dir() else shutil.copy2)(path, staging / name)
    os.replace(staging, target)


T5_FLAGS = "--no-item-text --no-item-ids"  # the recipe as the first studies read it (before item text + ids)


def chain(dataset: Path, flags: str, seed: int, minutes: float, steps: int | None = None,
          t5_flags: str = T5_FLAGS) -> str:
    """The shell chain of one (variant, seed): tokenizer, T5, validation decode (each skipped when done).
    The T5 trains for ``minutes`` or, given ``steps``, that many steps (what busy cores do not change)."""
    from bench.t5_options import _budget_flags

    budget = " ".join(_budget_flags(minutes, steps))
    python, data, model = shlex.quote(sys.executable), shlex.quote(str(dataset)), shlex.quote(str(dataset / "t5"))
    return " && ".join([
        f"{{ test -f {data}/tokenizer/semantic_ids.npy || {python} -m genrec.cli train-tokenizer --dataset {data} "
        f"--seed {seed} --no-progress {flags}; }}",
        f"{{ test -f {model}/genrec.json || {python} -m genrec.cli train-recommender --dataset {data} --out {model} "
        f"--recipe cpu {t5_flags} {budget} --threads 1 --t5-only --fusion-weights prior=0 --seed {seed} "
        "--no-progress; }",
        f"{{ test -f {data}/valid.npz || {python} -m bench.tokenizer_inputs --decode {data}; }}",
    ])


def decode(dataset: Path) -> None:
    """Per-user validation hits and NDCG of the T5 in DATASET/t5, saved as DATASET/valid.npz."""
    from bench.t5_options import per_user

    arrays = per_user(dataset / "t5", str(dataset), "valid")
    np.savez(dataset / ".valid.tmp.npz", **arrays)
    os.replace(dataset / ".valid.tmp.npz", dataset / "valid.npz")


def run_all(jobs: dict[str, str], parallel: int, work: Path) -> None:
    """Run every chain, ``parallel`` at a time; a failed one stops the bench naming its log."""
    from genrec.core.errors import GenrecError

    pending, running = list(jobs), []
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        while pending or running:
            while pending and len(running) < parallel:
                name = pending.pop(0)
                with open(work / f"{name}.log", "a") as log:
                    print(f"running {name}", flush=True)
                    running.append((name, subprocess.Popen(["bash", "-c", jobs[name]], stdout=log,
                                                           stderr=subprocess.STDOUT, env=env)))
            name, process = running.pop(0)
            if process.wait() != 0:
                raise GenrecError(f"{name} failed; see {work / f'{name}.log'}")
    finally:  # a failure or an interrupt stops the chains still running (what finished is kept)
        for _, process in running:
            process.terminate()
            process.wait()


def _run(args, command: str) -> int:
    from genrec.core.errors import GenrecError
    from genrec.core.hardware import hardware_line
    from genrec.core.io import read_json
    from genrec.eval.paired import paired_difference

    if args.decode:
        decode(Path(args.decode))
        return 0
    missing = [f"--{name}" for name in ("dataset", "work", "out", "variants") if not getattr(args, name)]
    if missing:
        raise GenrecError(f"missing {', '.join(missing)}")
    variants = dict(spec.partition("=")[::2] for spec in args.variants)
    if not all(variants) or len(variants) != len(args.variants):
        raise GenrecError("--variants takes distinct NAME=FLAGS")
    work, source = Path(args.work), Path(args.dataset)
    work.mkdir(parents=True, exist_ok=True)
    runs = {f"{name}-s{seed}": (name, seed) for seed in range(args.seeds) for name in variants}
    for run_name in runs:
        copy_dataset(source, work / run_name)
    run_all({run_name: chain(work / run_name, variants[name], seed, args.minutes, args.steps, args.t5_flags)
             for run_name, (name, seed) in runs.items()}, args.jobs, work)
    first = next(iter(variants))
    budget = f"{args.steps:,} steps" if args.steps else f"{args.minutes:g} minutes"
    report = {"command": command, "hardware": hardware_line(), "minutes": None if args.steps else args.minutes,
              "steps": args.steps, "t5_flags": args.t5_flags, "seeds": args.seeds,
              "variants": {}}
    rows = []
    for name, flags in variants.items():
        per_seed = []
        for seed in range(args.seeds):
            arrays = dict(np.load(work / f"{name}-s{seed}" / "valid.npz"))
            base = dict(np.load(work / f"{first}-s{seed}" / "valid.npz"))
            meta = read_json(work / f"{name}-s{seed}" / "t5" / "genrec.json")
            per_seed.append({"seed": seed, "steps": meta["steps"], "users": len(arrays["hit@10"]),
                             **{key: float(values.mean()) for key, values in arrays.items()},
                             **{f"{key}_diff": float((values - base[key]).mean()) for key, values in arrays.items()}})
        reference = report["variants"][first]["per_seed"] if name != first else per_seed
        summary = {}
        for key in ("hit@10", "ndcg@10"):
            values = [row[key] for row in per_seed]
            summary[key] = {"mean": float(np.mean(values)),
                            "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0}
            summary[f"{key}_diff"] = paired_difference({row["seed"]: row[key] for row in reference},
                                                       {row["seed"]: row[key] for row in per_seed}).to_dict()
        report["variants"][name] = {"flags": flags, "per_seed": per_seed, "summary": summary}
        paired = "" if name == first else " / ".join(
            f"{summary[key]['mean']:+.4f} [{summary[key]['low']:+.4f}, {summary[key]['high']:+.4f}]"
            for key in ("hit@10_diff", "ndcg@10_diff"))
        rows.append([name, f"`{flags}`", ", ".join(f"{row['steps']:,}" for row in per_seed),
                     f"{summary['hit@10']['mean']:.4f} ± {summary['hit@10']['std']:.4f} / "
                     f"{summary['ndcg@10']['mean']:.4f} ± {summary['ndcg@10']['std']:.4f}", paired])
    markdown = report_page(
        f"Tokenizer inputs, the T5 alone at {budget}, {args.seeds} seed(s): validation", command,
        f"{hardware_line()}; {args.jobs} chains at a time, one torch thread each.",
        "Every validation user, full catalogue, beam 30, the user's own history left out, the T5 alone; "
        f"mean ± std over seeds, and the paired difference with `{first}` (same users and seed) with its "
        "95% t-interval over seeds. Test is not read.",
        ["variant", "tokenizer flags", "T5 steps per seed", "valid Recall@10 / NDCG@10",
         f"paired vs {first}: Recall@10 / NDCG@10"], rows)
    write_report(args.out, args.name, report, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.tokenizer_inputs", __doc__)
    parser.add_argument("--dataset", help="prepared dataset with its embeddings")
    parser.add_argument("--variants", nargs="+", default=[], metavar="NAME=FLAGS",
                        help="train-tokenizer flags per variant; the first is the one the others are compared with")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--minutes", type=float, default=10.0, help="the T5's training budget")
    parser.add_argument("--steps", type=int, default=None,
                        help="train each T5 this many steps instead of --minutes (a budget busy cores do not change)")
    parser.add_argument("--t5-flags", default=T5_FLAGS,
                        help=f"train-recommender flags on top of the cpu recipe (default {T5_FLAGS!r}: the recipe as "
                             "the first studies read it; '' = today's recipe)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", help="one folder per (variant, seed)")
    parser.add_argument("--out", help="report folder")
    parser.add_argument("--name", default="tokenizer-inputs")
    parser.add_argument("--decode", metavar="DIR", help=argparse.SUPPRESS)  # one chain's last step
    return run_script("bench.tokenizer_inputs", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
