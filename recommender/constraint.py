"""The trie constraint for ``model.generate``: a vectorized LogitsProcessor over the dense
per-position trie tables (``SidPrefixTable``).

The tables, not a marisa-trie, hold the SID trie: masking must be a tensor gather per step over
all beams, which a string trie cannot give. marisa-trie keeps the raw-id lookups
(``data_prep.dataset``)."""

from __future__ import annotations

import torch
from transformers import LogitsProcessor

from genrec.recommender.trie import SidPrefixTable
from genrec.recommender.vocab import EOS_TOKEN


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
    has left the trie. After all L + 1 tokens the state is the item id.

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
