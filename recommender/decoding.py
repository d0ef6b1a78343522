"""Recommendations from a trained model: the fast path (used everywhere) and the plain
``generate`` + LogitsProcessor path (the reference it is tested and benchmarked against)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import DynamicCache, EncoderDecoderCache, GenerationConfig, LogitsProcessorList
from transformers.modeling_outputs import BaseModelOutput

from genrec.recommender.constraint import TrieLogitsProcessor, prefix_states
from genrec.recommender.data import ExampleBuilder
from genrec.recommender.encoder_input import attention_mask_of
from genrec.recommender.fast_beam import constrained_beam_search
from genrec.recommender.trie import SidPrefixTable
from genrec.recommender.item_causal import encoder_hidden
from genrec.recommender.vocab import PAD_TOKEN


def pad_rows(rows: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder rows (token ids [T] or per-item groups [T, L + 1]) right-padded into one batch, and its mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width, *np.shape(rows[0])[1:]), PAD_TOKEN, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.from_numpy(np.asarray(row))
    ids = ids.to(device)
    return ids, attention_mask_of(ids)


def generate_reference(model, input_ids, attention_mask, table: SidPrefixTable, num_beams: int):
    """Plain HF beam search with the trie LogitsProcessor: item ids (0 = no item) and scores
    ``[batch, num_beams]``, best first.

    Settings are explicit, and the model's own ``generation_config`` (e.g. a saved
    ``generation_config.json``) is swapped out for the call: transformers 5 fills every setting
    left unset from it (repetition penalty, n-gram blocking, ...), which would silently change
    decoding. When the catalog has fewer items than beams, generate pads with near -inf
    hypotheses that may repeat an item; those slots become misses (0).
    """
    length = table.length
    config = GenerationConfig(num_beams=num_beams, num_return_sequences=num_beams, do_sample=False,
                              max_new_tokens=length, min_new_tokens=length, length_penalty=0.0,
                              early_stopping=True, repetition_penalty=1.0, no_repeat_ngram_size=0,
                              output_scores=True, return_dict_in_generate=True,
                              decoder_start_token_id=model.config.decoder_start_token_id,
                              pad_token_id=model.config.pad_token_id, eos_token_id=model.config.eos_token_id)
    saved = model.generation_config
    model.generation_config = config
    try:
        # A cache that grows per layer: the one generate builds from the config assumes as many
        # decoder layers as encoder layers (num_hidden_layers), which breaks asymmetric models.
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        # The encoder output is passed in, so an item-causal encoder keeps its own mask while
        # generate's cross-attention uses the plain padding mask.
        encoded = BaseModelOutput(last_hidden_state=encoder_hidden(model, input_ids, attention_mask))
        # Per-item rows are not token ids: generate then takes the batch size from encoder_outputs.
        out = model.generate(input_ids=input_ids if input_ids.dim() == 2 else None, attention_mask=attention_mask,
                             encoder_outputs=encoded,
                             generation_config=config, logits_processor=LogitsProcessorList([TrieLogitsProcessor(table)]),
                             cache=cache)
    finally:
        model.generation_config = saved
    batch = input_ids.shape[0]
    items = prefix_states(table, out.sequences[:, 1 : 1 + length]).view(batch, num_beams)
    scores = out.sequences_scores.view(batch, num_beams)
    repeated = (items[:, :, None] == items[:, None, :]).tril(diagonal=-1).any(-1)
    dead = repeated | (scores < -1e8) | (items <= 0)  # generate marks impossible beams with about -1e9
    return items.masked_fill(dead, 0), scores.masked_fill(dead, float("-inf"))


def length_sorted_batches(rows: list[np.ndarray], batch_size: int) -> list[np.ndarray]:
    """Index batches of ``rows`` in order of length, so each batch pads to about its own length.

    Histories vary from a few to ``max_history`` items; random batches pad nearly every row to the
    longest, and the encoder and cross-attention then spend most of their time on padding."""
    order = np.argsort(np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows)), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


@torch.no_grad()
def recommend_items(model, builder: ExampleBuilder, table: SidPrefixTable, histories: list[list[int]],
                    num_beams: int, users: list[int] | None = None, batch_size: int = 256,
                    progress: bool = False, prior=None) -> tuple[np.ndarray, np.ndarray]:
    """Top ``num_beams`` item ids (1-based; 0 = no item) and scores for each history, best first.
    ``prior(histories, device)``: per-prefix weighted log prior masses fused into the beam
    (``DecodingPolicy.prefix_log_prior``), or None."""
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    table = table.to(device)
    users = users or [0] * len(histories)
    rows = [builder.encode_history(h, u) for h, u in zip(histories, users)]
    items_out = np.zeros((len(rows), num_beams), dtype=np.int64)
    scores_out = np.zeros((len(rows), num_beams), dtype=np.float32)
    for batch in tqdm(length_sorted_batches(rows, batch_size), desc="decode", disable=not progress, leave=False):
        ids, mask = pad_rows([rows[i] for i in batch], device)
        masses = None if prior is None else prior([histories[i] for i in batch], device)
        items, scores = constrained_beam_search(model, ids, mask, table, num_beams, prior=masses)
        items_out[batch] = items.cpu().numpy()
        scores_out[batch] = scores.float().cpu().numpy()
    return items_out, scores_out
