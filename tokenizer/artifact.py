"""The tokenizer artifact: what stage one hands to stage two.

Directory layout (written by ``genrec train-tokenizer``):
    config.json        {"method": ..., "num_levels": L, "codebook_sizes": [M1..ML],
                        "suffix_size": S, "embedding_dim": d, "encoder": ..., "method_config": {...}}
    model.safetensors  the quantizer's weights (method specific)
    semantic_ids.npy   int64 [num_items, L + 1]; row i is item_id i + 1; last column is the
                       collision suffix (0 for the first item in a bucket, 1 for the next, ...)
    sid_to_item.json   {"c1-c2-..-cL-s": item_id}
    item_to_sid.json   {item_id: [c1, ..., cL, s]}
    metrics.json       SID quality metrics (eval.sid_metrics)

Stage two only needs ``load_semantic_ids``; it never cares which method made the IDs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import read_json, sha256_file

SEMANTIC_IDS_FILE = "semantic_ids.npy"
CONFIG_FILE = "config.json"


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
