"""``add_items``: new catalogue items join the dataset, tokenizer and models without retraining."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from genrec.core.io import read_json
from genrec.core.layout import RECOMMENDER_DIR, resolve_dataset_dir
from genrec.pipeline.choices import fit_new_items
from genrec.pipeline.common import as_str


@dataclass
class AddItemsConfig:
    items: str | Path  # CSV/TSV/JSONL/parquet: an id column, and a "text" column or the preset's fields
    dataset: str | Path | None = None
    # the models to grow (one or a list; default DATASET/recommender); the SASRec each fuses and
    # DATASET/sasrec are grown with them
    model: str | Path | list[str | Path] | None = None
    id_column: str = "id"
    progress: bool = True


@dataclass
class AddedItems:
    item_ids: list[int]  # ids of the items this call brought into the models (M+1, ...)
    skipped: list[str]  # raw ids already in the catalogue
    moved: int  # new items whose own bucket was full and took the nearest last-level code with room
    model: Path  # the first model given
    models: list[Path] = field(default_factory=list)  # every model now on the dataset's catalogue version
    num_items: int = 0  # that version (the dataset's item count)


def add_items(config: AddItemsConfig) -> AddedItems:
    """New catalogue items join the dataset, the tokenizer's SID table and the trained models
    without retraining: embeddings from the tokenizer's own encoder, codes from the trained
    tokenizer, fresh collision suffixes; every existing SID stays as it was. One staged, locked,
    ordered commit (``genrec.catalogue``): a run killed or failing at any point leaves everything
    loadable, and a rerun finishes the job (items already present are skipped)."""
    from genrec.catalogue import change_catalogue
    from genrec.recommender.recommender import META_FILE

    dataset_dir = resolve_dataset_dir(as_str(config.dataset))
    given = config.model if isinstance(config.model, (list, tuple)) else [config.model] if config.model else []
    models = [Path(m) for m in given] or [dataset_dir / RECOMMENDER_DIR]
    change = change_catalogue(dataset_dir, models, Path(config.items), config.id_column, config.progress)
    for model in models:  # how the new items enter each model's rankings, chosen on validation (once)
        meta = read_json(model / META_FILE)
        if meta.get("items_added") and "new_items" not in meta:
            fit_new_items(model, dataset_dir)
    return AddedItems(change.item_ids, change.skipped, change.moved, models[0], change.models, change.num_items)
