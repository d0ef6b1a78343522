"""Fused decoding: per-item scorers added to the model's scores inside the trie beam search.

On the Amazon benchmarks a user's next item is very often one that followed the same recent items
in other users' training sequences; a count model of those transitions is a strong recommender on
its own (``TransitionPrior.rank``), and the small T5 learns such item-level associations slowly.
Fusion (as in language-model shallow fusion for speech / translation decoding) scores an item as

    log p_model(SID | history) + sum_s w_s log q_s(item | history)

over the scorers s of a ``DecodingPolicy``: the transition prior (q mixes the transition counts of
the last ``recent`` history items, a ``decay`` per step back, with a little uniform mass, so every
item keeps a finite score) and any learned item distribution such as SASRec's. The mass of every
SID prefix under q_s is the sum over the items under it; the beam adds, at each position, the
change in weighted log mass from parent prefix to child (``fast_beam.constrained_beam_search(
prior=...)``), so the pruning at each position already sees every scorer, and the terms telescope
to each item's own weighted log q_s. The prior stays sparse (a few hundred counted items per user;
the uniform mass analytic, ``recommender.prefix_scores``), so its cost does not grow with the
catalogue; a dense scorer (SASRec) gives catalogue-wide rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import scipy.sparse as sparse
import torch

from genrec.core.errors import GenrecError
from genrec.recommender.prefix_scores import (DensePrefixScores, PrefixScoreSum, PrefixStates, UnavailableItemMask,
                                              SparsePrefixScores)
from genrec.recommender.trie import SidPrefixTable


@dataclass
class TransitionPrior:
    """Counts of "item b came within ``window`` steps after item a" in training sequences.

    Sparse throughout: ``counts`` keeps at most ``successors`` followers per item (the most
    frequent; 0 = every one), a batch's distribution is a sparse matrix of the items its recent
    history items were followed by (``distribution``), the uniform smoothing mass is applied
    analytically, and the beam reads per-prefix masses from it (``prefix_scores``) without ever
    building a catalogue-wide row per user. ``probabilities`` (dense) remains for ranking a whole
    catalogue next to a dense scorer such as SASRec."""

    name: ClassVar[str] = "prior"  # as a scorer in a DecodingPolicy
    counts: sparse.csr_matrix  # [num_items + 1, num_items + 1]; row a, column b; id 0 unused
    window: int = 3
    recent: int = 3  # history items the prior reads, most recent first
    decay: float = 0.5  # weight of the k-th most recent item: decay ** k
    smoothing: float = 1e-4  # uniform mass added to every item's probability (then renormalised)
    successors: int = 0  # followers kept per item, the most frequent (ties: smaller id); 0 = all

    @classmethod
    def fit(cls, sequences: list[list[int]], num_items: int, window: int = 3, successors: int = 0,
            chunk_users: int = 100_000, **options) -> "TransitionPrior":
        """``sequences``: training item sequences (1-based ids), oldest first; counted
        ``chunk_users`` sequences at a time (memory: the counts plus one chunk's pairs)."""
        if window < 1:
            raise GenrecError(f"transition window must be >= 1, got {window}")
        if successors < 0:
            raise GenrecError(f"successors per item must be >= 0 (0 = all), got {successors}")
        shape = (num_items + 1, num_items + 1)
        counts = sparse.csr_matrix(shape)
        for start in range(0, len(sequences), chunk_users):
            rows, cols = transition_pairs(sequences[start:start + chunk_users], window)
            counts = counts + sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=shape)
        counts.sum_duplicates()
        return cls(counts=keep_top_successors(counts, successors), window=window, successors=successors, **options)

    @property
    def num_items(self) -> int:
        return self.counts.shape[0] - 1

    def distribution(self, histories: list[list[int]], exclude_seen: bool = False,
                     allowed: np.ndarray | None = None) -> tuple[sparse.csr_matrix, np.ndarray]:
        """(p, has_counts): p ``[batch, num_items + 1]`` sparse, each row the decayed counts of what
        followed the row's last ``recent`` items, divided by their total; has_counts False for a row
        with no counts (its distribution is uniform, p's row empty). q = (p + smoothing) / (1 +
        smoothing * num_items) on items 1..M (``probabilities``). ``exclude_seen``: the counts of
        items in the row's own history are dropped first, so p spreads over the items it may recommend;
        ``allowed`` (bool ``[M + 1]``, a rule's items): the counts of the items outside it too."""
        rows, items, weights = [], [], []
        for row, history in enumerate(histories):
            for k, item in enumerate(reversed(history[-self.recent:])):
                if 0 < item <= self.num_items:
                    rows.append(row)
                    items.append(item)
                    weights.append(self.decay**k)
        pick = sparse.csr_matrix((weights, (rows, np.arange(len(items)))), shape=(len(histories), len(items)))
        p = sparse.csr_matrix(pick @ self.counts[np.asarray(items, dtype=np.int64)])
        p.sum_duplicates()
        p.sort_indices()
        if exclude_seen:
            p = drop_seen_entries(p, histories)
        if allowed is not None:
            p = sparse.csr_matrix(p.multiply(np.asarray(allowed[: p.shape[1]], dtype=np.float64)[None, :]))
            p.eliminate_zeros()
            p.sort_indices()
        totals = np.asarray(p.sum(axis=1)).reshape(-1)
        has_counts = totals > 0
        p.data = p.data / np.repeat(totals, np.diff(p.indptr))
        return p, has_counts

    def probabilities(self, histories: list[list[int]]) -> np.ndarray:
        """q(item | history) ``[batch, num_items + 1]`` (column 0 = no item, always 0); rows sum to 1.
        Dense: for ranking a catalogue beside a dense scorer; the beam uses ``prefix_scores``."""
        p, has_counts = self.distribution(histories)
        scale = 1.0 + self.smoothing * self.num_items
        background = np.where(has_counts, (0.0 + self.smoothing) / scale,
                              (1.0 / self.num_items + self.smoothing) / scale)
        q = np.repeat(background[:, None], self.num_items + 1, axis=1)
        rows = np.repeat(np.arange(len(histories)), np.diff(p.indptr))
        q[rows, p.indices] = (p.data + self.smoothing) / scale
        q[:, 0] = 0.0
        return q

    def prefix_scores(self, histories: list[list[int]], states: PrefixStates, weight: float,
                      device: torch.device | str = "cpu", exclude_seen: bool = False) -> SparsePrefixScores:
        """``weight * log`` prefix masses for the beam, from the sparse distribution."""
        p, has_counts = self.distribution(histories, exclude_seen, states.allowed)
        return SparsePrefixScores(p, has_counts, states, self.smoothing, weight, device)

    def rank(self, histories: list[list[int]], k: int, exclude_seen: bool = False) -> np.ndarray:
        """The prior on its own as a recommender: top-``k`` item ids ``[batch, k]``, best first
        (ties, e.g. among items it has no counts for, by item id). Items with counts come first
        (any count beats the smoothing mass alone), then the smallest ids without counts.
        ``exclude_seen``: no item of the row's history (0 pads a row with fewer items left)."""
        p, _ = self.distribution(histories, exclude_seen)
        k = min(k, self.num_items)
        out = np.zeros((len(histories), k), dtype=np.int64)
        rows = np.repeat(np.arange(len(histories)), np.diff(p.indptr))
        order = np.lexsort((p.indices, -p.data, rows))  # q increases with p: by p descending, ties by id
        rank_in_row = np.arange(len(order)) - p.indptr[rows[order]]
        top = rank_in_row < k
        out[rows[order][top], rank_in_row[top]] = p.indices[order][top]
        filled = np.minimum(np.diff(p.indptr), k)
        for row in np.nonzero(filled < k)[0]:  # the rest: the smallest ids without counts (nor seen)
            taken = p.indices[p.indptr[row]:p.indptr[row + 1]]
            if exclude_seen:
                taken = np.union1d(taken, histories[row])
            rest = np.setdiff1d(np.arange(1, min(k + len(taken), self.num_items) + 1), taken)[:k - filled[row]]
            out[row, filled[row]:filled[row] + len(rest)] = rest
        return out


