"""``genrec prepare NAME``: build a processed dataset from raw public data or the built-in demo."""

from __future__ import annotations

from genrec.data_prep.presets import PRESETS


def _run(args) -> int:
    from genrec.pipeline import PrepareConfig, prepare

    result = prepare(PrepareConfig(
        args.name, out=args.out, raw_dir=args.raw_dir, min_count=args.min_count, allow_download=not args.no_download,
        interactions=args.interactions, items=args.items, user_column=args.user_column,
        item_column=args.item_column, time_column=args.time_column, item_id_column=args.item_id_column))
    stats = result.stats
    print(f"prepared {args.name} -> {result.path}: {stats['num_users']:,} users, {stats['num_items']:,} items, "
          f"{stats['num_interactions']:,} interactions ({stats['seconds']} s)")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("prepare", help="turn raw data into a processed dataset", description=__doc__)
    parser.add_argument("name", help=f"dataset preset: {', '.join(PRESETS)}")
    parser.add_argument("--raw-dir", help="folder with the raw files (default data/raw/NAME; downloaded there if missing)")
    parser.add_argument("--out", help="output directory (default data/NAME)")
    parser.add_argument("--min-count", type=int, help="k-core threshold for users and items (default: the preset's, 5)")
    parser.add_argument("--no-download", action="store_true", help="never download; fail if raw files are missing")
    custom = parser.add_argument_group("custom preset")
    custom.add_argument("--interactions", help="CSV/TSV/JSONL/parquet with user, item, timestamp columns")
    custom.add_argument("--items", help="CSV/TSV/JSONL/parquet with an id column and text columns")
    custom.add_argument("--user-column", default="user")
    custom.add_argument("--item-column", default="item")
    custom.add_argument("--time-column", default="timestamp")
    custom.add_argument("--item-id-column", default="id")
    parser.set_defaults(func=_run)
