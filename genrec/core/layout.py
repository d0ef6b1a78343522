"""Where each stage reads and writes: the on-disk contract between stages.

Processed dataset directory (``genrec prepare``; default ``data/NAME``):
    items.parquet      item_id (int, 1..M), raw_id (str), text (str, what gets embedded), title (str),
                       plus whatever source fields were kept (brand, categories, price, ...).
    users.parquet      user_id (int, 1..N), raw_id (str).
    sequences.parquet  user_id (int), items (list[int]): the user's whole chronological sequence,
                       oldest first. Leave-one-out: items[-1] is the test target, items[-2] the
                       validation target, items[:-2] the training sequence.
    stats.json         num_users, num_items, num_interactions, source checksums, parameters.
    embeddings/<encoder-slug>/embeddings.npy  float32 [M, d]; row i is item_id i + 1.
    embeddings/<encoder-slug>/meta.json       encoder actually used, dim, text checksum.
    tokenizer/         default output of ``genrec train-tokenizer`` (see tokenizer.artifact).
    recommender/       default output of ``genrec train-recommender``.

Users and items are numbered from 1 so that 0 is free for padding everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

ITEMS_FILE = "items.parquet"
FIELDS_FILE = "item_fields.parquet"  # the items' fields the business rules read (data_prep.item_fields)
USERS_FILE = "users.parquet"
SEQUENCES_FILE = "sequences.parquet"
STATS_FILE = "stats.json"
EMBEDDINGS_DIR = "embeddings"
TOKENIZER_DIR = "tokenizer"
RECOMMENDER_DIR = "recommender"
CURRENT_DATASET_FILE = ".current"
CATALOGUE_LOCK_FILE = ".catalogue.lock"  # add-items holds it (fcntl.flock) while it changes the catalogue

DATA_ROOT = Path(os.environ.get("GENREC_DATA", "data"))


def default_dataset_dir(name: str) -> Path:
    return DATA_ROOT / name


def remember_current_dataset(dataset_dir: Path) -> None:
    """Record the last prepared dataset so later commands can default to it."""
    from genrec.core.io import atomic_write_text

    atomic_write_text(DATA_ROOT / CURRENT_DATASET_FILE, str(Path(dataset_dir).resolve()) + "\n")


def resolve_dataset_dir(dataset: str | None) -> Path:
    """``--dataset`` as given (a directory or a name under data/), else the last one prepared."""
    from genrec.core.errors import GenrecError

    if dataset is None:
        marker = DATA_ROOT / CURRENT_DATASET_FILE
        if not marker.is_file():
            raise GenrecError(f"no --dataset given and no dataset prepared in {DATA_ROOT.resolve()} (looked for "
                              f"{marker}; the data folder is ./data or $GENREC_DATA): pass --dataset DIR, or run "
                              "`genrec prepare NAME` first")
        path = Path(marker.read_text().strip())
    else:
        path = Path(dataset)
        if not path.exists() and (DATA_ROOT / dataset).exists():
            path = DATA_ROOT / dataset
    if not (path / STATS_FILE).is_file():
        raise GenrecError(f"{path}: not a prepared dataset (no {STATS_FILE}); run `genrec prepare NAME` first")
    return path


def dataset_root(folder: str | Path) -> Path | None:
    """The prepared dataset folder (one holding stats.json) that ``folder`` is or lies in, if any."""
    folder = Path(folder).resolve()
    return next((c for c in (folder, *folder.parents) if (c / STATS_FILE).is_file()), None)


def portable_path(target: str | Path, folder: str | Path) -> str:
    """``target`` as a file in ``folder`` records it: relative to ``folder`` when both lie in one
    dataset folder (so a copy of that dataset folder reads and writes only its own files), else
    absolute."""
    target, folder = Path(target).resolve(), Path(folder).resolve()
    root = dataset_root(folder)
    if root is not None and (target == root or root in target.parents):
        return os.path.relpath(target, folder)
    return str(target)


def recorded_path(value: str | None, folder: str | Path) -> Path | None:
    """A path that a file in ``folder`` records (``portable_path``): relative ones are relative to
    ``folder``; absolute ones (all of them before genrec recorded relative paths) are read as they are."""
    if value in (None, ""):
        return None
    path = Path(value)
    return path if path.is_absolute() else Path(folder) / path


def portable_meta(meta: dict, folder: str | Path, keys: tuple[str, ...] = ("dataset", "tokenizer")) -> dict:
    """``meta`` with the paths under ``keys`` recorded as ``portable_path`` relative to ``folder``."""
    out = dict(meta)
    for key in keys:
        path = recorded_path(out.get(key), folder)
        if path is not None:
            out[key] = portable_path(path, folder)
    return out
