"""``genrec bench``: decoding, training and tokenizer speed against plain baselines (genrec.bench)."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from genrec.core.errors import GenrecError

SECTIONS = ("decode", "train", "tokenizer")


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise GenrecError(f"{flag} must be comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise GenrecError(f"{flag} values must be positive, got {text!r}")
    return values


def _run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from genrec.bench import TOKENIZER_METHODS, BenchSettings, render_markdown, run_bench
    from genrec.core.config import load_config_file
    from genrec.core.io import atomic_write_json, atomic_write_text
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
    for flag in ("beams", "decode_users", "plain_users", "train_steps", "plain_train_steps", "batch_size"):
        if getattr(args, flag) < 1:
            raise GenrecError(f"--{flag.replace('_', '-')} must be at least 1")
    settings = BenchSettings(
        dataset=str(dataset), tokenizer=str(tokenizer), model=args.model, model_config=model_config,
        beams=args.beams, decode_users=args.decode_users, plain_users=min(args.plain_users, args.decode_users),
        batch_size=args.batch_size, train_steps=args.train_steps, plain_train_steps=args.plain_train_steps,
        tokenizer_methods=methods, synthetic_items=_ints(args.synthetic_items, "--synthetic-items"),
        synthetic_codebook_sizes=_ints(args.synthetic_codebook_sizes, "--synthetic-codebook-sizes"),
    )
    command = "genrec " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["bench"] else "genrec bench"
    report = run_bench(settings, sections)
    report["command"] = command
    out = Path(args.out) if args.out else dataset / "bench"
    name = args.name or dataset.name
    atomic_write_json(out / f"{name}.json", report)
    markdown = render_markdown(report, command)
    atomic_write_text(out / f"{name}.md", markdown)
    print(markdown)
    print(f"wrote {out / name}.json and {out / name}.md")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="speed of decoding, training and tokenizers vs plain baselines",
                                   description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    parser.add_argument("--tokenizer", help="tokenizer artifact (default DATASET/tokenizer)")
    parser.add_argument("--model", help="trained recommender to decode with (default: a fresh model, --model-config)")
    parser.add_argument("--model-config", help="JSON of recommender model options (default: TIGER's size)")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated: decode,train,tokenizer")
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--decode-users", type=int, default=2048, help="users decoded by the fast path")
    parser.add_argument("--plain-users", type=int, default=128, help="users decoded by the (slow) generate paths")
    parser.add_argument("--batch-size", type=int, default=256, help="training batch size")
    parser.add_argument("--train-steps", type=int, default=30, help="timed steps with bucketing (widths vary)")
    parser.add_argument("--plain-train-steps", type=int, default=8, help="timed steps of the plain padded loop")
    parser.add_argument("--tokenizer-methods", default="r3vae,rkmeans")
    parser.add_argument("--synthetic-items", default="", help="also time tokenizers on synthetic catalogues, e.g. 1000000")
    parser.add_argument("--synthetic-codebook-sizes", default="256", help="codebook sizes for the synthetic cases")
    parser.add_argument("--out", help="output folder (default DATASET/bench)")
    parser.add_argument("--name", help="file name stem (default: the dataset's name)")
    parser.set_defaults(func=_run)
