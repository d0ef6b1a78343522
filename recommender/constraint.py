"""The trie constraint for ``model.generate``: a vectorized LogitsProcessor, plus a marisa-trie
index of all full SIDs for compact storage, validity checks and SID -> item lookups."""

from __future__ import annotations

import marisa_trie
import numpy as np
import torch
from transformers import LogitsProcessor

from genrec.recommender.fast_beam import SidPrefixTable
from genrec.recommender.vocab import EOS_TOKEN


class SidIndex:
    """Every item's full SID in a marisa RecordTrie: key "c1-c2-...-s" -> item row (id - 1)."""

    def __init__(self, codes: np.ndarray):
        keys = ["-".join(map(str, row)) for row in np.asarray(codes).tolist()]
        self.trie = marisa_trie.RecordTrie("<i", zip(keys, ((i,) for i in range(len(keys)))))

    def item_row(self, codes) -> int | None:
        values = self.trie.get("-".join(str(int(c)) for c in codes))
        return values[0][0] if values else None

    def is_valid(self, codes) -> bool:
        return self.item_row(codes) is not None

    def has_prefix(self, codes) -> bool:
        prefix = "-".join(str(int(c)) for c in codes)
        return next(iter(self.trie.iterkeys(prefix)), None) is not None


class TrieLogitsProcessor(LogitsProcessor):
    """Masks (to -inf) every token that would leave the SID trie; after a full SID only eos.

    State lookup is tensor ops over all beams at once: walk the per-position transition tables
    (``SidPrefixTable``: the prefix id of every distinct SID prefix and its allowed next tokens)
    with the tokens generated so far (at most L + 1 gathers), then one gather gives the allowed
    tokens of every beam. No Python loop over beams.
    """

    def __init__(self, table: SidPrefixTable):
        self.table = table

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - 1  # input_ids starts with the decoder start token
        masked = torch.full_like(scores, float("-inf"))
        if step >= self.table.length:
            masked[:, EOS_TOKEN] = scores[:, EOS_TOKEN]
            return masked
        state = prefix_states(self.table, input_ids[:, 1:])
        allowed = self.table.next_state[step][state.clamp(min=0)] >= 0  # [beams, size]
        allowed &= (state >= 0)[:, None]
        start = self.table.offsets[step]
        window = scores[:, start : start + self.table.sizes[step]]
        masked[:, start : start + self.table.sizes[step]] = window.masked_fill(~allowed, float("-inf"))
        return masked


def prefix_states(table: SidPrefixTable, tokens: torch.Tensor) -> torch.Tensor:
    """Trie state of each row of generated SID tokens ``[n, d]`` (d <= L + 1), -1 where the row
    has left the trie. After all L + 1 tokens the state is the item row (item id - 1).

    One gather per position over all rows at once. A dead beam (possible when a catalog has fewer
    items than beams, so generate keeps -inf hypotheses) may hold any token; it stays at -1.
    """
    state = torch.zeros(tokens.shape[0], dtype=torch.long, device=tokens.device)
    for d in range(tokens.shape[1]):
        local = tokens[:, d] - table.offsets[d]
        inside = (state >= 0) & (local >= 0) & (local < table.sizes[d])
        reached = table.next_state[d][state.clamp(min=0), local.clamp(0, table.sizes[d] - 1)]
        state = torch.where(inside, reached, torch.full_like(state, -1))
    return state
