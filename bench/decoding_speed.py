"""Decoding throughput of one way to get each user's top ``beams`` items.

* ``plain``: ``model.generate`` with ``prefix_allowed_tokens_fn`` over a Python dict of SID
  prefixes, the way a plain transformers script constrains generation (one call per beam per step);
* ``processor``: ``generate`` with genrec's vectorized trie LogitsProcessor
  (recommender.decoding.generate_reference, the reference the fast path is tested against);
* ``fast``: recommender.fast_beam.constrained_beam_search, the path evaluation and ``recommend`` use.

Time is wall time for all users, building the encoder inputs included. Every path returns item
ids (0 = no item).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from bench.common import load_inputs, rss_mb
from genrec.recommender.constraint import prefix_states
from genrec.recommender.data import ExampleBuilder
from genrec.recommender.decoding import generate_reference, length_sorted_batches, pad_rows
from genrec.recommender.fast_beam import constrained_beam_search
from genrec.recommender.trie import SidPrefixTable

DECODE_PATHS = ("plain", "processor", "fast")


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
    """Plain HF constrained beam search: item ids ``[batch, beams]`` (0 = no item), best first."""
    length = table.length
    out = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams,
                         num_return_sequences=num_beams, do_sample=False, max_new_tokens=length,
                         min_new_tokens=length, length_penalty=0.0, early_stopping=True,
                         prefix_allowed_tokens_fn=allowed_tokens)
    return prefix_states(table, out[:, 1 : 1 + length]).clamp(min=0).view(input_ids.shape[0], num_beams)


@torch.no_grad()
def time_decoding(path: str, model, builder: ExampleBuilder, table: SidPrefixTable, codes: np.ndarray,
                  histories: list[list[int]], beams: int, batch_size: int) -> tuple[float, np.ndarray]:
    """(seconds, item ids ``[users, beams]``) of decoding every history with ``path``."""
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
    items = np.zeros((len(histories), beams), dtype=np.int64)
    for batch in length_sorted_batches(encoded, batch_size):
        ids, mask = pad_rows([encoded[i] for i in batch], device)
        items[batch] = decode(ids, mask).cpu().numpy()
    return time.perf_counter() - started, items


def recommender_for(settings: dict, sids):
    """The trained recommender in ``settings["model"]`` if given, else a fresh one of model_config."""
    from genrec.recommender.model import RecommenderConfig, build_model
    from genrec.recommender.recommender import Recommender
    from genrec.recommender.vocab import SidVocab

    if settings["model"]:
        return Recommender.load(settings["model"], tokenizer=settings["tokenizer"])
    config = RecommenderConfig(**settings["model_config"])
    torch.manual_seed(settings["seed"])
    return Recommender(build_model(config, SidVocab.for_semantic_ids(sids, config.num_user_buckets)), sids, config)


def decode_case(payload: dict) -> dict:
    """One path on the same sample of test histories (run in its own process by the suite)."""
    settings, path = payload["settings"], payload["path"]
    dataset, sids = load_inputs(settings)
    recommender = recommender_for(settings, sids)
    rng = np.random.default_rng(settings["seed"])
    users = rng.choice(np.arange(1, dataset.num_users + 1), min(settings["decode_users"], dataset.num_users),
                       replace=False)
    if path != "fast":
        users = users[: settings["plain_users"]]
    histories = [dataset.split(int(u), "test")[0] for u in users]
    batch_size = settings["fast_batch_size"] if path == "fast" else settings["decode_batch_size"]
    rss_before = rss_mb()
    seconds, items = time_decoding(path, recommender.model, recommender.builder, recommender.table,
                                   recommender.sids.codes, histories, settings["beams"], batch_size)
    return {"path": path, "users": len(users), "seconds": seconds, "users_per_second": len(users) / seconds,
            "batch_size": batch_size, "rss_before_mb": round(rss_before, 1),
            "items": items[: settings["plain_users"]].tolist()}
