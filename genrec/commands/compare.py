"""``genrec compare``: every tokenizer through the same recommender recipe (see genrec.compare)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from genrec.core.errors import GenrecError
from genrec.core.layout import resolve_dataset_dir
from genrec.commands.choices import TOKENIZER_METHODS as METHODS

CONFIG_KEYS = ("tokenizer", "method_options", "train", "model", "evaluate")


def _run(args: argparse.Namespace) -> int:
    from genrec.compare import Study, build_variants, run_study
    from genrec.core.config import load_config_file
    from genrec.core.hardware import hardware_line

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise GenrecError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}")
    if args.seeds < 1:
        raise GenrecError("--seeds must be at least 1")
    try:
        lambdas = [float(x) for x in args.lambdas.split(",") if x.strip()] if args.lambdas else []
    except ValueError:
        raise GenrecError(f"--lambdas must be comma-separated numbers, got {args.lambdas!r}") from None
    dataset = resolve_dataset_dir(args.dataset)
    # A config file holds the shared recipe as config fields, e.g.
    # {"tokenizer": {"codebook_size": 256}, "method_options": {"r3vae": {"epochs": 60}},
    #  "train": {"max_steps": 3000}, "model": {"d_model": 128}, "evaluate": {"beams": 30}}
    config = load_config_file(args.config)
    unknown_keys = sorted(set(config) - set(CONFIG_KEYS))
    if unknown_keys:
        raise GenrecError(f"{args.config}: unknown key(s) {', '.join(unknown_keys)}; valid: {', '.join(CONFIG_KEYS)}")
    for key in CONFIG_KEYS:
        if not isinstance(config.get(key, {}), dict):
            raise GenrecError(f"{args.config}: {key} must be an object of option names and values")
    method_options = config.get("method_options", {})
    if set(method_options) - set(METHODS):
        raise GenrecError(f"{args.config}: method_options must map method names ({', '.join(METHODS)}) to options")
    study = Study(
        dataset=dataset,
        out=Path(args.out) if args.out else dataset / "compare",
        variants=build_variants(methods, args.ablations, lambdas),
        seeds=list(range(args.seeds)),
        tokenizer=config.get("tokenizer", {}),
        method_options=method_options,
        train=config.get("train", {}),
        model=config.get("model", {}),
        evaluate=config.get("evaluate", {}),
    )
    command_line = "genrec " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["compare"] else "genrec compare"
    summary = run_study(study, command_line, hardware_line())
    print((study.out / "compare.md").read_text())
    print(f"wrote {study.out}/compare.md, compare.json and sid_metrics_vs_recall.png ({summary['num_runs']} runs)")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="train every tokenizer + the same recommender, table of metrics and Spearman correlations",
        description=__doc__,
    )
    parser.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated tokenizer methods")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per method (0 .. N-1)")
    parser.add_argument("--ablations", action="store_true", help="add the paper's Table 8 R3-VAE ablations")
    parser.add_argument("--lambdas", default="", help="comma-separated R3-VAE lambda values (Table 9), e.g. 0.001,0.1")
    parser.add_argument("--config", help="JSON file with tokenizer / method_options / train / model / evaluate options")
    parser.add_argument("--out", help="output directory (default: DATASET/compare)")
    parser.set_defaults(func=_run, interrupted="interrupted; rerun the same command to continue (runs with a "
                                               "result.json are skipped; a recommender resumes from its checkpoint)")
