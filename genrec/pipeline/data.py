"""``prepare`` (raw data -> a processed dataset) and ``embed`` (item texts -> cached embeddings)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from genrec.core.errors import GenrecError
from genrec.core.layout import default_dataset_dir, resolve_dataset_dir
from genrec.pipeline.common import as_path, as_str


@dataclass
class PrepareConfig:
    name: str  # a preset: amazon-beauty, ml-1m, lastfm, demo, custom, ...
    out: str | Path | None = None  # default data/NAME
    raw_dir: str | Path | None = None  # default data/raw/NAME (downloaded there if missing)
    min_count: int | None = None  # k-core threshold (default: the preset's)
    allow_download: bool = True
    interactions: str | Path | None = None  # custom preset only
    items: str | Path | None = None
    user_column: str = "user"
    item_column: str = "item"
    time_column: str = "timestamp"
    time_format: str | None = None  # strptime format of the time column (default: numbers or ISO-8601 dates)
    item_id_column: str = "id"
    num_items: int = 10_000  # synthetic preset only (data_prep.synthetic)
    num_users: int | None = None  # synthetic: default 2 x num_items
    seed: int = 0  # synthetic


@dataclass
class PreparedDataset:
    path: Path
    stats: dict


def prepare(config: PrepareConfig) -> PreparedDataset:
    from genrec.data_prep.prepare import prepare_dataset
    from genrec.data_prep.presets import PRESETS

    if config.name not in PRESETS:
        raise GenrecError(f"unknown dataset {config.name!r}; choose one of: {', '.join(PRESETS)}")
    if config.min_count is not None and config.min_count < 1:
        raise GenrecError(f"min_count (--min-count) must be at least 1, got {config.min_count}")
    raw_dir = as_path(config.raw_dir)
    if raw_dir is not None and not raw_dir.is_dir():
        raise GenrecError(f"--raw-dir {raw_dir}: no such directory")
    out = as_path(config.out) or default_dataset_dir(config.name)
    if config.name == "synthetic":
        from genrec.data_prep.synthetic import SyntheticConfig

        stats = prepare_dataset("synthetic", out, Path(), synthetic=SyntheticConfig(
            num_items=config.num_items, num_users=config.num_users, seed=config.seed))
        return PreparedDataset(out, stats)
    stats = prepare_dataset(
        config.name, out, raw_dir or Path("data") / "raw" / config.name, min_count=config.min_count,
        allow_download=config.allow_download, interactions=as_path(config.interactions), items=as_path(config.items),
        user_col=config.user_column, item_col=config.item_column, time_col=config.time_column,
        time_format=config.time_format, id_col=config.item_id_column)
    return PreparedDataset(out, stats)


@dataclass
class EmbedConfig:
    dataset: str | Path | None = None  # default: the last prepared dataset
    encoder: str | None = None  # default Sentence-T5, bundled MiniLM (with a warning) when offline
    batch_size: int = 64
    device: str | None = None
    progress: bool = True


def embed(config: EmbedConfig):
    """Item embeddings (cached per encoder and item texts): a ``data_prep.embeddings.ItemEmbeddings``."""
    from genrec.data_prep.embeddings import load_or_compute_item_embeddings

    return load_or_compute_item_embeddings(resolve_dataset_dir(as_str(config.dataset)), encoder=config.encoder,
                                           batch_size=config.batch_size, device=config.device,
                                           show_progress=config.progress)
