"""Fast trie-constrained beam search for a T5 recommender.

``model.generate(num_beams=W)`` expands every user's encoder output to W copies and, at every step,
reorders and copies the whole cache (cross-attention keys/values included) for every beam. With
Semantic IDs only L + 1 tokens long, that bookkeeping, not the model, dominates decoding time.

This module decodes the same beams with:
  * the encoder run once per user, and cross-attention keys/values projected once per user and
    shared by all of that user's beams through broadcasting (never copied per beam);
  * the trie as per-position child tables (``SidPrefixTable.children``), so each step scores, fuses
    and ranks only the tokens that stay in the trie (on Beauty 1-20 per prefix below the first
    level, not the position's 256), each user's (beam, child) pairs packed into one row;
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


class _BeamDecoder:
    """The T5 decoder run for every (user, beam) row at once: cross-attention keys/values projected
    once per user and shared by its beams, a per-row self-attention cache of the SID prefix."""

    def __init__(self, model, encoder_out: torch.Tensor, attention_mask: torch.Tensor, length: int):
        config = model.config
        self.model, self.config, self.length = model, config, length
        self.decoder = model.get_decoder()
        self.blocks = list(self.decoder.block)
        self.heads, self.head_dim = config.num_heads, config.d_kv
        self.batch, self.dtype, self.device = encoder_out.shape[0], encoder_out.dtype, encoder_out.device
        neg = torch.finfo(self.dtype).min
        # Cross-attention keys/values: once per user, [batch, heads, source, head_dim].
        self.cross_kv = []
        for block in self.blocks:
            attn = block.layer[1].EncDecAttention
            self.cross_kv.append((self.split_heads(attn.k(encoder_out)).transpose(1, 2),
                                  self.split_heads(attn.v(encoder_out)).transpose(1, 2)))
        # Additive padding mask for the source, broadcast over beams and heads: [batch, 1, 1, source].
        self.source_bias = ((1.0 - attention_mask[:, None, None, :].to(self.dtype)) * neg).to(self.dtype)
        # Self-attention cache, slot-major: [length, batch * width, heads, hd], rows = (user, beam). The
        # per-step beam reorder is one index_select over the slots filled so far, into a contiguous
        # block (a gather over an expanded 5-d index, plus a cat to append, cost more than the matmuls).
        shape = (length, self.batch, self.heads, self.head_dim)
        self.self_k = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.blocks]
        self.self_v = [torch.zeros(shape, dtype=self.dtype, device=self.device) for _ in self.blocks]
        self.relative_bias_owner = self.blocks[0].layer[0].SelfAttention
        self.scale_output = getattr(config, "scale_decoder_outputs", getattr(config, "tie_word_embeddings", True))

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:  # [..., heads * head_dim] -> [..., heads, head_dim]
        return x.view(*x.shape[:-1], self.heads, self.head_dim)

    def log_probs(self, tokens: torch.Tensor, step: int) -> torch.Tensor:
        """[batch, width, vocab] log-softmax of the next token after each row's prefix ending in ``tokens``."""
        batch, width, heads, head_dim, length = self.batch, tokens.shape[1], self.heads, self.head_dim, self.length
        hidden = self.decoder.embed_tokens(tokens)  # [batch, width, d_model]
        position_bias = self.relative_bias_owner.compute_bias(1, step + 1, device=self.device, past_seen_tokens=step)
        position_bias = position_bias[0, :, 0, :].to(self.dtype)  # [heads, step + 1]
        for index, block in enumerate(self.blocks):
            # Self-attention over this beam's own SID prefix (the only per-beam cache).
            layer = block.layer[0]
            attn = layer.SelfAttention
            normed = layer.layer_norm(hidden)
            query = self.split_heads(attn.q(normed))  # [batch, width, heads, head_dim]
            cache_k = self.self_k[index].view(length, batch, width, heads, head_dim)
            cache_v = self.self_v[index].view(length, batch, width, heads, head_dim)
            cache_k[step] = self.split_heads(attn.k(normed))
            cache_v[step] = self.split_heads(attn.v(normed))
            # At most L + 1 keys per beam: broadcast products beat batching thousands of tiny matmuls.
            keys = cache_k[: step + 1].permute(1, 2, 3, 0, 4)  # [batch, width, heads, step + 1, hd]
            values = cache_v[: step + 1].permute(1, 2, 3, 0, 4)
            scores = (query.unsqueeze(3) * keys).sum(-1) + position_bias  # [batch, width, heads, step + 1]
            context = (scores.softmax(dim=-1).unsqueeze(-1) * values).sum(3)  # [batch, width, heads, hd]
            hidden = hidden + attn.o(context.reshape(batch, width, -1))
            # Cross-attention: every beam of a user reads the same keys/values.
            layer = block.layer[1]
            attn = layer.EncDecAttention
            query = self.split_heads(attn.q(layer.layer_norm(hidden))).transpose(1, 2)  # [batch, heads, width, hd]
            cross_k, cross_v = self.cross_kv[index]
            scores = torch.matmul(query, cross_k.transpose(2, 3)) + self.source_bias
            context = torch.matmul(scores.softmax(dim=-1), cross_v).transpose(1, 2)  # [batch, width, heads, hd]
            hidden = hidden + attn.o(context.reshape(batch, width, -1))
            hidden = block.layer[2](hidden)
        hidden = self.decoder.final_layer_norm(hidden)
        if self.scale_output:
            hidden = hidden * (self.config.d_model**-0.5)
        return F.log_softmax(self.model.lm_head(hidden).float(), dim=-1)  # normalised over the full vocab

    def reorder(self, rows: torch.Tensor, filled: int) -> None:
        """Keep the cache rows of the surviving beams' parents (row indices into [batch * width]);
        only the first ``filled`` slots hold keys and values yet."""
        for cache in (self.self_k, self.self_v):
            for index, old in enumerate(cache):
                new = old.new_empty((old.shape[0], len(rows), *old.shape[2:]))
                torch.index_select(old[:filled], 1, rows, out=new[:filled])
                cache[index] = new


