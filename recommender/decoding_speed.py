"""Decoding throughput of one way to get each user's top ``beams`` items (bench code).

* ``plain``: ``model.generate`` with ``prefix_allowed_tokens_fn`` over a Python dict of SID
  prefixes, the way a plain transformers script constrains generation (one call per beam per step);
* ``processor``: ``generate`` with genrec's vectorized trie LogitsProcessor
  (recommender.decoding.generate_reference, the reference the fast path is tested against);
* ``fast``: recommender.fast_beam.constrained_beam_search, the path evaluation and ``recommend`` use.

Time is wall time for all users, building the encoder inputs included.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from genrec.recommender.data import ExampleBuilder
from genrec.recommender.decoding import generate_reference, length_sorted_batches, pad_rows
from genrec.recommender.fast_beam import SidPrefixTable, constrained_beam_search
from genrec.recommender.constraint import prefix_states


def prefix_function(codes: np.ndarray, offsets: tuple[int, ...], eos_token: int):
    """``prefix_allowed_tokens_fn`` for generate: allowed next tokens after each SID prefix."""
    allowed: dict[tuple[int, ...], set[int]] = {}
    for row in (np.asarray(codes) + np.asarray(offsets)[None, :]).tolist():
        for depth in range(len(row)):
            allowed.setdefault(tuple(row[:depth]), set()).add(row[depth])
    allowed_lists = {prefix: sorted(tokens) for prefix, tokens in allowed.items()}
    done = [eos_token]

    def allowed_tokens(_batch_id: int, generated: torch.Tensor) -> list[int]:
        return allowed_lists.get(tuple(generated[1:].tolist()), done)  # generated[0] is the start token

    return allowed_tokens


def generate_with_prefix_function(model, input_ids, attention_mask, table: SidPrefixTable, allowed_tokens,
                                  num_beams: int) -> torch.Tensor:
    """Plain HF constrained beam search: item rows ``[batch, beams]`` (item id - 1), best first."""
    length = table.length
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams,
                         num_return_sequences=num_beams, do_sample=False, max_new_tokens=length,
                         min_new_tokens=length, length_penalty=0.0, early_stopping=True,
                         prefix_allowed_tokens_fn=allowed_tokens)
    return prefix_states(table, out[:, 1 : 1 + length]).view(input_ids.shape[0], num_beams)


@torch.no_grad()
def time_decoding(path: str, model, builder: ExampleBuilder, table: SidPrefixTable, codes: np.ndarray,
                  histories: list[list[int]], beams: int, batch_size: int) -> tuple[float, np.ndarray]:
    """(seconds, item rows ``[users, beams]``) of decoding every history with ``path``."""
    model.eval()
    device = next(model.parameters()).device
    table = table.to(device)
    if path == "plain":
        allowed = prefix_function(codes, table.offsets, model.config.eos_token_id)
        decode = lambda ids, mask: generate_with_prefix_function(model, ids, mask, table, allowed, beams)  # noqa: E731
    elif path == "processor":
        decode = lambda ids, mask: generate_reference(model, ids, mask, table, beams)[0]  # noqa: E731
    elif path == "fast":
        decode = lambda ids, mask: constrained_beam_search(model, ids, mask, table, beams)[0]  # noqa: E731
    else:
        raise ValueError(f"unknown decoding path {path!r}")
    started = time.perf_counter()
    # Every path gets the same length-sorted batches (recommend_items batches this way).
    encoded = [builder.encode_history(h) for h in histories]
    rows = np.zeros((len(histories), beams), dtype=np.int64)
    for batch in length_sorted_batches(encoded, batch_size):
        ids, mask = pad_rows([encoded[i] for i in batch], device)
        rows[batch] = decode(ids, mask).cpu().numpy()
    return time.perf_counter() - started, rows
