"""What the encoder reads for a history: one position per SID token, or one per item.

``RecommenderConfig.encoder_input``:

* ``"tokens"`` (TIGER): every SID token of every history item is its own encoder position, so a
  20-item history is 80 positions (+ eos, + the optional user token). Encoder rows are 1-D token ids.
* ``"items"``: one encoder position per item, its input vector the sum of the (shared, tied)
  embeddings of the item's L + 1 SID tokens; the user token and eos are positions of their own.
  Encoder rows are 2-D, ``[positions, L + 1]``: an item's SID tokens, or a special token followed by
  padding. No new parameters: the model is the same T5, fed ``inputs_embeds``; a 4x shorter encoder
  input makes its attention and feed-forward ~4x cheaper per example. A model with an
  ``item_input`` (``recommender.item_input``) adds its item's text and id vectors to the sum.
"""

from __future__ import annotations

import torch

from genrec.recommender.vocab import PAD_TOKEN



def attention_mask_of(input_ids: torch.Tensor) -> torch.Tensor:
    """Padding mask [B, T] of encoder rows: token ids [B, T] or per-item token groups [B, T, L + 1]."""
    first = input_ids if input_ids.dim() == 2 else input_ids[..., 0]
    return (first != PAD_TOKEN).long()


def encoder_kwargs(model, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """The encoder's input argument: ``input_ids`` as they are, or per-item groups summed into
    ``inputs_embeds`` [B, T, d] (padding entries of a group contribute nothing)."""
    if input_ids.dim() == 2:
        return {"input_ids": input_ids}
    base = getattr(model, "module", model)  # unwrap DDP
    embed = base.get_input_embeddings()  # the tied shared table
    vectors = (embed(input_ids) * (input_ids != PAD_TOKEN).unsqueeze(-1).to(embed.weight.dtype)).sum(dim=-2)
    item_input = getattr(base, "item_input", None)  # text / id vectors of each position's item
    if item_input is not None:
        vectors = vectors + item_input(input_ids).to(vectors.dtype)
    return {"inputs_embeds": vectors}
