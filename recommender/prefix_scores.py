"""Per-prefix fused scores as the beam search reads them: a gather of (row, prefix state) pairs.

``constrained_beam_search(prior=...)`` needs, at each SID position d, the weighted log prior mass of
the prefix states its candidates reach. A scorer that is dense by nature (SASRec: a distribution
over the whole catalogue) gives ``[batch, num_states_d]`` tensors (``DensePrefixScores``). The
transition prior is sparse: a user's distribution is a few hundred items with counts plus the same
smoothing mass on every item, so ``SparsePrefixScores`` keeps only the states with counts (sorted
(row, state) keys) and computes every other state's mass from the number of items under it.
Nothing here is ever ``batch x catalogue``.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

MIN_MASS = 1e-300  # log of a zero mass (a state with no item) is clamped here, as in the dense path


class PrefixStates(list):
    """``states[d][item]``: item's length-d prefix state (d = 0..L; at d = L the item id itself),
    with the number of items under each state, per position (for the sparse masses). ``allowed``
    (bool ``[M + 1]``, a rule's items; None: all): the sizes count those items only."""

    allowed: np.ndarray | None = None

    @cached_property
    def sizes(self) -> list[np.ndarray]:
        weights = None if self.allowed is None else self.allowed[1:len(self[0])].astype(np.int64)
        return [np.bincount(states[1:], weights=weights, minlength=int(states.max()) + 1).astype(np.int64)
                for states in self]

    def restricted(self, allowed: np.ndarray) -> PrefixStates:
        """The same states, counting only the ``allowed`` items (``allowed[:M + 1]`` is read)."""
        out = PrefixStates(self)
        out.allowed = np.asarray(allowed[: len(self[0])], dtype=bool)
        return out

    def sizes_on(self, device) -> list[torch.Tensor]:
        cache = self.__dict__.setdefault("_sizes_on", {})
        key = str(device)
        if key not in cache:
            cache[key] = [torch.from_numpy(s.astype(np.float64)).to(device) for s in self.sizes]
        return cache[key]


class DensePrefixScores:
    """``tensors[d]``: ``[batch, num_states_d]`` weighted log masses (``fusion.prefix_log_prior``)."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = tensors

    def gather(self, position: int, states: torch.Tensor) -> torch.Tensor:
        return self.tensors[position].gather(1, states)


class SparsePrefixScores:
    """``weight * log`` of the prefix masses of q = (p + s) / (1 + s M) (M items, smoothing s) for a
    batch whose p is sparse (``p``: scipy csr ``[batch, M + 1]``, rows summing to 1) or, for rows
    without counts (``has_counts`` False), uniform 1 / M.

    A state t with n_t items and counted mass P_t = sum of p under it has mass (P_t + s n_t) / (1 + s M);
    a counted row's state with no counts has s n_t / (1 + s M), a uniform row's n_t (1/M + s) / (1 + s M).
    Only the (row, state) pairs with counts are stored, per position, as sorted keys
    row * num_states + state; a gather looks each pair up (searchsorted) and falls back to the
    analytic mass."""

    def __init__(self, p, has_counts: np.ndarray, states: PrefixStates, smoothing: float, weight: float,
                 device: torch.device | str = "cpu"):
        self.weight, self.device = float(weight), device
        num_items = len(states[-1]) - 1
        self.scale = 1.0 + smoothing * num_items
        self.smoothing = smoothing
        self.uniform = (1.0 / num_items + smoothing) / self.scale  # q of any item of a row without counts
        self.has_counts = torch.from_numpy(np.asarray(has_counts, dtype=bool)).to(device)
        self.sizes = states.sizes_on(device)
        rows = np.repeat(np.arange(p.shape[0], dtype=np.int64), np.diff(p.indptr))
        self.keys, self.values, self.widths = [], [], []
        for position, position_states in enumerate(states):
            width = len(self.sizes[position])
            keys, inverse = np.unique(rows * width + position_states[p.indices], return_inverse=True)
            mass = np.bincount(inverse.reshape(-1), weights=p.data, minlength=len(keys))
            mass = (mass + smoothing * states.sizes[position][keys % width]) / self.scale
            self.keys.append(torch.from_numpy(keys).to(device))
            self.values.append(torch.from_numpy(self.weight * np.log(np.maximum(mass, MIN_MASS))).to(device))
            self.widths.append(width)

    def gather(self, position: int, states: torch.Tensor) -> torch.Tensor:
        sizes = self.sizes[position][states]
        background = torch.where(self.has_counts[:, None], sizes * (self.smoothing / self.scale), sizes * self.uniform)
        out = self.weight * torch.log(background.clamp(min=MIN_MASS))
        index, found = find_keys(self.keys[position], self.widths[position], states)
        if found is not None:
            out = torch.where(found, self.values[position][index], out)
        return out.float()


def find_keys(keys: torch.Tensor, width: int, states: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Where each (row, state) pair of ``states [batch, n]`` sits among the sorted keys row * width +
    state, and whether it is there at all: (index, found), both ``[batch, n]``; (None, None) for no keys."""
    if not len(keys):
        return None, None
    wanted = torch.arange(states.shape[0], device=states.device)[:, None] * width + states
    index = torch.searchsorted(keys, wanted.reshape(-1)).clamp(max=len(keys) - 1).view_as(states)
    return index, keys[index] == wanted


class UnavailableItemMask:
    """-inf for every SID prefix with no item left to recommend, 0 elsewhere: every item under it is
    outside a rule's allowed items (``states.allowed``, the same for every row) or in the row's own
    history (``histories``; empty lists: none excluded). Added to the fused scores, it keeps the beam
    off such prefixes, so a beam of width W >= k ends with k available items whenever the catalogue
    has them. A row's dead (row, state) pairs are stored as sorted keys per position, like
    ``SparsePrefixScores``; nothing is ``batch x catalogue``."""

    def __init__(self, histories: list[list[int]], states: PrefixStates, device: torch.device | str = "cpu"):
        seen = [np.unique(np.asarray(h, dtype=np.int64)) for h in histories]
        if states.allowed is not None:  # a history item the rule leaves out is not under any count
            seen = [items[states.allowed[items]] for items in seen]
        rows = np.concatenate([np.full(len(items), row, dtype=np.int64) for row, items in enumerate(seen)] or
                              [np.zeros(0, dtype=np.int64)])
        items = np.concatenate(seen or [np.zeros(0, dtype=np.int64)])
        # states no allowed item is under (none without a rule): dead for every row
        self.empty = [torch.from_numpy(sizes == 0).to(device) if states.allowed is not None else None
                      for sizes in states.sizes]
        self.keys, self.widths = [], []
        for position, position_states in enumerate(states):
            width = len(states.sizes[position])
            keys, counts = np.unique(rows * width + position_states[items], return_counts=True)
            dead = keys[counts == states.sizes[position][keys % width]]  # every item under it is seen
            self.keys.append(torch.from_numpy(dead).to(device))
            self.widths.append(width)

    def gather(self, position: int, states: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(states.shape, dtype=torch.float32, device=states.device)
        if self.empty[position] is not None:
            out = out.masked_fill(self.empty[position][states], float("-inf"))
        _, dead = find_keys(self.keys[position], self.widths[position], states)
        return out if dead is None else out.masked_fill(dead, float("-inf"))


class PrefixScoreSum:
    """The sum of several scorers' prefix scores (each scorer's weight already applied)."""

    def __init__(self, parts: list):
        self.parts = parts

    def gather(self, position: int, states: torch.Tensor) -> torch.Tensor:
        total = self.parts[0].gather(position, states)
        for part in self.parts[1:]:
            total = total + part.gather(position, states)
        return total
