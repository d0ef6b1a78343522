"""``genrec prepare NAME``: build a processed dataset from raw public data or the built-in demo."""

from __future__ import annotations

from pathlib import Path

from genrec.data_prep.presets import PRESETS
from genrec.core.layout import default_dataset_dir


def _run(args) -> int:
    from genrec.data_prep.prepare import prepare_dataset

    from genrec.core.errors import GenrecError

    if args.name not in PRESETS:
        raise GenrecError(f"unknown dataset {args.name!r}; choose one of: {', '.join(PRESETS)}")
    out = Path(args.out) if args.out else default_dataset_dir(args.name)
    raw_dir = Path(args.raw_dir) if args.raw_dir else Path("data") / "raw" / args.name
    if args.raw_dir and not raw_dir.is_dir():
        raise GenrecError(f"--raw-dir {raw_dir}: no such directory")
    if args.min_count is not None and args.min_count < 1:
        raise GenrecError(f"--min-count must be at least 1, got {args.min_count}")
    stats = prepare_dataset(
        args.name, out, raw_dir, min_count=args.min_count, allow_download=not args.no_download,
        interactions=Path(args.interactions) if args.interactions else None,
        items=Path(args.items) if args.items else None,
        user_col=args.user_column, item_col=args.item_column, time_col=args.time_column, id_col=args.item_id_column,
    )
    print(f"prepared {args.name} -> {out}: {stats['num_users']:,} users, {stats['num_items']:,} items, "
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
