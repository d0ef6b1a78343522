"""Read a processed dataset directory (see genrec.core.layout) into memory.

This is the only reader later stages use, so the on-disk format can change in one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from genrec.core.errors import GenrecError
from genrec.core.io import read_json
from genrec.core.limits import MAX_ID_LENGTH
from genrec.core.layout import ITEMS_FILE, SEQUENCES_FILE, STATS_FILE, USERS_FILE


@dataclass
class ProcessedDataset:
    """A prepared dataset. Users are 1..N and items 1..M; list index = id - 1."""

    path: Path
    sequences: list[list[int]]  # sequences[u - 1]: user u's items, oldest first
    user_raw_ids: list[str]
    item_raw_ids: list[str]
    item_titles: list[str]
    item_texts: list[str]
    stats: dict = field(default_factory=dict)
    # raw id -> id lookups (marisa-tries), built on first use per field
    raw_id_indexes: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @property
    def num_items(self) -> int:
        return len(self.item_raw_ids)

    def history(self, user_id: int) -> list[int]:
        """User ``user_id``'s whole sequence, oldest first (what a recommendation conditions on)."""
        return self.sequences[user_id - 1]

    def item_raw_id(self, item_id: int) -> str:
        return self.item_raw_ids[item_id - 1]

    def item_title(self, item_id: int) -> str:
        return self.item_titles[item_id - 1]

    def item_text(self, item_id: int) -> str:
        return self.item_texts[item_id - 1]

    def user_raw_id(self, user_id: int) -> str:
        return self.user_raw_ids[user_id - 1]

    def train_sequence(self, user_id: int) -> list[int]:
        """Leave-one-out training part: everything but the last two items."""
        return self.sequences[user_id - 1][:-2]

    def train_sequences(self) -> list[list[int]]:
        """Every user's training part, users 1..N in order."""
        return [self.train_sequence(user) for user in range(1, self.num_users + 1)]

    def split(self, user_id: int, split: str) -> tuple[list[int], int]:
        """(history, target) for ``split`` in {"valid", "test"} under leave-one-out."""
        seq = self.sequences[user_id - 1]
        if split == "valid":
            return seq[:-2], seq[-2]
        if split == "test":
            return seq[:-1], seq[-1]
        raise GenrecError(f"unknown split {split!r}: use valid or test")

    def user_id_for(self, user: str | int) -> int:
        """The user ``user`` names under the id rule of ``lookup_id`` (docs/serving.md)."""
        return lookup_id(self, "user", user)

    def item_id_for(self, item: str | int) -> int:
        """The item ``item`` names under the id rule of ``lookup_id`` (docs/serving.md)."""
        return lookup_id(self, "item", item)

    def catalogue(self, num_items: int | None = None) -> dict:
        """The catalogue version of items 1..``num_items`` (default all): {"num_items", "fingerprint"}.
        Items are only ever appended, so a version is its item count, and the fingerprint (a hash of
        the raw ids in order) tells this dataset's version from another dataset's."""
        count = self.num_items if num_items is None else num_items
        return {"num_items": count, "fingerprint": catalogue_fingerprint(self.item_raw_ids[:count])}

    def first_items(self, num_items: int) -> "ProcessedDataset":
        """This dataset as catalogue version ``num_items``: items added after it are left out (a model
        that knows that version works on it and ignores newer items)."""
        if num_items >= self.num_items:
            return self
        return ProcessedDataset(self.path, self.sequences, self.user_raw_ids, self.item_raw_ids[:num_items],
                                self.item_titles[:num_items], self.item_texts[:num_items], self.stats)


def catalogue_fingerprint(raw_ids: list[str]) -> str:
    """sha256 of the raw item ids in id order."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(list(raw_ids), ensure_ascii=False).encode("utf-8")).hexdigest()


def known_catalogue(dataset: ProcessedDataset, recorded: dict | None, num_items: int, who) -> ProcessedDataset:
    """The catalogue version of ``dataset`` that a model (``who``) knowing ``num_items`` items, with
    ``recorded`` = its genrec.json "catalogue" (None for a model from before fingerprints), works on.
    A dataset that is not the model's (fewer items, or other ids first) is a one-line GenrecError."""
    if dataset.num_items < num_items:
        raise GenrecError(f"{dataset.path} has {dataset.num_items} items; {who} knows {num_items}: it is not the "
                          "dataset this model was trained on (pass that one with --dataset)")
    if recorded and recorded.get("fingerprint") != dataset.catalogue(num_items)["fingerprint"]:
        raise GenrecError(f"{dataset.path} is not the dataset {who} was trained on (its first {num_items} item ids "
                          "differ from the ones the model recorded); pass that one with --dataset")
    return dataset.first_items(num_items)


