"""Recommendations from a trained model: the fast path (used everywhere) and the plain
``generate`` + LogitsProcessor path (the reference it is tested and benchmarked against)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import GenerationConfig, LogitsProcessorList

from recommender.constraint import TrieLogitsProcessor
from recommender.data import ExampleBuilder
from recommender.fast_beam import SidPrefixTable, constrained_beam_search
from recommender.vocab import PAD_TOKEN


def pad_rows(rows: list[np.ndarray], device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), PAD_TOKEN, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.from_numpy(np.asarray(row))
    ids = ids.to(device)
    return ids, (ids != PAD_TOKEN).long()


def table_items(table: SidPrefixTable, sequences: torch.Tensor) -> torch.Tensor:
    """Item rows of generated SID token sequences [n, L + 1] (-1 if not a real item)."""
    state = torch.zeros(sequences.shape[0], dtype=torch.long, device=sequences.device)
    for d in range(table.length):
        local = (sequences[:, d] - table.offsets[d]).clamp(0, table.sizes[d] - 1)
        valid = (state >= 0) & (sequences[:, d] >= table.offsets[d]) & (sequences[:, d] < table.offsets[d] + table.sizes[d])
        state = torch.where(valid, table.next_state[d][state.clamp(min=0), local], torch.full_like(state, -1))
    return state


def generate_reference(model, input_ids, attention_mask, table: SidPrefixTable, num_beams: int):
    """Plain HF beam search with the trie LogitsProcessor. Settings are passed explicitly, so a
    generation config saved with the model cannot change decoding."""
    length = table.length
    config = GenerationConfig(num_beams=num_beams, num_return_sequences=num_beams, do_sample=False,
                              max_new_tokens=length, min_new_tokens=length, length_penalty=0.0,
                              early_stopping=True, decoder_start_token_id=model.config.decoder_start_token_id,
                              pad_token_id=model.config.pad_token_id, eos_token_id=model.config.eos_token_id)
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                         logits_processor=LogitsProcessorList([TrieLogitsProcessor(table)]),
                         output_scores=True, return_dict_in_generate=True)
    rows = table_items(table, out.sequences[:, 1 : 1 + length]).view(input_ids.shape[0], num_beams)
    return rows, out.sequences_scores.view(input_ids.shape[0], num_beams)


@torch.no_grad()
def recommend_items(model, builder: ExampleBuilder, table: SidPrefixTable, histories: list[list[int]],
                    num_beams: int, users: list[int] | None = None, batch_size: int = 256,
                    progress: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Top ``num_beams`` item ids (1-based; 0 = no item) and scores for each history, best first."""
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    table = table.to(device)
    users = users or [0] * len(histories)
    items_out, scores_out = [], []
    for start in tqdm(range(0, len(histories), batch_size), desc="decode", disable=not progress, leave=False):
        rows = [builder.encode_history(h, u) for h, u in zip(histories[start : start + batch_size], users[start : start + batch_size])]
        ids, mask = pad_rows(rows, device)
        item_rows, scores = constrained_beam_search(model, ids, mask, table, num_beams)
        items_out.append((item_rows + 1).cpu().numpy())
        scores_out.append(scores.float().cpu().numpy())
    return np.concatenate(items_out), np.concatenate(scores_out)
