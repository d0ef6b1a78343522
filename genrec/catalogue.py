"""``genrec add-items`` as one versioned catalogue change: new items join the dataset, the
embedding caches, the tokenizers' SID tables and every model add-items is pointed at, each file
whole or not at all, in an order that leaves everything loadable and consistent at every moment.

Versions. Items are only ever appended, so a catalogue version is an item count n (items 1..n),
named by a fingerprint of those items' raw ids (``ProcessedDataset.catalogue``). Each model's
genrec.json records the version it knows ("catalogue"); on a dataset that has grown since, it works
on its version and ignores newer items (``data_prep.dataset.known_catalogue``) until add-items
grows it. A SASRec fused by a model that knows fewer items is cut to that model's items on load.

One run, under an exclusive ``flock`` on DATASET/.catalogue.lock (concurrent runs take turns):
1. check: each model's recorded catalogue against the dataset (a wrong --dataset stops here), its
   bundled SIDs against its tokenizer's table (they must be its start);
2. compute in memory: the grown items table, embeddings the caches lack, SIDs for the items each
   tokenizer's table lacks (a full bucket stops here), every model grown to the new version;
3. stage: each changed file or folder is written complete under a hidden name beside its target
   (``.NAME.staged``; a folder as hard links to the files that stay), each staged model loaded once;
4. commit, by renames, in this order: items.parquet, stats.json, embedding caches, tokenizer
   folders, SASRec folders, the other model folders (each folder one atomic exchange). Every
   prefix of that order is consistent: the dataset knows at least what a cache, a tokenizer or a
   model knows; a tokenizer at least what a model bundles; a fused SASRec at least what its model.
A run killed anywhere leaves each part on the old or the new version; the next run (same
command) finds the items in the dataset and brings the rest up to it. docs/new-items.md.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import (atomic_write_bytes, atomic_write_json, atomic_write_npy, fault_point, file_lock, link_tree,
                            read_json, restore_swapped_directory, swap_directory)
from genrec.core.layout import (CATALOGUE_LOCK_FILE, ITEMS_FILE, STATS_FILE, TOKENIZER_DIR, dataset_root,
                                portable_meta, recorded_path)

STAGED = ".{}.staged"  # the staged version of a file or folder NAME, beside it


@dataclass
class CatalogueChange:
    dataset_items: list[int]  # ids appended to the dataset in this call
    item_ids: list[int]  # ids this call brought into at least one model (a rerun: those a killed run left out)
    skipped: list[str]  # raw ids already in the catalogue
    moved: int  # items whose own SID bucket was full and took the nearest last-level code with room
    models: list[Path]  # every model folder now on the dataset's version
    num_items: int  # the catalogue version everything is on now


@dataclass
class _Model:
    path: Path
    kind: str  # "t5" or "sasrec"
    meta: dict
    known: int  # items it knows
    tokenizer: Path | None = None  # T5: the tokenizer artifact its SIDs came from


@dataclass
class _Staging:
    """Staged files and folders, committed in the order staged."""

    entries: list[tuple[Path, Path]] = field(default_factory=list)  # (staged, final)

    def path_for(self, final: Path) -> Path:
        """A fresh staged path for ``final`` (a stale one from a killed run is removed)."""
        staged = final.with_name(STAGED.format(final.name))
        _remove(staged)
        self.entries.append((staged, final))
        return staged

    def folder_for(self, final: Path) -> Path:
        """A staged copy of folder ``final`` (hard links) to change, or an empty one if it is not there."""
        staged = self.path_for(final)
        if final.is_dir():
            link_tree(final, staged)
        else:
            staged.mkdir(parents=True)
        return staged

    def commit(self) -> None:
        for staged, final in self.entries:
            if staged.is_dir():
                swap_directory(staged, final)  # fault points "dir NAME" (and "swap NAME" without an exchange)
            else:
                fault_point(f"commit {final.name}", final)
                os.replace(staged, final)

    def discard(self) -> None:
        for staged, _ in self.entries:
            _remove(staged)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


# -- reading the new items --------------------------------------------------------------------------
def new_item_text(row: dict, preset: str, id_column: str) -> tuple[str, str]:
    """(title, text) of a new item: its "text" column verbatim, else the preset's composition."""
    from genrec.data_prep import item_text

    title = item_text.clean(row.get("title") or row.get("name") or "")
    if row.get("text"):
        return title, item_text.clean(row["text"])
    if preset.startswith("amazon-"):
        categories = row.get("categories")
        if isinstance(categories, str):  # a CSV cell: "Beauty, Skin Care"
            row = {**row, "categories": [[name.strip() for name in categories.split(",")]]}
        return item_text.amazon_text(row)
    return item_text.generic_text(row, id_column)