def drop_seen_entries(p: sparse.csr_matrix, histories: list[list[int]]) -> sparse.csr_matrix:
    """``p`` without the entries (row, item) whose item is in that row's history."""
    width = p.shape[1]
    rows = np.repeat(np.arange(p.shape[0], dtype=np.int64), np.diff(p.indptr))
    seen = np.fromiter((row * width + int(item) for row, history in enumerate(histories) for item in history),
                       dtype=np.int64)
    p = p.copy()
    p.data[np.isin(rows * width + p.indices, seen)] = 0.0
    p.eliminate_zeros()
    return p


def transition_pairs(sequences: list[list[int]], window: int) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) for every b within ``window`` steps after a in the same sequence, vectorised."""
    lengths = np.fromiter((len(seq) for seq in sequences), dtype=np.int64, count=len(sequences))
    flat = np.fromiter((item for seq in sequences for item in seq), dtype=np.int64, count=int(lengths.sum()))
    ends = np.repeat(np.cumsum(lengths), lengths)  # end (exclusive) of each position's own sequence
    positions = np.arange(len(flat))
    rows, cols = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    for step in range(1, window + 1):
        valid = positions + step < ends
        rows.append(flat[valid])
        cols.append(flat[positions[valid] + step])
    return np.concatenate(rows), np.concatenate(cols)


def keep_top_successors(counts: sparse.csr_matrix, successors: int) -> sparse.csr_matrix:
    """Each row's ``successors`` largest entries (ties: the smaller column); all of them for 0."""
    lengths = np.diff(counts.indptr)
    if successors <= 0 or lengths.max(initial=0) <= successors:
        return counts
    rows = np.repeat(np.arange(counts.shape[0]), lengths)
    order = np.lexsort((counts.indices, -counts.data, rows))
    keep = np.sort(order[(np.arange(len(order)) - counts.indptr[rows[order]]) < successors])  # row-major again
    indptr = np.r_[0, np.cumsum(np.minimum(lengths, successors))]
    return sparse.csr_matrix((counts.data[keep], counts.indices[keep], indptr), shape=counts.shape)


