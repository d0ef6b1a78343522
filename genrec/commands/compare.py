"""``genrec compare``: the tokenizer study from one config file (genrec.compare): every tokenizer
method on each of its inputs, R3-VAE's ablations and lambda values, N seeds each, through the same
recommender recipe and budget; test Recall/NDCG@5/10 of the model alone and fused (mean ± std),
paired differences against R3-VAE with a 95% interval, SID metrics and their Spearman with
Recall@10, validation curves. Resumable: a rerun skips finished runs and continues a killed one."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from genrec.compare.config import fields_help

EPILOG = ("config file (JSON object; every field optional):\n" + fields_help() + "\n\n"
          "output (OUT): runs/VARIANT-seedK/ (settings.json, run.log, tokenizer/, recommender/, test.json, "
          "result.json), compare.json, compare.md and plots. VARIANT is LABEL@INPUT, e.g. r3vae@text+collaborative.")


def _run(args: argparse.Namespace) -> int:
    from genrec.compare.config import load_study_config
    from genrec.compare.study import run_study
    from genrec.core.hardware import hardware_line
    from genrec.core.layout import resolve_dataset_dir

    config = load_study_config(args.config, dataset=args.dataset, out=args.out, seeds=args.seeds, jobs=args.jobs)
    dataset = resolve_dataset_dir(config.dataset)
    out = Path(config.out) if config.out else dataset / "compare"
    command_line = "genrec " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else "genrec compare"
    summary = run_study(config, dataset, out, command_line, hardware_line(), report_only=args.report_only,
                        archive_to=Path(args.archive) if args.archive else None)
    print((out / "compare.md").read_text())
    print(f"wrote {out}/compare.md, compare.json and plots ({summary['num_runs']} runs)")
    if args.archive:
        print(f"archived the report and the {summary['num_runs']} finished runs' records (no models) to {args.archive}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="the tokenizer study: every method + the same recommender over seeds, paired differences, Spearman",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="the study config (JSON; fields below); default: every default")
    parser.add_argument("--dataset", help="prepared dataset directory or name (overrides the config's)")
    parser.add_argument("--out", help="study folder (overrides the config's; default DATASET/compare)")
    parser.add_argument("--seeds", type=int, help="seeds per variant, 0..N-1 (overrides the config's)")
    parser.add_argument("--jobs", type=int, help="runs at a time, one process and one thread each (overrides the config's)")
    parser.add_argument("--report-only", action="store_true",
                        help="start no run: write the report of the runs finished so far (e.g. while the study runs)")
    parser.add_argument("--archive", metavar="DIR",
                        help="also copy the report and each finished run's records (settings, result, tokenizer "
                             "metrics and history; no model) to DIR: a folder that --report-only reports on, and "
                             "that resumes the study when its runs/ is copied into OUT")
    parser.set_defaults(func=_run, interrupted="interrupted; rerun the same command to continue (runs with a "
                                               "result.json are skipped; a recommender resumes from its checkpoint)")
