"""SASRec's training rows: each user's training sequence as one left-padded row of inputs and
next-item targets (every position is a training example), and left-padded histories for scoring."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def left_pad(histories: list[list[int]], width: int) -> np.ndarray:
    """The last ``width`` items of each history, right-aligned in a zero row: [n, width] int64."""
    rows = np.zeros((len(histories), width), dtype=np.int64)
    for row, history in zip(rows, histories):
        recent = history[-width:]
        if len(recent):
            row[width - len(recent):] = recent
    return rows


@dataclass
class SequenceRows:
    """One row per user with at least two training items: ``inputs[u]`` = items[:-1] and
    ``targets[u]`` = items[1:] of the last ``max_len + 1`` training items, left-padded with 0."""

    inputs: np.ndarray  # [n, max_len] int32
    targets: np.ndarray  # [n, max_len] int32
    lengths: np.ndarray  # [n] real positions per row

    @classmethod
    def build(cls, sequences: list[list[int]], max_len: int) -> "SequenceRows":
        kept = [seq[-(max_len + 1):] for seq in sequences if len(seq) >= 2]
        inputs = left_pad([seq[:-1] for seq in kept], max_len).astype(np.int32)
        targets = left_pad([seq[1:] for seq in kept], max_len).astype(np.int32)
        return cls(inputs, targets, np.asarray([len(seq) - 1 for seq in kept], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def num_targets(self) -> int:
        return int(self.lengths.sum())

    def batch(self, index: np.ndarray, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, targets) of rows ``index``, cut to the batch's longest row (left padding)."""
        width = int(self.lengths[index].max())
        inputs = torch.from_numpy(self.inputs[index, -width:].astype(np.int64)).to(device)
        targets = torch.from_numpy(self.targets[index, -width:].astype(np.int64)).to(device)
        return inputs, targets

