"""Reasons a shop can show beside a recommendation: "because you bought X".

The evidence is the transition prior's (``recommender.fusion.TransitionPrior``): how many times,
in the interactions it was fitted on, the recommended item came within ``window`` steps after a
history item. These counts are the prior's own inputs, so a reason is what the prior read, not a
guess at what the learned models attended to (attention weights are not attributions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sparse

MAX_REASONS = 3  # history items named per recommended item


@dataclass(frozen=True)
class Reason:
    item: int  # the history item
    count: int  # times the recommended item followed it within the prior's window


def transition_reasons(counts: sparse.csr_matrix, history: list[int], items: list[int] | np.ndarray,
                       limit: int = MAX_REASONS) -> list[list[Reason]]:
    """For each of ``items``, up to ``limit`` history items it followed in the counted sequences,
    the most counts first (ties: the more recent history item). ``counts[a, b]``: times b came
    within the window after a; items outside the counted catalogue (0, a new item) have none."""
    size = counts.shape[0]
    recent_first = list(dict.fromkeys(int(a) for a in reversed(history) if 0 < int(a) < size))
    items = [int(i) for i in items]
    out: list[list[Reason]] = [[] for _ in items]
    columns = [j for j, item in enumerate(items) if 0 < item < size]
    if not recent_first or not columns:
        return out
    block = counts[np.asarray(recent_first)][:, np.asarray([items[j] for j in columns])].toarray()
    for column, j in enumerate(columns):
        found = np.nonzero(block[:, column] > 0)[0]
        order = found[np.lexsort((found, -block[found, column]))][:limit]  # most counts, then most recent
        out[j] = [Reason(recent_first[row], int(round(block[row, column]))) for row in order]
    return out
