"""Beam search's own error, apart from the model's: for each held-out example, the target item's
teacher-forced log-probability log p(SID(target) | history) against the score of the k-th item the
beam returned (the model alone, history not masked).

* hit: the target is among the k returned items;
* search error: it is not, yet its log-probability is above the k-th returned score: a wider or
  exact search would have ranked it in the top k, and the beam pruned it on the way;
* model error: it is not, and the model itself scores it below the k-th item.

The three shares sum to 1. Beam scores and target scores are the same quantity (summed
log-softmax over the full vocabulary at each SID position: ``fast_beam``), so the comparison is exact.
"""

from __future__ import annotations

import numpy as np
import torch

from genrec.recommender.data import split_examples
from genrec.recommender.decoding import pad_rows
from genrec.recommender.encoder_input import encoder_kwargs


@torch.no_grad()
def target_log_probs(recommender, histories: list[list[int]], targets: list[int], users: list[int] | None = None,
                     batch_size: int = 256) -> np.ndarray:
    """log p(SID(target) | history) under ``recommender``'s T5, one per example (teacher forcing)."""
    model, builder = recommender.model, recommender.builder
    device = next(model.parameters()).device
    out = np.empty(len(targets), dtype=np.float64)
    for start in range(0, len(targets), batch_size):
        stop = min(start + batch_size, len(targets))
        rows = [builder.encode_history(histories[i], user_id=(users[i] if users else 0)) for i in range(start, stop)]
        ids, mask = pad_rows(rows, device)
        labels = torch.from_numpy(builder.table[np.asarray(targets[start:stop])]).to(device)
        logits = model(**encoder_kwargs(model, ids), attention_mask=mask, labels=labels).logits
        picked = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
        out[start:stop] = picked.sum(-1).cpu().numpy()
    return out


def search_errors(recommender, dataset, split: str = "valid", users: np.ndarray | None = None, k: int = 10,
                  widths: tuple[int, ...] = (30,), batch_size: int = 256) -> list[dict]:
    """Shares of hits, search errors and model errors at ``k`` over ``users`` (None = all) of
    ``split``, decoding the model alone with each beam width of ``widths`` (see the module
    docstring); the targets are scored once for all widths."""
    from genrec.recommender.fusion import DecodingPolicy

    alone = recommender.with_policy(DecodingPolicy())
    examples = split_examples(dataset, split, users)
    histories, targets = [h for _, h, _ in examples], [t for _, _, t in examples]
    user_ids = [u for u, _, _ in examples]
    target_scores = target_log_probs(alone, histories, targets, user_ids, batch_size)
    results = []
    for beams in widths:
        items, scores = alone.recommend(histories, top_k=k, users=user_ids, beams=max(beams, k), exclude_seen=False,
                                        batch_size=batch_size)
        hit = (items == np.asarray(targets)[:, None]).any(axis=1)
        kth = np.asarray(scores, dtype=np.float64)[:, k - 1]
        pruned = ~hit & (target_scores > kth)
        results.append({"users": len(targets), "k": k, "beams": max(beams, k), "hit": float(hit.mean()),
                        "search_error": float(pruned.mean()), "model_error": float((~hit & ~pruned).mean())})
    return results


def search_error(recommender, dataset, split: str = "valid", users: np.ndarray | None = None, k: int = 10,
                 beams: int = 30, batch_size: int = 256) -> dict:
    """``search_errors`` at one beam width."""
    return search_errors(recommender, dataset, split, users, k, (beams,), batch_size)[0]
