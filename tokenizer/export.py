"""Write a tokenizer artifact directory (layout in tokenizer.artifact) atomically, with training curves."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from genrec.core.io import atomic_directory, atomic_write_bytes, atomic_write_json
from genrec.tokenizer.base import Tokenizer, TrainingHistory
from genrec.tokenizer.semantic_ids import sid_maps

HISTORY_FILE = "training_history.json"
CURVES_FILE = "training_curves.png"


def plot_training_curves(history: TrainingHistory, path: Path, title: str) -> None:
    """Loss and per-level codebook usage against epoch (the paper's Figure 4), as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_usage) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(history.epoch, history.loss, marker="." if len(history.epoch) < 30 else None)
    ax_loss.set(xlabel="epoch", ylabel="training loss", title=f"{title}: loss")
    ax_loss.grid(alpha=0.3)
    usage = np.asarray(history.usage) if history.usage else np.zeros((0, 0))
    for level in range(usage.shape[1] if usage.ndim == 2 else 0):
        ax_usage.plot(history.epoch, usage[:, level], label=f"level {level + 1}")
    ax_usage.set(xlabel="epoch", ylabel="codebook usage", ylim=(0, 1.05), title=f"{title}: codebook usage")
    ax_usage.grid(alpha=0.3)
    if usage.size:
        ax_usage.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())


def write_artifact(out: str | Path, tokenizer: Tokenizer, sids: np.ndarray, metrics: dict[str, Any],
                   encoder: str, extra: dict[str, Any] | None = None) -> Path:
    """Everything stage two needs plus the weights, moved into ``out`` only when complete."""
    out = Path(out)
    sids = np.asarray(sids, dtype=np.int64)
    with atomic_directory(out) as tmp:
        tokenizer.save(tmp, extra_config={"suffix_size": int(sids[:, -1].max()) + 1, "encoder": encoder,
                                          "num_items": int(len(sids)), **(extra or {})})
        buffer = io.BytesIO()
        np.save(buffer, sids)
        atomic_write_bytes(tmp / "semantic_ids.npy", buffer.getvalue())
        sid_to_item, item_to_sid = sid_maps(sids)
        atomic_write_json(tmp / "sid_to_item.json", sid_to_item)
        atomic_write_json(tmp / "item_to_sid.json", item_to_sid)
        atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_json(tmp / HISTORY_FILE, tokenizer.history.to_dict())
        plot_training_curves(tokenizer.history, tmp / CURVES_FILE, tokenizer.method)
    return out
