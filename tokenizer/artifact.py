"""The tokenizer artifact: what stage one hands to stage two, written and read here.

Directory layout (written by ``write_artifact``, i.e. ``genrec train-tokenizer``):
    config.json            {"method": ..., "num_levels": L, "codebook_sizes": [M1..ML],
                            "suffix_size": S, "embedding_dim": d, "encoder": ..., "num_items": n,
                            "method_config": {...}}
    model.safetensors      the quantizer's weights (method specific; tokenizer.registry.load_tokenizer)
    semantic_ids.npy       int64 [num_items, L + 1]; row i is item_id i + 1; last column is the
                           collision suffix (0 for the first item in a bucket, 1 for the next, ...)
    metrics.json           SID quality metrics (eval.sid_metrics)
    training_history.json  per-epoch loss and codebook usage; training_curves.png plots it

Stage two only needs ``load_semantic_ids``; it never cares which method made the IDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_directory, atomic_write_json, atomic_write_npy, read_json, sha256_file

if TYPE_CHECKING:  # reading SIDs needs neither torch nor the tokenizer classes
    from genrec.tokenizer.base import Tokenizer

SEMANTIC_IDS_FILE = "semantic_ids.npy"
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "training_history.json"
CURVES_FILE = "training_curves.png"


@dataclass(frozen=True)
class SemanticIds:
    """Every item's full SID (L codes + suffix) and the vocabulary sizes of each position."""

    codes: np.ndarray  # int64 [num_items, L + 1], row i = item i + 1
    codebook_sizes: tuple[int, ...]  # L entries
    suffix_size: int  # largest collision bucket (>= 1)
    checksum: str  # sha256 of semantic_ids.npy, so a recommender can detect a mismatched tokenizer
    path: Path | None = None

    @property
    def num_levels(self) -> int:
        return len(self.codebook_sizes)

    @property
    def num_items(self) -> int:
        return int(self.codes.shape[0])

    @property
    def position_sizes(self) -> tuple[int, ...]:
        """Vocabulary size of each of the L + 1 SID positions."""
        return (*self.codebook_sizes, self.suffix_size)

    def codes_of(self, item_ids: Any) -> np.ndarray:
        """The full SIDs of 1-based ``item_ids`` (an id or an array of ids): rows ``item_id - 1``.

        Ids outside 1..num_items are a GenrecError (0 would otherwise silently read the last row).
        """
        ids = np.asarray(item_ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise GenrecError(f"item ids must be integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 1 or ids.max() > self.num_items):
            raise GenrecError(f"item ids must be in 1..{self.num_items}, got {ids.min()}..{ids.max()}")
        return self.codes[ids - 1]


def write_artifact(out: str | Path, tokenizer: Tokenizer, sids: np.ndarray, metrics: dict[str, Any],
                   encoder: str, extra: dict[str, Any] | None = None,
                   arrays: dict[str, np.ndarray] | None = None) -> Path:
    """Everything stage two needs plus the weights, moved into ``out`` only when complete.
    ``arrays``: more .npy files by name (e.g. the collaborative vectors the tokenizer read)."""
    from genrec.tokenizer.curves import plot_training_curves  # matplotlib: only when writing

    out = Path(out)
    sids = np.asarray(sids, dtype=np.int64)
    with atomic_directory(out) as tmp:
        tokenizer.save(tmp, extra_config={"suffix_size": int(sids[:, -1].max()) + 1, "encoder": encoder,
                                          "num_items": int(len(sids)), **(extra or {})})
        for name, array in {SEMANTIC_IDS_FILE: sids, **(arrays or {})}.items():
            atomic_write_npy(tmp / name, array)
        atomic_write_json(tmp / METRICS_FILE, metrics)
        atomic_write_json(tmp / HISTORY_FILE, tokenizer.history.to_dict())
        plot_training_curves(tokenizer.history, tmp / CURVES_FILE, tokenizer.method)
    return out


def load_semantic_ids(artifact_dir: str | Path) -> SemanticIds:
    artifact_dir = Path(artifact_dir)
    sid_file = artifact_dir / SEMANTIC_IDS_FILE
    if not sid_file.is_file():
        raise GenrecError(
            f"{artifact_dir}: not a tokenizer artifact (no {SEMANTIC_IDS_FILE}); run `genrec train-tokenizer` first"
        )
    config = read_json(artifact_dir / CONFIG_FILE)
    codes = np.load(sid_file).astype(np.int64)
    sizes = tuple(int(s) for s in config["codebook_sizes"])
    if codes.ndim != 2 or codes.shape[1] != len(sizes) + 1:
        raise GenrecError(f"{sid_file}: expected shape [items, {len(sizes) + 1}], got {codes.shape}")
    return SemanticIds(
        codes=codes,
        codebook_sizes=sizes,
        suffix_size=int(config["suffix_size"]),
        checksum=sha256_file(sid_file),
        path=artifact_dir,
    )
