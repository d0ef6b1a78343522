"""New items in the ranking: the recommender's distribution mixed with a text-based one over the
items added after it was trained.

A model gives items it never saw in training almost no probability (their Semantic IDs were never
generated; SASRec has no id vector for them), so on their own they are never recommended. A
mixture brings them in without touching the scores of the others:

    p(i | h) = (1 - share) p_rec(i | h) + share p_new(i | h)

p_rec is the recommender's (fused) distribution, normalised over the candidates it decoded; a fused
score log p_model + sum_s w_s log q_s is divided by 1 + sum_s w_s first (``model_temperature``), which
makes it the log of a weighted geometric mean of the distributions, on the scale of one of them
rather than of their product (whose top item would otherwise take nearly all the mass); p_new
lives on the new items only: a softmax over their text scores for the history divided by a
temperature. ``share`` is the part of the next picks expected to go to new items (by default their
share of the catalogue). A new item enters a top-K only where its mixture probability beats a
known item's.

The mixture lets a new item in only where its mixed probability beats a known item's, and on
Beauty that happens too rarely to matter (bench/results/cold-start-beauty-hour). ``NewItemSlots``
is an exposure quota instead (what TIGER does with unseen items under a share epsilon): places from
rank ``place`` (10) on go to the best new items by text, for the histories whose best new item is
one the text scorer is confident about (its probability among the new items at least
``min_probability``; ``slot_threshold`` turns "this fraction of users" into that probability).

Text scores (``TextScorer``): ``content`` = cosine of the item's text embedding with a recency
weighted mean of the history's (no training); ``sasrec`` = a trained SASRec's last hidden state dotted
with the projection of the item's text embedding (the part of its item vector a new item has).
Which one, and the temperature, are chosen on validation users (``fit_text_scorer``): the
validation target ranked among a random sample of catalogue items standing in for new ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from genrec.core.errors import GenrecError

TEXT_SCORERS = ("content", "sasrec")
TEMPERATURES = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """[M + 1, d] float32 unit rows for item ids 0..M (row 0 = zeros) from [M, d] embeddings."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.vstack([np.zeros((1, vectors.shape[1]), np.float32), vectors / np.maximum(norms, 1e-12)])


@dataclass
class TextScorer:
    """Scores of items for histories from the items' text embeddings alone.

    ``kind`` "content": cos(e_i, sum_k decay^k e_{h_-k} over the ``recent`` last items, normalised);
    "sasrec": ``model``'s hidden state after the history . (text projection of e_i). ``vectors``:
    unit text embeddings [M + 1, d] of the current catalogue (row 0 = no item)."""

    kind: str
    vectors: np.ndarray
    model: object | None = None  # a SASRec (recommender.sasrec.SASRec) for kind "sasrec"
    recent: int = 3
    decay: float = 0.5

    def __post_init__(self):
        if self.kind not in TEXT_SCORERS:
            raise GenrecError(f"new-item scorer must be one of {', '.join(TEXT_SCORERS)}, got {self.kind!r}")
        if self.kind == "sasrec" and (self.model is None or self.model.text_projection is None):
            raise GenrecError("the sasrec new-item scorer needs a SASRec trained with text (not --no-text)")

    @property
    def learned(self) -> bool:
        """Fitted to the catalogue's items (SASRec's text projection), so those items standing in for
        new ones flatter it (``fit_text_scorer``)."""
        return self.kind != "content"

    def queries(self, histories: list[list[int]]) -> np.ndarray:
        """One vector per history [batch, d'], to be dotted with ``keys`` of items."""
        if self.kind == "content":
            out = np.zeros((len(histories), self.vectors.shape[1]), np.float32)
            for row, history in enumerate(histories):
                for k, item in enumerate(reversed(history[-self.recent:])):
                    out[row] += self.decay**k * self.vectors[item]
            return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        from genrec.recommender.sequences import left_pad

        model = self.model.eval()
        with torch.no_grad():
            inputs = torch.from_numpy(left_pad(histories, model.config.max_len))
            return model(inputs)[:, -1].float().numpy()

    def keys(self, items: np.ndarray) -> np.ndarray:
        """Vectors of ``items`` [n, d'] that ``queries`` are dotted with."""
        vectors = self.vectors[np.asarray(items)]
        if self.kind == "content":
            return vectors
        with torch.no_grad():
            return self.model.text_projection(torch.from_numpy(vectors)).float().numpy()

    def scores(self, histories: list[list[int]], items: np.ndarray) -> np.ndarray:
        """[batch, len(items)] text scores."""
        return self.queries(histories) @ self.keys(items).T


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


