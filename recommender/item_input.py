"""What an encoder position knows of its item beyond the SID-token sum: a projection of the item's
text embedding and a learned item-id embedding, as SASRec's item vectors have.

With ``encoder_input="items"`` a history position is the sum of its item's SID-token embeddings
(``recommender.encoder_input``), so the T5 sees an item only through its quantised ID: two items
that share a prefix look alike, and the text the SID was made from is gone. ``ItemInput`` adds,
per position,

    x_t = sum_l E[c_l(i_t)] + W_text e(i_t) + m(i_t) V[i_t]

with e(i) the item's unit text embedding (fixed), W_text a learned projection, V a learned id
table and m(i) ~ Bernoulli(1 - id_dropout) drawn per item and training step (1 at inference): the
id dropout of DropoutNet (Volkovs et al., NeurIPS 2017) that SASRec here uses too, so the model
must also read an item from its SID and text alone, as it has to for an item added after training
(whose id vector is never trained: zeros, ``recommender.model.grown_item_state``).

The item behind a position is found from its SID tokens (an item's L + 1 tokens are unique), so
encoder rows, example building and decoding stay as they are; the lookup is a sorted key table.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn

from genrec.recommender.new_items import unit_rows
from genrec.recommender.vocab import PAD_TOKEN


def group_keys(groups: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """One int64 key per SID-token group [..., L + 1] (mixed radix ``vocab_size``)."""
    keys = torch.zeros(groups.shape[:-1], dtype=torch.long, device=groups.device)
    for column in range(groups.shape[-1]):
        keys = keys * vocab_size + groups[..., column].long()
    return keys


def fits_in_keys(vocab_size: int, group_width: int) -> bool:
    return group_width * math.log2(max(vocab_size, 2)) < 63


class ItemInput(nn.Module):
    """Text projection and / or id embedding of the item at each per-item encoder position.

    ``item_tokens`` [M, L + 1]: each item's SID tokens (item i at row i - 1); ``text`` [M, d_text]
    or None (no text part); ``use_ids``: learn an id table. The text rows are a buffer saved with the
    model (as SASRec's text table); the key table is rebuilt from the SIDs on load."""

    def __init__(self, item_tokens: np.ndarray, vocab_size: int, d_model: int, text: np.ndarray | None = None,
                 use_ids: bool = True, id_dropout: float = 0.5, dense_head: bool = False):
        super().__init__()
        item_tokens = np.asarray(item_tokens, dtype=np.int64)
        if not fits_in_keys(vocab_size, item_tokens.shape[1]):
            raise ValueError(f"{item_tokens.shape[1]} SID tokens of a {vocab_size}-token vocabulary do not fit an int64 key")
        keys = group_keys(torch.from_numpy(item_tokens), vocab_size)
        order = torch.argsort(keys)
        self.vocab_size, self.id_dropout, self.num_items = vocab_size, float(id_dropout), len(item_tokens)
        self.keep: torch.Tensor | None = None  # the last forward pass's id dropout mask (None: no dropout)
        # Rebuilt from the SIDs on load (they grow with add-items), so not part of the saved state.
        self.register_buffer("sorted_keys", keys[order], persistent=False)
        self.register_buffer("sorted_items", order + 1, persistent=False)  # item ids 1..M
        self.text_proj = None
        if text is not None:
            rows = unit_rows(text)  # row 0: no item
            self.register_buffer("text", torch.from_numpy(rows))
            self.text_proj = nn.Linear(rows.shape[1], d_model, bias=False)
            nn.init.normal_(self.text_proj.weight, std=1.0)  # a unit text vector -> entries of std 1, as E's
        self.ids = None
        if use_ids:
            self.ids = nn.Embedding(len(item_tokens) + 1, d_model, padding_idx=0)
            nn.init.normal_(self.ids.weight, std=1.0)
            with torch.no_grad():
                self.ids.weight[0].zero_()
        self.dense_head = nn.Linear(d_model, d_model) if dense_head else None  # dense_item_loss's query

    def item_ids(self, groups: torch.Tensor) -> torch.Tensor:
        """Item id [B, T] of each group [B, T, L + 1]; 0 for padding, special tokens and unknown SIDs."""
        keys = group_keys(groups, self.vocab_size)
        where = torch.searchsorted(self.sorted_keys, keys).clamp(max=self.num_items - 1)
        found = (self.sorted_keys[where] == keys) & (groups[..., 0] != PAD_TOKEN)
        return torch.where(found, self.sorted_items[where], torch.zeros_like(keys))

    def item_vectors(self, items: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """[..., d] projected text + id vector of each item id (0: zeros); ``keep`` [M + 1] the id
        dropout mask of this step (None: every id kept)."""
        out = 0.0
        if self.text_proj is not None:
            out = out + self.text_proj(self.text[items])
        if self.ids is not None:
            vectors = self.ids(items)
            if keep is not None:
                vectors = vectors * keep[items].unsqueeze(-1).to(vectors.dtype)
            out = out + vectors
        return out

    def id_keep_mask(self, device) -> torch.Tensor | None:
        """This step's id dropout: which items keep their id vector (None at inference or p = 0)."""
        if not (self.training and self.ids is not None and self.id_dropout > 0):
            return None
        return torch.rand(self.num_items + 1, device=device) >= self.id_dropout

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        """[B, T, d]: what ``x_t`` adds to the SID-token sum (zeros where no item). The pass's id
        dropout mask stays in ``keep`` so that the dense loss of the same pass drops the same ids."""
        items = self.item_ids(groups)
        self.keep = self.id_keep_mask(items.device)
        return self.item_vectors(items, self.keep)


def dense_item_loss(item_input: ItemInput, hidden: torch.Tensor, attention_mask: torch.Tensor,
                    labels: torch.Tensor, negatives: int = 0) -> torch.Tensor:
    """The dense objective LIGER (Yang et al., 2024) trains beside generative retrieval: the
    encoder's mean-pooled history state, through a linear head, scores items by a dot product with
    their vectors (``item_vectors``, with the id dropout mask of the same forward pass) under a softmax, the target item's
    cross-entropy the loss. It gives the encoder SASRec's item-level signal; decoding is unchanged.
    ``labels`` [B, L + 1]: the target's SID tokens (its item is found as for inputs). ``negatives``
    > 0: the softmax runs over the batch's targets plus that many items drawn uniformly (shared by
    the batch), not the whole catalogue, whose text projection would cost more than the T5 step."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    targets = item_input.item_ids(labels.clamp(min=0).unsqueeze(1)).squeeze(1)
    device = hidden.device
    if 0 < negatives < item_input.num_items:
        drawn = torch.randint(1, item_input.num_items + 1, (negatives,), device=device)
        candidates, targets = torch.unique(torch.cat([targets, drawn]), return_inverse=True)
        targets = targets[:len(labels)]
    else:
        candidates = torch.arange(1, item_input.num_items + 1, device=device)
        targets = targets - 1
    table = item_input.item_vectors(candidates, item_input.keep)  # the ids the encoder input dropped, dropped here too
    logits = item_input.dense_head(pooled) @ table.T.to(pooled.dtype)
    return torch.nn.functional.cross_entropy(logits.float(), targets)
