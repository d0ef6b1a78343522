"""``genrec prepare NAME``: build a processed dataset from raw public data or the built-in demo."""

from __future__ import annotations

from genrec.core.errors import GenrecError
from genrec.data_prep.presets import PRESETS


def _count(value: str | None, flag: str) -> int | None:
    """A synthetic size flag as an int (one-line error otherwise)."""
    if value is None:
        return None
    try:
        return int(value.replace("_", ""))
    except ValueError:
        raise GenrecError(f"{flag} {value!r}: the synthetic preset takes a number of {flag[2:]}") from None


def _run(args) -> int:
    from genrec.pipeline import PrepareConfig, prepare

    sizes = {}
    if args.name == "synthetic":  # --items / --users are counts here, not files
        sizes = {"num_items": _count(args.items, "--items") or 10_000, "num_users": _count(args.users, "--users"),
                 "seed": args.seed}
    elif args.users is not None:
        raise GenrecError("--users is for the synthetic preset only")
    result = prepare(PrepareConfig(
        args.name, out=args.out, raw_dir=args.raw_dir, min_count=args.min_count, allow_download=not args.no_download,
        interactions=args.interactions, items=None if sizes else args.items, user_column=args.user_column,
        item_column=args.item_column, time_column=args.time_column, time_format=args.time_format, item_id_column=args.item_id_column, **sizes))
    stats = result.stats
    print(f"prepared {args.name} -> {result.path}: {stats['num_users']:,} users, {stats['num_items']:,} items, "
          f"{stats['num_interactions']:,} interactions ({stats['seconds']} s)")
    for note in stats.get("notes", []):  # what the input checks dropped, kept or guessed (stats.json too)
        print(f"  {note}")
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
    custom.add_argument("--items", help="CSV/TSV/JSONL/parquet with an id column and text columns "
                        "(synthetic preset: the number of items)")
    custom.add_argument("--user-column", default="user")
    custom.add_argument("--item-column", default="item")
    custom.add_argument("--time-column", default="timestamp")
    custom.add_argument("--time-format", metavar="FORMAT",
                        help="strptime format of the time column, e.g. '%%d/%%m/%%Y %%H:%%M' (default: numbers or "
                             "ISO-8601 dates such as 2024-03-01T12:00:00Z)")
    custom.add_argument("--item-id-column", default="id")
    synthetic = parser.add_argument_group("synthetic preset (a generated catalogue of any size, with embeddings)")
    synthetic.add_argument("--users", help="number of users (default 2 x --items); --items N is the number of items (default 10000)")
    synthetic.add_argument("--seed", type=int, default=0, help="same seed and sizes -> the same dataset")
    parser.set_defaults(func=_run)
