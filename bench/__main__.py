"""``python -m bench``: decoding, training and tokenizer speed against plain baselines (bench.suite).

Run from the repository root, e.g.

    python -m bench --dataset data/amazon-beauty --out bench/results/speed-beauty-cpu --name beauty-cpu --synthetic-items 1000000
    python -m bench --dataset data/amazon-beauty --sections decode --out bench/results/speed-beauty-cpu --name beauty-cpu-decode

Without --out the results go to DATASET/bench; ``--out bench/results`` updates the committed ones.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from genrec.core.errors import GenrecError


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise GenrecError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise GenrecError(f"{flag} values must be positive, got {text!r}")
    return values


def settings_from(args: argparse.Namespace):
    """(BenchSettings, sections, dataset dir) from the flags; every mistake is a GenrecError."""
    from bench.suite import SECTIONS, TOKENIZER_METHODS, BenchSettings
    from genrec.core.config import load_config_file
    from genrec.core.layout import TOKENIZER_DIR, resolve_dataset_dir
    from genrec.recommender.model import RecommenderConfig

    sections = tuple(s.strip() for s in args.sections.split(",") if s.strip())
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown or not sections:
        raise GenrecError(f"--sections: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(SECTIONS)}")
    dataset = resolve_dataset_dir(args.dataset)
    tokenizer = Path(args.tokenizer) if args.tokenizer else dataset / TOKENIZER_DIR
    if ("decode" in sections or "train" in sections) and not (tokenizer / "semantic_ids.npy").is_file():
        raise GenrecError(f"{tokenizer}: no tokenizer artifact; run `genrec train-tokenizer` first or pass --tokenizer")
    if args.model and not Path(args.model, "genrec.json").is_file():
        raise GenrecError(f"--model {args.model}: not a trained recommender (no genrec.json)")
    model_config = load_config_file(args.model_config)
    model_config = model_config.get("model", model_config)
    names = {f.name for f in fields(RecommenderConfig)}
    if set(model_config) - names:
        raise GenrecError(f"{args.model_config}: unknown model option(s) {', '.join(sorted(set(model_config) - names))}")
    methods = tuple(m.strip() for m in args.tokenizer_methods.split(",") if m.strip())
    if set(methods) - set(TOKENIZER_METHODS):
        raise GenrecError(f"--tokenizer-methods: choose from {', '.join(TOKENIZER_METHODS)}")
    for flag in COUNTS:
        if getattr(args, flag[2:].replace("-", "_")) < 1:
            raise GenrecError(f"{flag} must be at least 1")
    settings = BenchSettings(
        dataset=str(dataset), tokenizer=str(tokenizer), model=args.model, model_config=model_config,
        beams=args.beams, decode_users=args.decode_users, plain_users=min(args.plain_users, args.decode_users),
        batch_size=args.batch_size, train_steps=args.train_steps, plain_train_steps=args.plain_train_steps,
        tokenizer_methods=methods, synthetic_items=_ints(args.synthetic_items, "--synthetic-items"),
        synthetic_codebook_sizes=_ints(args.synthetic_codebook_sizes, "--synthetic-codebook-sizes"),
    )
    return settings, sections, dataset


# flag -> (default, help) of the positive integer options
COUNTS = {
    "--beams": (20, "beam width (items per user)"),
    "--decode-users": (2048, "users decoded by the fast path"),
    "--plain-users": (128, "users decoded by the (slow) generate paths"),
    "--batch-size": (256, "training batch size"),
    "--train-steps": (30, "timed steps with bucketing (widths vary)"),
    "--plain-train-steps": (8, "timed steps of the plain padded loop"),
}


def build_parser():
    from bench.common import script_parser

    parser = script_parser("bench", __doc__)
    parser.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    parser.add_argument("--tokenizer", help="tokenizer artifact (default DATASET/tokenizer)")
    parser.add_argument("--model", help="trained recommender to decode with (default: a fresh model, --model-config)")
    parser.add_argument("--model-config", help="JSON of recommender model options (default: TIGER's size)")
    parser.add_argument("--sections", default="decode,train,tokenizer", help="comma-separated: decode,train,tokenizer")
    for flag, (default, text) in COUNTS.items():
        parser.add_argument(flag, type=int, default=default, help=f"{text} (default {default})")
    parser.add_argument("--tokenizer-methods", default="r3vae,rkmeans")
    parser.add_argument("--synthetic-items", default="", help="also time tokenizers on synthetic catalogues, e.g. 1000000")
    parser.add_argument("--synthetic-codebook-sizes", default="256", help="codebook sizes for the synthetic cases")
    parser.add_argument("--out", help="output folder (default DATASET/bench)")
    parser.add_argument("--name", help="file name stem (default: the dataset's name)")
    return parser


def _run(args: argparse.Namespace, command: str) -> int:
    from bench.common import write_report
    from bench.suite import render_markdown, run_bench

    settings, sections, dataset = settings_from(args)
    report = run_bench(settings, sections)
    report["command"] = command
    write_report(Path(args.out) if args.out else dataset / "bench", args.name or dataset.name, report,
                 render_markdown(report, command))
    return 0


def main(argv: list[str] | None = None) -> int:
    from bench.common import run_script

    return run_script("bench", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