def read_new_items(path: Path, id_column: str, preset: str) -> list[tuple[str, str, str]]:
    """(raw id, title, text) of each row of the items file. A malformed file (data_prep.readers), a
    missing id column, an empty id cell, a row without text or an id twice is a one-line error, raised
    before anything is staged."""
    from genrec.data_prep.readers import read_table

    first, rows = {}, []
    for where, row in read_table(Path(path)):
        if id_column not in row:
            raise GenrecError(f"{path}, {where}: no {id_column!r} column (the file has: "
                              f"{', '.join(map(str, row))}; set --id-column)")
        raw = row[id_column]
        if raw is None or not str(raw).strip():
            raise GenrecError(f"{path}, {where}, column {id_column!r}: empty cell")
        raw = str(raw)
        if raw in first:
            raise GenrecError(f"{path}, {where}: item {raw!r} appears twice in the file (first on {first[raw]})")
        first[raw] = where
        title, text = new_item_text(row, preset, id_column)
        if not text:
            raise GenrecError(f"{path}, {where}: item {raw!r} has no text to embed (give a text or title column)")
        rows.append((raw, title, text))
    return rows


def sid_candidates(tokenizer, vectors) -> list[np.ndarray]:
    """Each new item's codes, then the same prefix with every other last-level code, nearest first
    (distance between the item and the decoded SID): the fall-backs when its bucket is full."""
    codes = tokenizer.encode(vectors)
    size = tokenizer.codebook_sizes[-1]
    out = []
    for row, x in zip(codes, vectors):
        options = np.repeat(row[None, :], size, axis=0)
        options[:, -1] = np.arange(size)
        distance = ((tokenizer.decode(options) - x[None, :]) ** 2).sum(1)
        order = [int(row[-1]), *[int(j) for j in np.argsort(distance, kind="stable") if j != row[-1]]]
        out.append(options[order])
    return out


# -- the models a run grows -------------------------------------------------------------------------
def _model(path: Path, dataset, dataset_dir: Path) -> _Model:
    """A model folder, checked against the dataset: it must be a trained T5 recommender or SASRec
    whose recorded catalogue is the start of this dataset's."""
    from genrec.data_prep.dataset import known_catalogue
    from genrec.recommender.recommender import META_FILE, TOKENIZER_COPY
    from genrec.recommender.sasrec_recommender import CONFIG_FILE, is_sasrec_dir
    from genrec.tokenizer.artifact import load_semantic_ids

    restore_swapped_directory(path)  # a swap cut between its two renames (systems without an exchange)
    if not (path / META_FILE).is_file():
        raise GenrecError(f"{path}: not a trained recommender (no {META_FILE}); train one first or pass --model")
    meta = read_json(path / META_FILE)
    if is_sasrec_dir(path):
        model = _Model(path, "sasrec", meta, int(read_json(path / CONFIG_FILE)["num_items"]))
    else:
        tokenizer = recorded_path(meta.get("tokenizer"), path) or dataset_dir / TOKENIZER_DIR
        model = _Model(path, "t5", meta, load_semantic_ids(path / TOKENIZER_COPY).num_items, tokenizer)
    known_catalogue(dataset, meta.get("catalogue"), model.known, path)  # a wrong --dataset stops here
    return model


def _models(dataset_dir: Path, dataset, given: list[Path]) -> list[_Model]:
    """The models to grow: those given, the SASRec each T5 model fuses, and DATASET/sasrec; each
    once, SASRec models first (a T5 model's fused SASRec must never know fewer items than it)."""
    from genrec.recommender.sasrec_recommender import is_sasrec_dir

    found: dict[Path, _Model] = {}
    queue = list(given)
    if is_sasrec_dir(dataset_dir / "sasrec"):
        queue.append(dataset_dir / "sasrec")
    while queue:
        path = Path(queue.pop(0))
        if path.resolve() in found:
            continue
        model = found[path.resolve()] = _model(path, dataset, dataset_dir)
        fused = recorded_path((model.meta.get("fusion") or {}).get("sasrec"), path)
        if fused is not None and is_sasrec_dir(fused):
            queue.append(fused)
    return sorted(found.values(), key=lambda m: m.kind != "sasrec")


