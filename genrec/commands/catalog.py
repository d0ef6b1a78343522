"""``genrec add-items``: new catalogue items get SIDs and join a trained recommender, no retraining."""

from __future__ import annotations

import sys


def _run(args) -> int:
    from genrec.pipeline import AddItemsConfig, add_items

    result = add_items(AddItemsConfig(args.items, dataset=args.dataset, model=args.model, id_column=args.id_column,
                                      progress=sys.stderr.isatty()))
    if result.skipped:
        print(f"{len(result.skipped)} item(s) already in the catalogue, skipped (e.g. {result.skipped[0]})")
    if result.item_ids:
        print(f"added {len(result.item_ids)} item(s) as ids {result.item_ids[0]}..{result.item_ids[-1]}; "
              f"{result.moved} took the nearest free last-level code (their own SID bucket was full); "
              f"{', '.join(map(str, result.models))} now recommend(s) them")
    else:
        print("no new items")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("add-items", help="give new items SIDs and add them to a trained recommender",
                                   description=__doc__)
    parser.add_argument("--items", required=True,
                        help="CSV/TSV/JSONL/parquet: an id column, and a text column or the preset's fields (title, ...)")
    parser.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    parser.add_argument("--model", action="append",
                        help="model directory to grow (default DATASET/recommender; repeat for several); the SASRec "
                             "each fuses and DATASET/sasrec are grown too")
    parser.add_argument("--id-column", default="id", help="column with the items' raw ids (default id)")
    parser.set_defaults(func=_run, interrupted="interrupted; rerun the same command to finish (items already "
                                               "added are skipped)")
