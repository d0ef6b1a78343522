"""``genrec prepare``: raw public data -> a processed dataset directory (layout in genrec.core.layout).

Steps: read the preset's raw files (data_prep.presets / readers) -> per-user chronological sequences,
optionally keeping a user's first interaction with each item (data_prep.interactions.build_sequences)
-> k-core on users and items to a fixed point -> number users 1..N and items 1..M (order documented in
data_prep.interactions) -> compose item text (data_prep.item_text) -> write parquet + stats.json into
a temporary directory that is moved into place only when everything succeeded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import genrec
from genrec.data_prep.interactions import Sequences, build_sequences, check_leave_one_out, k_core
from genrec.data_prep.item_fields import write_item_fields
from genrec.data_prep.presets import load_raw
from genrec.core.io import atomic_directory, atomic_write_json, sha256_file
from genrec.core.layout import FIELDS_FILE, ITEMS_FILE, SEQUENCES_FILE, STATS_FILE, USERS_FILE, remember_current_dataset


def prepare_dataset(name: str, out: Path, raw_dir: Path, min_count: int | None = None,
                    allow_download: bool = True, synthetic=None, **custom) -> dict:
    """Read, filter, number and write one dataset; returns its stats. Writes atomically.
    ``synthetic``: the ``SyntheticConfig`` of the synthetic preset (generated, nothing read)."""
    if name == "synthetic":
        from genrec.data_prep.synthetic import SyntheticConfig, write_synthetic

        stats = write_synthetic(out, synthetic or SyntheticConfig())
        remember_current_dataset(out)
        return stats
    started = time.perf_counter()
    raw = load_raw(name, raw_dir, allow_download, **custom)
    k = raw.min_count if min_count is None else min_count
    unfiltered = build_sequences(raw.events, dedup=raw.dedup)
    data = k_core(unfiltered, user_k=k, item_k=k)
    check_leave_one_out(data, name, unfiltered)
    item_ids = data.item_ids()
    item_number = {raw_id: index + 1 for index, raw_id in enumerate(item_ids)}
    titles, texts, fields, missing_meta = [], [], [], 0
    for raw_id in item_ids:
        meta = raw.meta.get(raw_id)
        if meta is None:
            missing_meta += 1
            meta = {}
        title, text = raw.text_of(meta)
        fields.append(raw.fields_of(meta))
        titles.append(title)
        texts.append(text or f"Item {raw_id}")  # an item with no metadata still gets a distinct text
    stats = {
        "name": name,
        "num_users": len(data.user_ids),
        "num_items": len(item_ids),
        "num_interactions": data.num_interactions,
        "items_without_metadata": missing_meta,
        "items_without_title": sum(1 for title in titles if not title),
        **raw.counts,
        "notes": [*raw.notes, *_k_core_note(unfiltered, data, k)],
        "parameters": {"min_count_user": k, "min_count_item": k, "dedup_user_item": raw.dedup,
                       "split": "leave-one-out (last = test, second-to-last = valid)"},
        "sources": {str(path): sha256_file(path) for path in raw.sources},
        "genrec_version": genrec.__version__,
    }
    with atomic_directory(out) as tmp:
        pq.write_table(pa.table({"item_id": list(range(1, len(item_ids) + 1)), "raw_id": item_ids,
                                 "title": titles, "text": texts}), tmp / ITEMS_FILE)
        write_item_fields(tmp / FIELDS_FILE, fields)
        pq.write_table(pa.table({"user_id": list(range(1, len(data.user_ids) + 1)), "raw_id": data.user_ids}),
                       tmp / USERS_FILE)
        pq.write_table(pa.table({"user_id": list(range(1, len(data.user_ids) + 1)),
                                 "items": [[item_number[i] for i in seq] for seq in data.sequences]}),
                       tmp / SEQUENCES_FILE)
        stats["seconds"] = round(time.perf_counter() - started, 2)
        atomic_write_json(tmp / STATS_FILE, stats)
    remember_current_dataset(out)
    return stats


def _k_core_note(before: Sequences, after: Sequences, k: int) -> list[str]:
    """One line saying what the k-core dropped, when it dropped anything."""
    users, items = len(before.user_ids), len(before.item_ids())
    if (len(after.user_ids), len(after.item_ids()), after.num_interactions) == (users, items, before.num_interactions):
        return []
    return [(f"--min-count {k} dropped {users - len(after.user_ids)} of {users} users, "
             f"{items - len(after.item_ids())} of {items} items, "
             f"{before.num_interactions - after.num_interactions} of {before.num_interactions} interactions")]


def grown_items(dataset_dir: Path, items: list[tuple[str, str, str]]) -> tuple[bytes, dict]:
    """The items.parquet bytes and stats.json of the dataset with catalogue items (raw id, title,
    text) appended after the existing ones: ids M+1..M+k, nothing renumbered, no interactions.
    Nothing is written (add-items stages and commits them, genrec.catalogue)."""
    import io

    from genrec.core.io import read_json

    dataset_dir = Path(dataset_dir)
    table = pq.read_table(dataset_dir / ITEMS_FILE)
    if items:
        first = table.num_rows + 1
        columns = {"item_id": list(range(first, first + len(items))), "raw_id": [r for r, _, _ in items],
                   "title": [t for _, t, _ in items], "text": [x for _, _, x in items]}
        added = pa.table({name: pa.array(values, type=table.schema.field(name).type) for name, values in columns.items()})
        table = pa.concat_tables([table, added], promote_options="default")
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    stats = read_json(dataset_dir / STATS_FILE)
    # From the stats' own count, so a stats.json left behind its items.parquet (a run killed between
    # the two) is brought up to date by the next.
    stats["items_added"] = int(stats.get("items_added", 0)) + (table.num_rows - int(stats["num_items"]))
    stats["num_items"] = table.num_rows
    return buffer.getvalue(), stats


def append_items(dataset_dir: Path, items: list[tuple[str, str, str]]) -> list[int]:
    """``grown_items`` written in place: items.parquet, then stats.json, each atomically."""
    from genrec.core.io import atomic_write_bytes

    dataset_dir = Path(dataset_dir)
    first = pq.read_metadata(dataset_dir / ITEMS_FILE).num_rows + 1
    data, stats = grown_items(dataset_dir, items)
    atomic_write_bytes(dataset_dir / ITEMS_FILE, data)
    atomic_write_json(dataset_dir / STATS_FILE, stats)
    return list(range(first, first + len(items)))