def _check_tokenizer(tokenizer_dir: Path, dataset_dir: Path, dataset, models: list[_Model]):
    """The SIDs of a tokenizer add-items may grow: its weights are there, it lies in no other
    dataset folder, it has no SIDs beyond the dataset, and each model's bundled SIDs start it."""
    from genrec.recommender.recommender import TOKENIZER_COPY
    from genrec.tokenizer.artifact import load_semantic_ids
    from genrec.tokenizer.base import WEIGHTS_FILE

    restore_swapped_directory(tokenizer_dir)
    if not (tokenizer_dir / WEIGHTS_FILE).is_file():
        raise GenrecError(f"{tokenizer_dir}: the trained tokenizer (with {WEIGHTS_FILE}) that {models[0].path}'s SIDs "
                          "came from is needed to give new items SIDs, and it is not there")
    home = dataset_root(tokenizer_dir.parent)
    if home is not None and home != dataset_dir.resolve():
        raise GenrecError(f"{models[0].path} reads tokenizer {tokenizer_dir}, which belongs to dataset {home}, not "
                          f"{dataset_dir}: pass --dataset {home} (or record the tokenizer relative to the model)")
    sids = load_semantic_ids(tokenizer_dir)
    if sids.num_items > dataset.num_items:
        raise GenrecError(f"{tokenizer_dir} has SIDs for {sids.num_items} items but {dataset_dir} has "
                          f"{dataset.num_items}: it is not this dataset's tokenizer")
    for model in models:
        bundled = load_semantic_ids(model.path / TOKENIZER_COPY)
        if bundled.num_items > sids.num_items or not np.array_equal(sids.codes[: bundled.num_items], bundled.codes):
            raise GenrecError(f"{tokenizer_dir} is not the tokenizer {model.path} was trained on (its SIDs differ)")
    return sids


# -- one change -------------------------------------------------------------------------------------
def change_catalogue(dataset_dir: Path, model_dirs: list[Path], items_file: Path, id_column: str = "id",
                     progress: bool = True) -> CatalogueChange:
    """Add the items of ``items_file`` to the dataset and grow every model of ``model_dirs`` (and the
    SASRec models that go with them) to the dataset's new catalogue version; see the module doc."""
    from genrec.data_prep.dataset import load_processed_dataset

    from genrec.recommender.recommender import META_FILE

    for path in model_dirs:
        if not (path / META_FILE).is_file() and not path.with_name(f".{path.name}.old").is_dir():
            raise GenrecError(f"{path}: not a trained recommender (no {META_FILE}); train one first or pass --model")
    preset = read_json(dataset_dir / STATS_FILE).get("name", "custom")
    rows = read_new_items(items_file, id_column, preset)
    waiting = f"add-items: another add-items is changing {dataset_dir}; waiting for it to finish"
    with file_lock(dataset_dir / CATALOGUE_LOCK_FILE, waiting=waiting):
        dataset = load_processed_dataset(dataset_dir)
        known = set(dataset.item_raw_ids)
        new = [row for row in rows if row[0] not in known]
        skipped = [raw for raw, _, _ in rows if raw in known]
        models = _models(dataset_dir, dataset, model_dirs)
        staging = _Staging()
        try:
            change = _stage(staging, dataset_dir, dataset, new, models, progress)
            staging.commit()
        finally:
            staging.discard()
    change.skipped = skipped
    return change


