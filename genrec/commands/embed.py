"""``genrec embed``: encode every item's text (Sentence-T5 by default, cached)."""

from __future__ import annotations


def _run(args) -> int:
    import sys

    from genrec.pipeline import EmbedConfig, embed

    result = embed(EmbedConfig(args.dataset, encoder=args.encoder, batch_size=args.batch_size, device=args.device,
                               progress=not args.no_progress and sys.stderr.isatty()))
    print(f"embeddings: {result.vectors.shape[0]:,} items x {result.vectors.shape[1]} dims, "
          f"encoder {result.encoder} -> {result.path}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("embed", help="encode item texts into embeddings", description=__doc__)
    parser.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    parser.add_argument("--encoder", help="sentence-transformers model name or local path "
                                          "(default sentence-transformers/sentence-t5-base, bundled MiniLM if offline)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", help="cpu, cuda, ... (default: automatic)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (none off a terminal either)")
    parser.set_defaults(func=_run)
