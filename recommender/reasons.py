"""Reasons a shop can show beside a recommendation: "because you bought X".

The evidence is the transition prior's (``recommender.fusion.TransitionPrior``): how many times,
in the interactions it was fitted on, the recommended item came within ``window`` steps after a
history item. These counts are the prior's own inputs, so a reason is what the prior read, not a
guess at what the learned models attended to (attention weights are not attributions). What the
learned scorers' scores depend on is measured by occlusion (``occlusion_influence``): the drop of a
pick's fused log-score when a history item is removed.
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


MAX_OCCLUDED = 50  # distinct history items (the most recent) whose removal is tried
_ROWS_PER_CHUNK = 8  # histories whose catalogue-wide scorer rows are held at once


@dataclass(frozen=True)
class Influence:
    item: int  # the history item
    drop: float  # how much the recommended item's fused log-score falls when it is removed (> 0)


def item_log_scores(recommender, histories: list[list[int]], items: np.ndarray,
                    users: list[int] | None = None) -> np.ndarray:
    """``[n, k]`` fused log-score of ``items[r, j]`` after ``histories[r]``: the model's log p(item |
    history) (the T5's teacher-forced SID log-probability, or SASRec's log-softmax) plus each of the
    policy's scorers' weighted log q(item | history), the quantity the decoder ranks by before a
    request's history rule or item rule."""
    from genrec.recommender.search_error import target_log_probs

    items = np.asarray(items, dtype=np.int64)
    users = list(users) if users is not None else [0] * len(histories)
    if hasattr(recommender, "log_probabilities"):  # SASRec: a distribution over the whole catalogue
        out = np.concatenate([np.take_along_axis(recommender.log_probabilities(histories[s:s + _ROWS_PER_CHUNK]),
                                                 items[s:s + _ROWS_PER_CHUNK], axis=1)
                              for s in range(0, len(histories), _ROWS_PER_CHUNK)])
    else:
        pairs = [(row, item) for row in range(len(histories)) for item in items[row]]
        out = target_log_probs(recommender, [histories[r] for r, _ in pairs], [int(i) for _, i in pairs],
                               [users[r] for r, _ in pairs]).reshape(items.shape)
    for scorer, weight in recommender.policy.scorers:
        for start in range(0, len(histories), _ROWS_PER_CHUNK):
            q = np.take_along_axis(scorer.probabilities(histories[start:start + _ROWS_PER_CHUNK]),
                                   items[start:start + _ROWS_PER_CHUNK], axis=1)
            with np.errstate(divide="ignore"):
                out[start:start + _ROWS_PER_CHUNK] += weight * np.log(q)
    return out


def occlusion_influence(recommender, history: list[int], items: list[int] | np.ndarray, user: int = 0,
                        limit: int = MAX_REASONS) -> list[list[Influence]]:
    """For each of ``items``, up to ``limit`` history items whose removal from ``history`` (every
    occurrence) lowers that item's fused log-score (``item_log_scores``) the most, largest drop first
    (ties: the more recent). Occlusion: what the learned models' scores actually depend on, at one
    extra scoring of each distinct history item (the last ``MAX_OCCLUDED``), not attention weights.
    A history of one distinct item has nothing to compare with: no influence."""
    items = np.asarray([int(i) for i in items], dtype=np.int64)
    out: list[list[Influence]] = [[] for _ in items]
    recent_first = list(dict.fromkeys(int(a) for a in reversed(history)))[:MAX_OCCLUDED]
    if len(recent_first) < 2 or not len(items):
        return out
    variants = [list(history)] + [[a for a in history if a != removed] for removed in recent_first]
    scores = item_log_scores(recommender, variants, np.repeat(items[None, :], len(variants), axis=0),
                             [user] * len(variants))
    drops = scores[0][None, :] - scores[1:]  # [removed, item]
    for column in range(len(items)):
        found = np.nonzero(drops[:, column] > 0)[0]
        order = found[np.lexsort((found, -drops[found, column]))][:limit]
        out[column] = [Influence(recent_first[row], float(drops[row, column])) for row in order]
    return out