def _stage(staging: _Staging, dataset_dir: Path, dataset, new: list[tuple[str, str, str]], models: list[_Model],
           progress: bool) -> CatalogueChange:
    """Compute and stage every file the change writes, in commit order; nothing is committed here."""
    from genrec.data_prep.prepare import grown_items

    items, stats = grown_items(dataset_dir, new)
    target = dataset.num_items + len(new)
    if new:
        atomic_write_bytes(staging.path_for(dataset_dir / ITEMS_FILE), items)
    if new or read_json(dataset_dir / STATS_FILE) != stats:  # a run killed before its stats.json
        atomic_write_json(staging.path_for(dataset_dir / STATS_FILE), stats)
    raw_ids = dataset.item_raw_ids + [raw for raw, _, _ in new]
    growing = [model for model in models if model.known < target]
    vectors = _Embeddings(dataset_dir, dataset.item_texts + [text for _, _, text in new], progress)
    bundles, moved = {}, 0
    for tokenizer_dir in dict.fromkeys(m.tokenizer.resolve() for m in growing if m.kind == "t5"):
        users = [m for m in growing if m.kind == "t5" and m.tokenizer.resolve() == tokenizer_dir]
        bundles[tokenizer_dir], count = _grown_tokenizer(staging, tokenizer_dir, dataset_dir, dataset, users,
                                                         raw_ids, vectors)
        moved += count
    grown = {model.path: _grown_sasrec(model, dataset_dir, target, vectors)
             for model in growing if model.kind == "sasrec"}
    vectors.stage(staging)  # the caches commit before the tokenizers and models that read them
    staging.entries.sort(key=_commit_rank)
    catalogue = {"num_items": target, "fingerprint": _fingerprint(raw_ids)}
    for model in growing:  # SASRec models first (_models)
        meta = {**model.meta, "catalogue": catalogue,
                "items_added": int(model.meta.get("items_added", 0)) + target - model.known}
        if model.kind == "sasrec":
            _stage_sasrec(staging, model, meta, grown[model.path])
        else:
            _stage_t5(staging, model, meta, bundles[model.tokenizer.resolve()], vectors, target)
    first = min((model.known for model in growing), default=target)
    return CatalogueChange(list(range(dataset.num_items + 1, target + 1)), list(range(first + 1, target + 1)), [],
                           moved, [model.path for model in models], target)


def _commit_rank(entry: tuple[Path, Path]) -> int:
    """Commit order of the dataset files, caches and tokenizers staged so far (models come after)."""
    final = entry[1]
    return {ITEMS_FILE: 0, STATS_FILE: 1}.get(final.name, 2 if final.parent.name == "embeddings" else 3)


def _fingerprint(raw_ids: list[str]) -> str:
    from genrec.data_prep.dataset import catalogue_fingerprint

    return catalogue_fingerprint(raw_ids)


class _Embeddings:
    """Every item's text embedding under each encoder a tokenizer or model read (the dataset's
    caches extended by the items they lack), and the caches to stage for them."""

    def __init__(self, dataset_dir: Path, texts: list[str], progress: bool):
        self.dataset_dir, self.texts, self.progress = dataset_dir, texts, progress
        self.vectors: dict[str, tuple[np.ndarray, dict]] = {}

    def __call__(self, encoder: str) -> np.ndarray:
        from genrec.data_prep.embeddings import extended_item_embeddings

        if encoder not in self.vectors:
            self.vectors[encoder] = extended_item_embeddings(self.dataset_dir, self.texts, encoder,
                                                             show_progress=self.progress)
        return self.vectors[encoder][0]

    def stage(self, staging: _Staging) -> None:
        from genrec.data_prep.embeddings import META_FILE, embedding_cache_dir, write_embedding_cache

        for encoder, (vectors, meta) in self.vectors.items():
            folder = embedding_cache_dir(self.dataset_dir, encoder)
            if (folder / META_FILE).is_file() and read_json(folder / META_FILE) == meta:
                continue
            restore_swapped_directory(folder)
            staged = staging.path_for(folder)
            staged.mkdir(parents=True)
            write_embedding_cache(staged, vectors, meta)


def _grown_tokenizer(staging: _Staging, tokenizer_dir: Path, dataset_dir: Path, dataset, users: list[_Model],
                     raw_ids: list[str], vectors: _Embeddings) -> tuple[Path, int]:
    """SIDs for the items of ``raw_ids`` (the new catalogue) the tokenizer's table lacks (its folder
    staged with the grown table); returns the folder the models bundle from and how many items
    took a fall-back code."""
    from genrec.data_prep.collaborative import artifact_input
    from genrec.tokenizer.artifact import CONFIG_FILE, SEMANTIC_IDS_FILE
    from genrec.tokenizer.registry import load_tokenizer
    from genrec.tokenizer.semantic_ids import BucketsFull, extend_semantic_ids

    sids, target = _check_tokenizer(tokenizer_dir, dataset_dir, dataset, users), len(raw_ids)
    if sids.num_items >= target:
        return tokenizer_dir, 0
    config = read_json(tokenizer_dir / CONFIG_FILE)
    text = vectors(config["encoder"])
    # A tokenizer that also read collaborative vectors: new items have no interactions (zeros there).
    inputs = artifact_input(text, tokenizer_dir)[sids.num_items:target]
    try:
        rows, moved = extend_semantic_ids(sids.codes, sid_candidates(load_tokenizer(tokenizer_dir), inputs),
                                          sids.suffix_size)
    except BucketsFull as full:
        raise GenrecError(f"new item {raw_ids[sids.num_items + full.index]!r}: its SID bucket and every other "
                          f"last-level code of its prefix already hold {full.suffix_size} items, the most the "
                          "recommender's suffix tokens tell apart; nothing was changed (retrain the tokenizer and "
                          "recommender to add it") from None
    staged = staging.folder_for(tokenizer_dir)
    atomic_write_npy(staged / SEMANTIC_IDS_FILE, np.concatenate([sids.codes, rows]))
    atomic_write_json(staged / CONFIG_FILE, portable_meta({**config, "num_items": target}, tokenizer_dir,
                                                          keys=("dataset",)))
    return staged, moved


