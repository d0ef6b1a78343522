"""Tiny prepared datasets and tokenizer artifacts written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genrec.tokenizer.semantic_ids import add_collision_suffix


def write_dataset(root: Path, num_users: int = 40, num_items: int = 30, seed: int = 0) -> Path:
    """Users walk item chains i -> i+1 (mod M) with noise, so there is something to learn."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(num_users):
        start, length = int(rng.integers(1, num_items + 1)), int(rng.integers(4, 9))
        seq = [(start - 1 + step) % num_items + 1 for step in range(length)]
        sequences.append(seq)
    root.mkdir(parents=True, exist_ok=True)
    ids = list(range(1, num_items + 1))
    pq.write_table(pa.table({"item_id": ids, "raw_id": [f"I{i}" for i in ids], "title": [f"item {i}" for i in ids],
                             "text": [f"Title: item {i}" for i in ids]}), root / "items.parquet")
    users = list(range(1, num_users + 1))
    pq.write_table(pa.table({"user_id": users, "raw_id": [f"U{u}" for u in users]}), root / "users.parquet")
    pq.write_table(pa.table({"user_id": users, "items": sequences}), root / "sequences.parquet")
    stats = {"num_users": num_users, "num_items": num_items, "num_interactions": sum(map(len, sequences))}
    (root / "stats.json").write_text(json.dumps(stats))
    return root


def write_tokenizer(root: Path, num_items: int = 30, sizes=(4, 4, 3), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sids = add_collision_suffix(rng.integers(0, sizes, size=(num_items, len(sizes))))
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "semantic_ids.npy", sids)
    config = {"method": "test", "num_levels": len(sizes), "codebook_sizes": list(sizes),
              "suffix_size": int(sids[:, -1].max()) + 1}
    (root / "config.json").write_text(json.dumps(config))
    return root