def _candidates(children, states: torch.Tensor, beam_scores: torch.Tensor):
    """The (beam, child) pairs of this step, each user's packed into one row: ``(local tokens,
    child states, parent beam)``, each ``[batch, candidates]`` in (beam, child) order, -1 states
    where a row has fewer candidates than the widest. Ragged, not ``[batch, width, most children]``:
    in a large catalogue a few prefixes have hundreds of children (the 1M synthetic trie: 850 after
    one 3-code prefix, 1.8 on average), and padding every beam to them multiplied the gathers.
    Dead beams (score -inf) have no children."""
    child_tokens, child_states, child_counts = children
    batch, width = states.shape
    counts = child_counts[states.clamp(min=0)].masked_fill((states < 0) | torch.isinf(beam_scores), 0).view(-1)
    per_user = counts.view(batch, width).sum(1)
    size = max(int(per_user.max()), 1)
    source = torch.repeat_interleave(torch.arange(batch * width, device=states.device), counts)  # beam row
    order = torch.arange(len(source), device=states.device)
    child = order - (torch.cumsum(counts, 0) - counts)[source]  # index among its beam's children
    user = torch.div(source, width, rounding_mode="floor")
    slot = order - (torch.cumsum(per_user, 0) - per_user)[user]  # place in its user's row
    parent_state = states.view(-1)[source]
    local = torch.zeros((batch, size), dtype=torch.long, device=states.device)
    next_states = torch.full((batch, size), -1, dtype=torch.long, device=states.device)
    parent_of = torch.zeros((batch, size), dtype=torch.long, device=states.device)
    local[user, slot] = child_tokens[parent_state, child]
    next_states[user, slot] = child_states[parent_state, child]
    parent_of[user, slot] = source - user * width
    return local, next_states, parent_of


def _fused(log_probs: torch.Tensor, prior, step: int, states: torch.Tensor, next_states: torch.Tensor,
           parent_of: torch.Tensor) -> torch.Tensor:
    """``log_probs`` plus each child's prior minus its parent's (telescoping: the sum over steps is the
    item's own weighted log prior)."""
    child = prior.gather(step + 1, next_states.clamp(min=0))
    parent_prior = prior.gather(step, states.clamp(min=0)).gather(1, parent_of)  # -1 = a dead beam
    step_prior = child - parent_prior
    # A parent at -inf (a prefix masked dead, or a dead beam's placeholder state) gives nan or +inf
    # here; its children stay dead.
    step_prior = step_prior.masked_fill(torch.isnan(step_prior) | (step_prior == float("inf")), float("-inf"))
    return log_probs + step_prior


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
    device = input_ids.device
    encoder_out = encoder_hidden(model, input_ids, attention_mask)  # bidirectional or item-causal
    beams = _BeamDecoder(model, encoder_out, attention_mask, table.length)
    batch = input_ids.shape[0]
    row_base = torch.arange(batch, device=device)[:, None]
    tokens = torch.full((batch, 1), model.config.decoder_start_token_id, dtype=torch.long, device=device)
    states = torch.zeros((batch, 1), dtype=torch.long, device=device)
    beam_scores = torch.zeros((batch, 1), dtype=torch.float32, device=device)

    for step in range(table.length):
        width = tokens.shape[1]
        start = table.offsets[step]
        local, next_states, parent_of = _candidates(table.children[step], states, beam_scores)
        log_probs = beams.log_probs(tokens, step).view(batch, width, -1)
        log_probs = log_probs[row_base, parent_of, local + start]  # [batch, candidates]
        if prior is not None:
            log_probs = _fused(log_probs, prior, step, states, next_states, parent_of)
        candidates = beam_scores.gather(1, parent_of) + log_probs.masked_fill(next_states < 0, float("-inf"))
        keep = min(num_beams, candidates.shape[1])
        beam_scores, flat = candidates.topk(keep, dim=-1)
        parent = parent_of.gather(1, flat)
        states = next_states.gather(1, flat)
        tokens = local.gather(1, flat) + start
        if step + 1 < table.length:  # each parent beam's row in the [batch * width] cache
            beams.reorder((parent + row_base * width).view(-1), filled=step + 1)

    dead = torch.isinf(beam_scores)
    items = states.masked_fill(dead, 0)
    if items.shape[1] < num_beams:  # fewer (prefix, token) pairs than beams: pad with misses
        pad = num_beams - items.shape[1]
        items = F.pad(items, (0, pad), value=0)
        beam_scores = F.pad(beam_scores, (0, pad), value=float("-inf"))
    return items, beam_scores