def prefix_states(table: SidPrefixTable) -> PrefixStates:
    """``states[d][item]``: the id of item's length-d prefix state in ``table`` (d = 0..L; at d = L
    the item id itself). Index 0 (no item) maps to state 0."""
    num_items = int(table.next_state[-1].max())
    states = [np.arange(num_items + 1, dtype=np.int64)]
    for position in range(table.length - 1, -1, -1):
        transitions = table.next_state[position].cpu().numpy()
        parent = np.zeros(int(transitions.max()) + 1, dtype=np.int64)
        rows, cols = np.nonzero(transitions >= 0)
        parent[transitions[rows, cols]] = rows
        states.insert(0, parent[states[0]])
    return PrefixStates(states)


def prefix_log_prior(q: np.ndarray, states: list[np.ndarray], weight: float,
                     device: torch.device | str = "cpu") -> list[torch.Tensor]:
    """``weight * log`` of the prior mass of every prefix state per position, for
    ``constrained_beam_search(prior=...)``: a list of ``[batch, num_states_d]`` tensors."""
    q = torch.from_numpy(q[:, 1:]).double()
    out = []
    for position_states in states:
        index = torch.from_numpy(position_states[1:]).expand(q.shape[0], -1)
        mass = torch.zeros((q.shape[0], int(position_states.max()) + 1), dtype=torch.float64)
        mass.scatter_add_(1, index, q)
        out.append((weight * torch.log(mass.clamp(min=1e-300))).float().to(device))
    return out