@dataclass
class NewItemText:
    """What a new-item policy reads: a text scorer, its temperature, and the first item added after
    training (items ``first_new``..M are new)."""

    scorer: TextScorer
    temperature: float
    first_new: int
    # bool [M + 1]: the items a request's rule allows (recommender.rules); None: every new item
    allowed: np.ndarray | None = field(default=None, kw_only=True, repr=False, compare=False)

    def __post_init__(self):
        if not self.temperature > 0:
            raise GenrecError(f"the new-item temperature must be > 0, got {self.temperature}")

    @property
    def new_items(self) -> np.ndarray:
        new = np.arange(self.first_new, len(self.scorer.vectors))
        return new if self.allowed is None else new[self.allowed[new]]


@dataclass
class NewItemMixture(NewItemText):
    """The mixture above for a catalogue whose items ``first_new``..M were added after training."""

    share: float
    model_temperature: float = 1.0  # the recommender's scores are divided by this (1 + its fusion weights)

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.share < 1:
            raise GenrecError(f"the new items' share must be between 0 and 1, got {self.share}")
        if not self.model_temperature > 0:
            raise GenrecError(f"the model temperature must be > 0, got {self.model_temperature}")

    def merge(self, histories: list[list[int]], items: np.ndarray, scores: np.ndarray, top_k: int,
              exclude_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` of the mixture from the recommender's ranked ``items`` / log-``scores``
        (0 = empty slot, -inf score) and the best new items; scores are log mixture probabilities."""
        new = self.new_items
        if len(new) == 0:
            return items[:, :top_k], scores[:, :top_k]
        log_new = _log_softmax(self.scorer.scores(histories, new) / self.temperature)
        out_items = np.zeros((len(histories), top_k), dtype=np.int64)
        out_scores = np.full((len(histories), top_k), -np.inf, dtype=np.float32)
        for row, history in enumerate(histories):
            mass: dict[int, float] = {}
            valid = items[row] > 0
            if valid.any():
                known = np.asarray(scores[row][valid], dtype=np.float64) / self.model_temperature
                known = np.exp(known - known.max())
                for item, p in zip(items[row][valid].tolist(), (known / known.sum()).tolist()):
                    mass[item] = (1 - self.share) * p
            candidates = np.argsort(-log_new[row], kind="stable")
            if exclude_seen:
                seen = set(history)
                candidates = [c for c in candidates[: top_k + len(seen)] if int(new[c]) not in seen]
            for c in candidates[:top_k]:
                item = int(new[c])
                mass[item] = mass.get(item, 0.0) + self.share * float(np.exp(log_new[row, c]))
            ranked = sorted(mass.items(), key=lambda pair: (-pair[1], pair[0]))[:top_k]
            out_items[row, :len(ranked)] = [item for item, _ in ranked]
            out_scores[row, :len(ranked)] = np.log([p for _, p in ranked])
        return out_items, out_scores


def fit_text_scorer(scorers: dict[str, TextScorer], examples: list[tuple[list[int], int]], num_items: int,
                    sample: int, seed: int = 0, temperatures: tuple[float, ...] = TEMPERATURES) -> dict:
    """Choose the text scorer and temperature on validation ``examples`` (history, target): each
    target is ranked among ``sample`` random other catalogue items standing in for new ones; the
    scorer with the best NDCG@10 wins and its temperature is the one with the least mean negative
    log-likelihood of the target (the mixture needs calibrated probabilities, not only an order).
    Only scorers that are not ``learned`` can win while one is there: a learned scorer was trained
    on the stand-ins, so it ranks them better than it will rank items it never saw (its NDCG@10 is
    recorded under "tried" all the same).
    Returns {"scorer", "temperature", "ndcg@10", "nll", "tried": {kind: {...}}}."""
    if not examples:
        raise GenrecError("no validation examples to fit the new-item scorer on")
    rng = np.random.default_rng(seed)
    sample = min(sample, num_items - 1)
    histories = [h for h, _ in examples]
    targets = np.asarray([t for _, t in examples])
    others = np.stack([rng.choice(num_items, sample, replace=False) + 1 for _ in examples])
    others = np.where(others == targets[:, None], (others % num_items) + 1, others)  # never the target
    candidates = np.concatenate([targets[:, None], others], axis=1)  # column 0 = the target
    tried = {}
    for kind, scorer in scorers.items():
        queries = scorer.queries(histories)
        raw = np.einsum("bd,bkd->bk", queries, scorer.keys(candidates.reshape(-1)).reshape(*candidates.shape, -1))
        rank = (raw[:, 1:] > raw[:, :1]).sum(1)
        ndcg = float(np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0).mean())
        nll = {t: float(-_log_softmax(raw / t)[:, 0].mean()) for t in temperatures}
        best = min(nll, key=nll.get)
        tried[kind] = {"ndcg@10": ndcg, "temperature": best, "nll": nll[best]}
    eligible = [k for k in tried if not scorers[k].learned] or list(tried)
    kind = max(eligible, key=lambda k: tried[k]["ndcg@10"])
    return {"scorer": kind, **tried[kind], "sample": sample, "users": len(examples), "tried": tried}


def new_item_probabilities(scorer: TextScorer, temperature: float, histories: list[list[int]],
                           new_items: np.ndarray) -> np.ndarray:
    """Probabilities [batch, n] of ``new_items`` by text: a softmax of scores / ``temperature``."""
    return np.exp(_log_softmax(scorer.scores(histories, new_items) / temperature))


def best_first(values: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` indices of a stable descending sort of ``values`` (ties in index order),
    without sorting the rest: a request's few picks among many new items."""
    if k >= len(values):
        return np.argsort(-values, kind="stable")
    cut = np.partition(-values, k - 1)[k - 1]
    candidates = np.flatnonzero(-values <= cut)
    return candidates[np.argsort(-values[candidates], kind="stable")][:k]


def slot_threshold(scorer: TextScorer, temperature: float, histories: list[list[int]], first_new: int,
                   exposure: float) -> float:
    """The ``min_probability`` of ``NewItemSlots`` that gives a new-item slot to about ``exposure``
    of ``histories`` (e.g. validation users'): the (1 - exposure) quantile of their best new item's
    probability."""
    if not 0 < exposure <= 1:
        raise GenrecError(f"the new items' exposure must be in (0, 1], got {exposure}")
    new = np.arange(first_new, len(scorer.vectors))
    if len(new) == 0 or not histories:
        return 0.0
    best = new_item_probabilities(scorer, temperature, histories, new).max(axis=1)
    return 0.0 if exposure >= 1 else float(np.quantile(best, 1 - exposure))


@dataclass
class NewItemSlots(NewItemText):
    """An exposure quota for the items ``first_new``..M added after training: ``slots`` places from
    rank ``place`` on (the last ones of a shorter list) go to the best new items by text when the
    best one's probability among the new items is at least ``min_probability``; the known items
    below move down one place each (others keep the recommender's list). So a top-10 and a top-30
    agree on their first ten, and an evaluation at K >= ``place`` sees what a top-``place`` shows."""

    min_probability: float
    slots: int = 1
    place: int = 10

    def __post_init__(self):
        super().__post_init__()
        if self.slots < 1 or self.place < 1:
            raise GenrecError(f"new-item slots and place must be at least 1, got {self.slots}, {self.place}")

    def merge(self, histories: list[list[int]], items: np.ndarray, scores: np.ndarray, top_k: int,
              exclude_seen: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top ``top_k`` from the recommender's ranked ``items`` / ``scores`` (0 = empty slot) with
        new items placed where the text scorer is confident; a new item takes the score of the
        known item at its place (the list stays sorted; that score is not its probability)."""
        out_items, out_scores = items[:, :top_k].copy(), np.array(scores[:, :top_k], dtype=np.float32)
        new = self.new_items
        if len(new) == 0:
            return out_items, out_scores
        probabilities = new_item_probabilities(self.scorer, self.temperature, histories, new)
        slots = min(self.slots, top_k)
        for row, history in enumerate(histories):
            if probabilities[row].max() < self.min_probability:
                continue
            known = [int(i) for i in items[row] if i > 0]  # the whole ranked list: known items move down
            known_scores = [float(x) for x in np.asarray(scores[row])[:len(known)]]
            skip = set(known) | (set(history) if exclude_seen else set())
            order = best_first(probabilities[row], slots + len(skip))
            picks = [int(new[c]) for c in order if int(new[c]) not in skip][:slots]
            at = min(self.place - 1, top_k - len(picks), len(known))
            place_score = known_scores[at] if at < len(known) else (known_scores[-1] if known else 0.0)
            ranked = (known[:at] + picks + known[at:])[:top_k]
            ranked_scores = (known_scores[:at] + [place_score] * len(picks) + known_scores[at:])[:top_k]
            out_items[row] = 0
            out_scores[row] = -np.inf
            out_items[row, :len(ranked)] = ranked
            out_scores[row, :len(ranked)] = ranked_scores
        return out_items, out_scores
