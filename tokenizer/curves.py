"""The training curves of a tokenizer (paper Figure 4) as a PNG."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from genrec.core.io import atomic_write_bytes
from genrec.tokenizer.base import TrainingHistory


def plot_training_curves(history: TrainingHistory, path: Path, title: str) -> None:
    """Loss and per-level codebook usage against epoch."""
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