@dataclass(frozen=True)
class DecodingPolicy:
    """What decoding adds to a recommender's own scores: per-item scorers with their weights.

    An item scores log p_model(item | history) + sum_s w_s log q_s(item | history). ``scorers`` are
    (scorer, weight) pairs with weight > 0; a scorer has a ``name`` and ``probabilities(histories)``
    ``[batch, M + 1]`` (column 0 = no item), e.g. ``TransitionPrior`` ("prior") or a trained SASRec
    ("sasrec"). The T5 beam search enters each scorer through the log mass of every SID prefix
    (``prefix_log_prior``), so the beam sees every scorer before it prunes; a catalogue ranker adds
    ``log_scores`` to every item. ``new_items`` (a ``recommender.new_items.NewItemMixture``) mixes
    the items added after training into the final ranking. ``exclude_seen``: never recommend an item
    of the user's own history (a recommender's default; a request may say otherwise). The empty
    policy is the model alone.
    """

    scorers: tuple = ()
    new_items: object | None = None
    exclude_seen: bool = False
    # bool [M + 1]: the items a request's rule allows (recommender.rules.ItemRule.allowed); None: all.
    # Kept inside the beam (UnavailableItemMask) and by every catalogue ranker (log_scores).
    allowed: np.ndarray | None = field(default=None, compare=False)

    def __post_init__(self):
        names = [scorer.name for scorer, _ in self.scorers]
        if len(set(names)) != len(names):
            raise GenrecError(f"each scorer once in a decoding policy, got {names}")
        for scorer, weight in self.scorers:
            if not weight > 0:
                raise GenrecError(f"fusion weight of {scorer.name} must be > 0 (leave it out for 0), got {weight}")

    @classmethod
    def from_weights(cls, weights: dict[str, float], scorers: dict, new_items=None,
                     exclude_seen: bool = False, allowed: np.ndarray | None = None) -> "DecodingPolicy":
        """The policy with ``weights[name]`` for each named scorer in ``scorers``; weight 0 leaves it out."""
        unknown = sorted(set(weights) - set(scorers))
        if unknown:
            raise GenrecError(f"no scorer named {', '.join(unknown)} here (available: {', '.join(sorted(scorers)) or 'none'})")
        for name, weight in weights.items():
            if not weight >= 0:
                raise GenrecError(f"fusion weight of {name} must be >= 0 (0 = not fused), got {weight}")
        return cls(tuple((scorers[name], float(w)) for name, w in sorted(weights.items()) if w > 0), new_items,
                   bool(exclude_seen), allowed)

    def steers_beam(self, exclude_seen: bool) -> bool:
        """Whether decoding under this policy adds anything to the beam's scores (``prefix_log_prior``)."""
        return bool(self.scorers) or exclude_seen or self.allowed is not None

    @property
    def weights(self) -> dict[str, float]:
        return {scorer.name: weight for scorer, weight in self.scorers}

    def log_scores(self, histories: list[list[int]]) -> np.ndarray | float:
        """sum_s w_s log q_s ``[batch, M + 1]`` for ranking a whole catalogue (0.0 for no scorer),
        -inf on the items a rule leaves out."""
        total = 0.0
        for scorer, weight in self.scorers:
            with np.errstate(divide="ignore"):
                total = total + weight * np.log(scorer.probabilities(histories))
        if self.allowed is not None:
            total = total + np.where(self.allowed, 0.0, -np.inf)
        return total

    def finish(self, histories: list[list[int]], items: np.ndarray, scores: np.ndarray, top_k: int,
               exclude_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The final top ``top_k`` from a recommender's ranked ``items`` / ``scores``: mixed with the
        new items when the policy has them, else the first ``top_k`` as they are."""
        if self.new_items is None:
            return items[:, :top_k], scores[:, :top_k]
        mixture = self.new_items
        if self.allowed is not None:  # only the new items the rule allows
            mixture = dataclasses.replace(mixture, allowed=self.allowed)
        return mixture.merge(histories, items, scores, top_k, exclude_seen)

    def prefix_log_prior(self, histories: list[list[int]], states: list[np.ndarray],
                         device: torch.device | str = "cpu", exclude_seen: bool = False) -> PrefixScoreSum | None:
        """Per SID position, sum_s w_s log (scorer s's mass of every prefix state), as something
        ``constrained_beam_search(prior=...)`` gathers from (``recommender.prefix_scores``); None
        for the empty policy without ``exclude_seen``. A scorer with ``prefix_scores`` (the sparse
        transition prior) gives its own; any other enters through its dense ``probabilities``.
        ``exclude_seen``: each scorer's mass counts only items outside the row's history, and a
        ``UnavailableItemMask`` keeps the history's items out of the beam (its width goes to unseen items)."""
        if not self.steers_beam(exclude_seen):
            return None
        states = states if isinstance(states, PrefixStates) else PrefixStates(states)
        if self.allowed is not None:
            states = states.restricted(self.allowed)
        parts = []
        for scorer, weight in self.scorers:
            if hasattr(scorer, "prefix_scores"):
                parts.append(scorer.prefix_scores(histories, states, weight, device, exclude_seen=exclude_seen))
            else:
                q = scorer.probabilities(histories)
                if exclude_seen or self.allowed is not None:
                    q = q.copy()
                for row, history in enumerate(histories if exclude_seen else []):
                    q[row, history] = 0.0
                if states.allowed is not None:
                    q[:, : len(states.allowed)][:, ~states.allowed] = 0.0
                parts.append(DensePrefixScores(prefix_log_prior(q, states, weight, device)))
        if exclude_seen or self.allowed is not None:
            parts.append(UnavailableItemMask(histories if exclude_seen else [[] for _ in histories], states, device))
        return PrefixScoreSum(parts)


def choose_weights(evaluate, scorers: dict, grids: dict[str, list[float]], rounds: int = 2,
                   exclude_seen: tuple[bool, ...] = (False,)) -> tuple[dict, bool, list[dict]]:
    """Coordinate search for the decoding policy with the best validation NDCG@10.

    ``evaluate(policy)`` returns validation metrics of a recommender decoding under ``policy``;
    ``grids[name]`` lists the weights tried for scorer ``name`` (0 = not fused); ``exclude_seen``
    the values tried for leaving the user's history out, a coordinate searched first. Starting from
    all zeros (the model alone) and the first ``exclude_seen``, each round tries every value of one
    coordinate with the others fixed, in turn, keeping the best (the first of equals: the smaller
    weight, the first ``exclude_seen``); a setting is evaluated once. Returns the best weights, the
    best ``exclude_seen`` and every evaluated setting's Recall@10 / NDCG@10 (± s.e.)."""
    choices = [bool(value) for value in dict.fromkeys(exclude_seen)]
    coordinates = {EXCLUDE_SEEN: choices} if len(choices) > 1 else {}
    coordinates.update({name: sorted(set(map(float, grid))) for name, grid in grids.items()})
    setting = {EXCLUDE_SEEN: bool(exclude_seen[0]), **{name: 0.0 for name in grids}}
    tried: dict[tuple, dict] = {}

    def score(candidate: dict) -> float:
        key = tuple(sorted(candidate.items()))
        if key not in tried:
            weights = {name: value for name, value in candidate.items() if name != EXCLUDE_SEEN}
            metrics = evaluate(DecodingPolicy.from_weights(weights, scorers, exclude_seen=candidate[EXCLUDE_SEEN]))
            tried[key] = {"weights": weights, EXCLUDE_SEEN: candidate[EXCLUDE_SEEN],
                          **{k: metrics[k] for k in ("recall@10", "recall@10_se", "ndcg@10", "ndcg@10_se")}}
        return tried[key]["ndcg@10"]

    score(setting)
    for _ in range(rounds if len(coordinates) > 1 else 1):
        for name, values in coordinates.items():
            best = max(values, key=lambda value: score({**setting, name: value}))
            setting[name] = best if score({**setting, name: best}) > score(setting) else setting[name]
    exclude = setting.pop(EXCLUDE_SEEN)
    return setting, exclude, list(tried.values())


EXCLUDE_SEEN = "exclude_seen"  # the decoding-policy coordinate chosen beside the weights


def prior_metrics(dataset, split: str, k: int = 30, exclude_seen: bool = False) -> dict[str, float]:
    """The transition prior alone as a baseline (like ``eval.popularity``): Recall / NDCG / MRR of
    its top ``k`` for every user of ``split``, full catalogue, fitted on the training sequences;
    ``exclude_seen``: no item of the user's history recommended."""
    from genrec.eval.ranking_metrics import ranking_metrics

    prior = TransitionPrior.fit(dataset.train_sequences(), dataset.num_items)
    examples = [dataset.split(user, split) for user in range(1, dataset.num_users + 1)]
    ranked = np.concatenate([prior.rank([h for h, _ in examples[start:start + 512]], k, exclude_seen)
                             for start in range(0, len(examples), 512)])
    return ranking_metrics(ranked, np.asarray([t for _, t in examples]))