def _stage_t5(staging: _Staging, model: _Model, meta: dict, bundle_from: Path, vectors: _Embeddings,
              target: int) -> None:
    """The model folder with the grown SID table bundled, the new items' text rows in its weights
    (a model whose encoder reads item text) and genrec.json recording it."""
    from genrec.recommender.recommender import META_FILE, Recommender, bundle_semantic_ids

    staged = staging.folder_for(model.path)
    meta["tokenizer_checksum"] = bundle_semantic_ids(bundle_from, staged)
    if model.meta.get("item_text_encoder"):
        _grow_item_text(staged, vectors(model.meta["item_text_encoder"])[:target])
    atomic_write_json(staged / META_FILE, portable_meta(meta, model.path))
    Recommender.load(staged)  # the grown artifact loads (vocabulary, trie, checksum)


def _grow_item_text(staged: Path, text: np.ndarray) -> None:
    """Append the new items' unit text rows to a staged T5's ``item_input.text`` (recommender.item_input);
    its id rows stay as trained (new items have none: zeros on load). The weights file is written
    anew and moved in (the staged folder's files are hard links to the live model's)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from genrec.recommender.new_items import unit_rows

    path = staged / "model.safetensors"
    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata()
    weights = load_file(path)
    known = weights["item_input.text"]
    rows = unit_rows(text[len(known) - 1:])[1:]  # the same unit rows ItemInput keeps
    weights["item_input.text"] = torch.cat([known, torch.from_numpy(rows).to(known.dtype)])
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(weights, tmp, metadata=metadata)
    os.replace(tmp, path)


def _grown_sasrec(model: _Model, dataset_dir: Path, target: int, vectors: _Embeddings):
    """The SASRec grown to ``target`` items: zero id embeddings, the new items' text rows."""
    from genrec.recommender.sasrec_recommender import SASRecRecommender

    loaded = SASRecRecommender.load(model.path)
    text = None
    if loaded.model.config.text_dim:
        model.meta["encoder"] = model.meta.get("encoder") or _sasrec_encoder(loaded, dataset_dir, model.path)
        text = vectors(model.meta["encoder"])[model.known:target]
    return loaded.with_items(target, text)


def _stage_sasrec(staging: _Staging, model: _Model, meta: dict, grown) -> None:
    from genrec.recommender.sasrec_recommender import SASRecRecommender

    staged = staging.folder_for(model.path)
    grown.save(staged, meta=meta)
    SASRecRecommender.load(staged)


def _sasrec_encoder(loaded, dataset_dir: Path, path: Path) -> str:
    """The encoder whose cached embeddings are the text rows of a SASRec that did not record it."""
    import torch

    from genrec.data_prep.embeddings import EMBEDDINGS_FILE, META_FILE
    from genrec.core.layout import EMBEDDINGS_DIR

    known = loaded.model.item_text[1:].numpy()
    for folder in sorted((dataset_dir / EMBEDDINGS_DIR).glob("[!.]*")):
        if not (folder / META_FILE).is_file():
            continue
        cached = np.load(folder / EMBEDDINGS_FILE, mmap_mode="r")
        if cached.shape[1] == known.shape[1] and len(cached) >= len(known):
            unit = torch.nn.functional.normalize(torch.from_numpy(np.asarray(cached[:len(known)])), dim=-1).numpy()
            if np.allclose(unit, known, atol=1e-5):
                return read_json(folder / META_FILE)["encoder"]
    raise GenrecError(f"{path}: cannot tell which text encoder this SASRec read (no embedding cache in "
                      f"{dataset_dir / EMBEDDINGS_DIR} matches it); retrain it with `genrec train-sasrec`")
