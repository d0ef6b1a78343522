"""Fast trie-constrained beam search for a T5 recommender.

``model.generate(num_beams=W)`` expands every user's encoder output to W copies and, at every step,
reorders and copies the whole cache (cross-attention keys/values included) for every beam. With
Semantic IDs only L + 1 tokens long, that bookkeeping, not the model, dominates decoding time.

This module decodes the same beams with:
  * the encoder run once per user, and cross-attention keys/values projected once per user and
    shared by all of that user's beams through broadcasting (never copied per beam);
  * the trie as dense per-position transition tables, so masking is one gather per step;
  * users batched, and only the (tiny) self-attention cache reordered between steps.

Scores are the same as ``generate`` with ``length_penalty=0``: the sum over steps of
``log_softmax`` over the full vocabulary, masked to the trie (``tests/test_fast_beam.py`` checks
that both paths return the same items and scores).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genrec.recommender.item_causal import encoder_hidden
from genrec.recommender.prefix_scores import DensePrefixScores
from genrec.recommender.trie import SidPrefixTable


@torch.no_grad()
def constrained_beam_search(
    model,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    table: SidPrefixTable,
    num_beams: int,
    prior=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``num_beams`` items per user, best first.

    Returns ``(items, scores)``, both ``[batch, num_beams]``: item ids (0 where the trie has fewer
    than ``num_beams`` items, with score -inf), scores = summed log-probabilities.

    ``prior`` (shallow fusion, ``recommender.fusion``): the weighted log prior mass of the length-d
    prefix states (position L: item ids) per SID position d = 0..L, as ``prior.gather(d, states
    [batch, n]) -> [batch, n]`` (``recommender.prefix_scores``; a list of dense ``[batch,
    num_states_d]`` tensors is accepted too). Each step then adds ``prior(d + 1, child) - prior(d,
    parent)`` to a candidate's score, so an item's final score is its log-probability plus its
    weighted log prior, and the beam is steered towards items the prior favours before it prunes.
    """
    if isinstance(prior, (list, tuple)):
        prior = DensePrefixScores(list(prior))
    config = model.config
    device = input_ids.device
    decoder = model.get_decoder()
    encoder_out = encoder_hidden(model, input_ids, attention_mask)  # bidirectional or item-causal
    batch = input_ids.shape[0]
    heads, head_dim = config.num_heads, config.d_kv
    blocks = list(decoder.block)
    dtype = encoder_out.dtype
    neg = torch.finfo(dtype).min

    def split_heads(x: torch.Tensor) -> torch.Tensor:  # [..., heads * head_dim] -> [..., heads, head_dim]
        return x.view(*x.shape[:-1], heads, head_dim)

    # Cross-attention keys/values: once per user, [batch, heads, source, head_dim].
    cross_kv = []
    for block in blocks:
        attn = block.layer[1].EncDecAttention
        cross_kv.append(
            (
                split_heads(attn.k(encoder_out)).transpose(1, 2),
                split_heads(attn.v(encoder_out)).transpose(1, 2),
            )
        )
    # Additive padding mask for the source, broadcast over beams and heads: [batch, 1, 1, source].
    source_bias = ((1.0 - attention_mask[:, None, None, :].to(dtype)) * neg).to(dtype)

    # Self-attention cache, one slot per SID position, rows = (user, beam): [batch * width, heads, length, hd].
    # Contiguous rows make the per-step beam reorder one index_select (a gather over an expanded
    # 5-d index, plus a cat to append, cost more than the decoder's matmuls).
    length = table.length
    self_k = [torch.zeros((batch, heads, length, head_dim), dtype=dtype, device=device) for _ in blocks]
    self_v = [torch.zeros((batch, heads, length, head_dim), dtype=dtype, device=device) for _ in blocks]
    row_base = torch.arange(batch, device=device)[:, None]
    tokens = torch.full((batch, 1), config.decoder_start_token_id, dtype=torch.long, device=device)
    states = torch.zeros((batch, 1), dtype=torch.long, device=device)
    beam_scores = torch.zeros((batch, 1), dtype=torch.float32, device=device)
    relative_bias_owner = blocks[0].layer[0].SelfAttention
    scale_output = getattr(config, "scale_decoder_outputs", getattr(config, "tie_word_embeddings", True))

    for step in range(table.length):
        width = tokens.shape[1]
        hidden = decoder.embed_tokens(tokens)  # [batch, width, d_model]
        position_bias = relative_bias_owner.compute_bias(1, step + 1, device=device, past_seen_tokens=step)
        position_bias = position_bias[0, :, 0, :].to(dtype)  # [heads, step + 1]
        for index, block in enumerate(blocks):
            # Self-attention over this beam's own SID prefix (the only per-beam cache).
            layer = block.layer[0]
            attn = layer.SelfAttention
            normed = layer.layer_norm(hidden)
            query = split_heads(attn.q(normed))  # [batch, width, heads, head_dim]
            cache_k = self_k[index].view(batch, width, heads, length, head_dim)
            cache_v = self_v[index].view(batch, width, heads, length, head_dim)
            cache_k[:, :, :, step] = split_heads(attn.k(normed))
            cache_v[:, :, :, step] = split_heads(attn.v(normed))
            # At most L + 1 keys per beam: broadcast products beat batching thousands of tiny matmuls.
            keys, values = cache_k[:, :, :, : step + 1], cache_v[:, :, :, : step + 1]
            scores = (query.unsqueeze(3) * keys).sum(-1) + position_bias  # [batch, width, heads, step + 1]
            context = (scores.softmax(dim=-1).unsqueeze(-1) * values).sum(3)  # [batch, width, heads, hd]
            hidden = hidden + attn.o(context.reshape(batch, width, -1))
            # Cross-attention: every beam of a user reads the same keys/values.
            layer = block.layer[1]
            attn = layer.EncDecAttention
            query = split_heads(attn.q(layer.layer_norm(hidden))).transpose(1, 2)  # [batch, heads, width, hd]
            cross_k, cross_v = cross_kv[index]
            scores = torch.matmul(query, cross_k.transpose(2, 3)) + source_bias
            context = torch.matmul(scores.softmax(dim=-1), cross_v).transpose(1, 2)  # [batch, width, heads, hd]
            hidden = hidden + attn.o(context.reshape(batch, width, -1))
            hidden = block.layer[2](hidden)
        hidden = decoder.final_layer_norm(hidden)
        if scale_output:
            hidden = hidden * (config.d_model**-0.5)
        log_probs = F.log_softmax(model.lm_head(hidden).float(), dim=-1)  # normalised over the full vocab
        start, size = table.offsets[step], table.sizes[step]
        log_probs = log_probs[..., start : start + size]
        next_states = table.next_state[step][states]  # [batch, width, size]
        if prior is not None:  # telescoping: sums to the item's own prior at the last position
            child = prior.gather(step + 1, next_states.clamp(min=0).view(batch, -1)).view_as(next_states)
            parent_prior = prior.gather(step, states.clamp(min=0))  # [batch, width]; -1 = a dead beam
            step_prior = child - parent_prior.unsqueeze(-1)
            # A parent at -inf (a prefix masked dead, or a dead beam's placeholder state) gives nan or
            # +inf here; its children stay dead.
            step_prior = step_prior.masked_fill(torch.isnan(step_prior) | (step_prior == float("inf")), float("-inf"))
            log_probs = log_probs + step_prior
        candidates = beam_scores.unsqueeze(-1) + log_probs.masked_fill(next_states < 0, float("-inf"))
        keep = min(num_beams, width * size)
        beam_scores, flat = candidates.view(batch, -1).topk(keep, dim=-1)
        parent = torch.div(flat, size, rounding_mode="floor")
        local = flat % size
        states = next_states.view(batch, -1).gather(1, flat)
        tokens = local + start
        rows = (parent + row_base * width).view(-1)  # parent beam's row in the [batch * width] cache
        for index in range(len(blocks)):
            self_k[index] = self_k[index].index_select(0, rows)
            self_v[index] = self_v[index].index_select(0, rows)

    dead = torch.isinf(beam_scores)
    items = states.masked_fill(dead, 0)
    if items.shape[1] < num_beams:  # fewer (prefix, token) pairs than beams: pad with misses
        pad = num_beams - items.shape[1]
        items = F.pad(items, (0, pad), value=0)
        beam_scores = F.pad(beam_scores, (0, pad), value=float("-inf"))
    return items, beam_scores