def lookup_id(dataset: ProcessedDataset, kind: str, value: str | int) -> int:
    """The 1-based user or item (``kind``) that ``value`` names; one rule for users and items, CLI and API.

    An int is the dataset number (1..N). A string is the raw id it equals exactly; when no raw id
    equals it, ASCII digits "17" or "#17" name dataset number 17 (so "#17" reaches number 17 even
    where a raw id "17" exists). Anything else, including ids with NUL, lone surrogates or more
    than MAX_ID_LENGTH characters, is an unknown id (GenrecError), never a crash."""
    count = dataset.num_users if kind == "user" else dataset.num_items
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= count:
            return value
    elif isinstance(value, str) and _storable(value):
        found = _raw_id_index(dataset, f"{kind}_raw_ids").get(value)
        if found:
            return found[0][0]
        digits = value[1:] if value.startswith("#") else value
        if digits.isascii() and digits.isdigit() and 1 <= int(digits) <= count:
            return int(digits)
    shown = repr(value[:40]) + "..." if isinstance(value, str) and len(value) > 40 else repr(value)
    raise GenrecError(f"unknown {kind} {shown}: expected a raw {kind} id or a number 1..{count}")


def _storable(text: str) -> bool:
    """Whether ``text`` can be a raw id at all: bounded, no NUL, valid UTF-8 (the trie cannot hold the rest)."""
    if len(text) > MAX_ID_LENGTH or "\0" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from JSON "\ud800"
        return False
    return True


def _raw_id_index(dataset: ProcessedDataset, field_name: str):
    """raw id -> 1-based id, as a marisa-trie (built once per dataset and field; a catalogue of
    millions of ids stays a few MB, where a dict of str would take hundreds)."""
    import marisa_trie

    cache = dataset.raw_id_indexes
    if field_name not in cache:
        raw_ids = getattr(dataset, field_name)
        cache[field_name] = marisa_trie.RecordTrie("<i", zip(raw_ids, ((i + 1,) for i in range(len(raw_ids)))))
    return cache[field_name]


def load_item_texts(path: str | Path) -> list[str]:
    """Every item's text, item 1 first, read alone (what the embeddings are computed from)."""
    path = Path(path)
    if not (path / ITEMS_FILE).is_file():
        raise GenrecError(f"{path}: missing {ITEMS_FILE}; run `genrec prepare` to (re)create this dataset")
    items = pq.read_table(path / ITEMS_FILE, columns=["item_id", "text"]).sort_by("item_id")
    return [text or "" for text in items.column("text").to_pylist()]


def load_processed_dataset(path: str | Path) -> ProcessedDataset:
    path = Path(path)
    for name in (ITEMS_FILE, USERS_FILE, SEQUENCES_FILE, STATS_FILE):
        if not (path / name).is_file():
            raise GenrecError(f"{path}: missing {name}; run `genrec prepare` to (re)create this dataset")
    # Sorted and converted column by column in arrow (no per-row Python sorting or dicts: 2M users load in seconds).
    items = pq.read_table(path / ITEMS_FILE, columns=["item_id", "raw_id", "title", "text"]).sort_by("item_id")
    users = pq.read_table(path / USERS_FILE, columns=["user_id", "raw_id"]).sort_by("user_id")
    seqs = pq.read_table(path / SEQUENCES_FILE, columns=["user_id", "items"])
    if seqs.column("user_id").equals(users.column("user_id")):
        sequences = seqs.column("items").to_pylist()
    else:  # not written in user order: match by user id
        seq_by_user = dict(zip(seqs.column("user_id").to_pylist(), seqs.column("items").to_pylist()))
        sequences = [seq_by_user[user] for user in users.column("user_id").to_pylist()]
    return ProcessedDataset(
        path=path,
        sequences=sequences,
        user_raw_ids=[str(raw) for raw in users.column("raw_id").to_pylist()],
        item_raw_ids=[str(raw) for raw in items.column("raw_id").to_pylist()],
        item_titles=[title or "" for title in items.column("title").to_pylist()],
        item_texts=[text or "" for text in items.column("text").to_pylist()],
        stats=read_json(path / STATS_FILE),
    )
