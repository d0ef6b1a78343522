"""The SID trie as dense per-position transition tables: what the constrained decoders walk."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from genrec.tokenizer.semantic_ids import prefix_ranks, sorted_rows


@dataclass
class SidPrefixTable:
    """The SID trie as one dense transition table per SID position.

    Position ``d`` has ``sizes[d]`` possible tokens, global ids ``offsets[d] .. offsets[d] + sizes[d] - 1``.
    ``next_state[d][s, j]`` is the state reached from prefix-state ``s`` (a distinct prefix of
    length ``d``) by local token ``j``, or -1 if no item has that prefix. At the last position
    the "state" is the item id (1..M, the dataset's numbering), so decoding returns item ids.
    """

    offsets: tuple[int, ...]
    sizes: tuple[int, ...]
    next_state: list[torch.Tensor]  # next_state[d]: int64 [num_prefixes_d, sizes[d]]

    @property
    def length(self) -> int:
        return len(self.sizes)

    @cached_property
    def children(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Per position d, each prefix state's children packed to the left: ``(tokens, states,
        counts)``, tokens and states ``[num_prefixes_d, max_children_d]`` (the local tokens in
        increasing order and the states they reach, padded with token 0 / state -1) and each
        state's number of children. A beam step reads only as many columns as its beams' prefixes
        have children (deep in the trie most prefixes have 1-20 of ``sizes[d]`` = 256 tokens)."""
        out = []
        for table in self.next_state:
            valid = table >= 0
            counts = valid.sum(1)
            width = max(int(counts.max()), 1)
            tokens = torch.argsort((~valid).to(torch.int8), dim=1, stable=True)[:, :width]  # valid columns first
            states = table.gather(1, tokens)
            out.append((tokens.masked_fill(states < 0, 0), states, counts))
        return out

    @classmethod
    def from_codes(cls, codes: np.ndarray, offsets: tuple[int, ...], sizes: tuple[int, ...]) -> "SidPrefixTable":
        """Build from local codes ``[num_items, P]`` (position d's code in ``0 .. sizes[d] - 1``)."""
        codes = np.asarray(codes, dtype=np.int64)
        num_items, length = codes.shape
        if length != len(sizes) or length != len(offsets):
            raise ValueError(f"codes have {length} positions but {len(sizes)} sizes / {len(offsets)} offsets")
        if (codes < 0).any() or (codes >= np.asarray(sizes)[None, :]).any():
            raise ValueError("a code is outside its position's vocabulary")
        # state_of[d][i]: id of item i's prefix of length d among all distinct length-d prefixes, in
        # lexicographic order; one sort of the full codes gives every prefix length.
        order, changed = sorted_rows(codes)
        if not changed[:, -1].all():
            raise ValueError("two items share a full Semantic ID; the collision suffix must make them unique")
        state_of = [np.zeros(num_items, dtype=np.int64)]
        state_of.extend(prefix_ranks(order, changed[:, d - 1]) for d in range(1, length))
        state_of.append(np.arange(1, num_items + 1, dtype=np.int64))  # item ids
        tables = []
        for d in range(length):
            table = np.full((int(state_of[d].max()) + 1, sizes[d]), -1, dtype=np.int64)
            table[state_of[d], codes[:, d]] = state_of[d + 1]
            tables.append(torch.from_numpy(table))
        return cls(offsets=tuple(offsets), sizes=tuple(sizes), next_state=tables)

    def to(self, device: torch.device | str) -> "SidPrefixTable":
        """This table on ``device`` (itself when it is there already, its child tables kept)."""
        if all(t.device == torch.device(device) for t in self.next_state):
            return self
        return SidPrefixTable(self.offsets, self.sizes, [t.to(device) for t in self.next_state])
