"""Item fields the business rules read (category, brand, price, a shop's own columns): one table beside
items.parquet, ``item_fields.parquet`` (``item_id``, then one typed column per field).

A column is numeric (float64) when every value it has is a number (or a string that reads as one),
boolean when every value is true / false, text otherwise; a missing value is null. The rules
(``genrec.recommender.rules``) compare numbers with ``<`` / ``>`` and everything with equality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genrec.core.layout import FIELDS_FILE

RESERVED = ("item_id",)
BOOLEANS = {"true": True, "false": False, "yes": True, "no": False}


def amazon_fields(meta: dict) -> dict:
    """The Amazon metadata's category (the first path's level below the store, e.g. "Skin Care"),
    brand and price."""
    paths = meta.get("categories") or [[]]
    path = paths[0] if isinstance(paths[0], list) else paths
    price = meta.get("price")
    return {"category": path[1] if len(path) > 1 else None, "brand": meta.get("brand") or None,
            "price": float(price) if isinstance(price, (int, float)) else None}


def movie_fields(meta: dict) -> dict:
    """A movie's first genre."""
    genres = meta.get("genres") or []
    return {"genre": genres[0] if genres else None}


def no_fields(meta: dict) -> dict:
    return {}


def custom_fields(meta: dict, id_column: str) -> dict:
    """Every column of the shop's items file but the id, as the file gives it."""
    return {str(name): value for name, value in meta.items() if name != id_column and str(name) not in RESERVED}


def _as_number(value) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def _column(values: list):
    """One field's values (None = missing) as a typed list: floats, booleans or strings."""
    present = [v for v in values if v is not None and v != ""]
    if present and all(isinstance(v, bool) or str(v).strip().lower() in BOOLEANS for v in present):
        return [None if v is None or v == "" else (v if isinstance(v, bool) else BOOLEANS[str(v).strip().lower()])
                for v in values]
    if present and all(_as_number(v) is not None for v in present):
        return [None if v is None or v == "" else _as_number(v) for v in values]
    return [None if v is None or v == "" else str(v) for v in values]


def write_item_fields(path: Path, rows: list[dict], first_item: int = 1) -> None:
    """``rows[i]``: item ``first_item + i``'s fields; written to ``path`` (a parquet file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = list(dict.fromkeys(name for row in rows for name in row))
    table = {"item_id": list(range(first_item, first_item + len(rows)))}
    table.update({name: _column([row.get(name) for row in rows]) for name in names})
    pq.write_table(pa.table(table), path)


def read_item_fields(dataset_dir: str | Path, num_items: int) -> dict[str, np.ndarray]:
    """Field -> values ``[num_items + 1]`` (index = item id; index 0 and missing values None / nan);
    {} for a dataset without the file (prepared before fields were kept)."""
    import pyarrow.parquet as pq

    path = Path(dataset_dir) / FIELDS_FILE
    if not path.is_file():
        return {}
    table = pq.read_table(path)
    ids = np.asarray(table.column("item_id").to_pylist(), dtype=np.int64)
    fields = {}
    for name in table.column_names:
        if name == "item_id":
            continue
        values = table.column(name).to_pylist()
        column = np.full(num_items + 1, None, dtype=object)
        keep = ids <= num_items
        column[ids[keep]] = np.asarray(values, dtype=object)[keep]
        fields[name] = column
    return fields
