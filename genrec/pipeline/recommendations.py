"""``recommend``: one user's or one history's top K, with ids, titles, SIDs and scores."""

from __future__ import annotations

import dataclasses
import functools
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.layout import FIELDS_FILE
from genrec.core.limits import DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN, DEFAULT_TOP_K, check_request
from genrec.pipeline.loading import fused_scorers, load_trained
from genrec.recommender.reasons import occlusion_influence, transition_reasons
from genrec.recommender.rules import ItemRule


@dataclass
class RecommendConfig:
    dataset: str | Path | None = None
    model: str | Path | None = None
    user: str | None = None  # raw user id, else dataset number "17" / "#17" (ProcessedDataset lookup_id)
    history: list[str] | None = None  # item ids under the same rule, for a history without a user
    top_k: int = DEFAULT_TOP_K  # 1..MAX_TOP_K, as the CLI and the HTTP API (genrec.core.limits)
    beams: int = DEFAULT_BEAMS
    exclude_seen: bool | None = DEFAULT_EXCLUDE_SEEN  # leave the user's history out; None = as chosen after training
    fusion: dict[str, float] | None = None  # scorer -> weight; default: the chosen weights ({} = the model alone)
    new_item_share: float | None = None  # items added after training: mixed in with this share (None = slots instead)
    new_item_exposure: float | None = None  # users whose 10th place goes to a new item (None = NEW_ITEM_EXPOSURE; 0 = off)
    rule: ItemRule | None = None  # only the items it allows, kept inside the beam (recommender.rules; ItemRule.parse)
    influence: bool = False  # each item's "influence": history items whose removal lowers its score most (occlusion)


@dataclass
class Recommendations:
    user: int  # 0 for a given history
    user_raw_id: str | None
    history: list[dict]  # item_id, raw_id, title, oldest first
    items: list[dict]  # rank, item_id, raw_id, title, sid, score, because, influence (recommender.reasons)
    fusion: dict[str, float] = field(default_factory=dict)  # the fused scorers' weights ({} = the model alone)


def recommend(config: RecommendConfig) -> Recommendations:
    if config.history and config.user is not None:
        raise GenrecError("give a user (--user) or a history (--history), not both")
    check_request(config.top_k, config.beams, len(config.history or []))
    recommender, dataset = load_trained(config.dataset, config.model, fusion=config.fusion, fit="all",
                                        new_item_share=config.new_item_share,
                                        new_item_exposure=config.new_item_exposure)
    if config.history:
        history, user = [dataset.item_id_for(item) for item in config.history], 0
    elif config.user is not None:
        user = dataset.user_id_for(config.user)
        history = dataset.history(user)
    else:
        raise GenrecError("give a user (--user USER) or a history (--history ITEM [ITEM ...])")
    if config.rule is not None:
        recommender = with_rule(recommender, dataset, config.rule)
    items, scores = ranked(recommender, dataset, config.rule, [history], [user], config.top_k, config.beams,
                           config.exclude_seen)
    return Recommendations(user, dataset.user_raw_id(user) if user else None, describe_history(dataset, history),
                           describe_recommendations(dataset, recommender, items[0], scores[0], history,
                                                    influence_of=user if config.influence else None),
                           recommender.policy.weights)


def ranked(recommender, dataset, rule: ItemRule | None, histories: list[list[int]], users: list[int], top_k: int,
           beams: int, exclude_seen: bool | None, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Each history's top ``top_k`` ([n, top_k] items and scores, 0 / -inf where fewer qualify). Under
    a rule with ``max_per`` (field, N): at most N items of one value of the field, picked greedily
    by score (for such caps the greedy list is the best one) from each row's top ``beams``; a row
    left short while more items may qualify is decoded again alone (``_capped_alone``). Items
    without the field are not capped. The same rows whatever the batch, so ``recommend --all``
    and a single request agree."""
    if rule is None or rule.max_per is None:
        return recommender.recommend(histories, top_k, users=users, beams=beams, exclude_seen=exclude_seen,
                                     batch_size=batch_size)
    values = _item_fields(*_fields_key(dataset))[rule.max_per[0]]
    depth = max(beams, top_k)
    items, scores = recommender.recommend(histories, depth, users=users, beams=depth, exclude_seen=exclude_seen,
                                          batch_size=batch_size)
    out_items = np.zeros((len(histories), top_k), dtype=np.int64)
    out_scores = np.full((len(histories), top_k), -np.inf, dtype=np.float32)
    for row in range(len(histories)):
        picked = _greedy_under_cap(items[row], values, rule.max_per[1], top_k)
        if len(picked) < top_k and (items[row] > 0).all():  # capped short of a full list: more may qualify
            found, found_scores = _capped_alone(recommender, values, rule.max_per[1], histories[row], users[row],
                                                top_k, beams, exclude_seen)
        else:
            found, found_scores = items[row][picked], scores[row][picked]
        out_items[row, :len(found)], out_scores[row, :len(found)] = found, found_scores
    return out_items, out_scores


def _greedy_under_cap(items: np.ndarray, values: np.ndarray, cap: int, top_k: int) -> list[int]:
    """Positions of the first ``top_k`` items of a ranked list with at most ``cap`` of one value."""
    picked, counts = [], {}
    for position, item in enumerate(items):
        if item <= 0 or len(picked) == top_k:
            break
        value = values[item]
        if value is not None:
            if counts.get(value, 0) >= cap:
                continue
            counts[value] = counts.get(value, 0) + 1
        picked.append(position)
    return picked


def _capped_alone(recommender, values: np.ndarray, cap: int, history: list[int], user: int, top_k: int, beams: int,
                  exclude_seen: bool | None) -> tuple[list[int], list[float]]:
    """One history's capped list, greedy by score, decoding again with a value's items left out once
    it has its ``cap`` (so the list stays full whenever enough items qualify)."""
    allowed = recommender.policy.allowed.copy()
    picked, scores, counts = [], [], {}
    while len(picked) < top_k and allowed.any():
        decoder = recommender.with_policy(dataclasses.replace(recommender.policy, allowed=allowed.copy()))
        items, item_scores = decoder.recommend([history], top_k - len(picked), users=[user], beams=beams,
                                               exclude_seen=exclude_seen)
        found = [(int(i), float(s)) for i, s in zip(items[0], item_scores[0]) if i > 0]
        if not found:
            break
        for item, score in found:
            picked.append(item)
            scores.append(score)
            allowed[item] = False
            value = values[item]
            if value is None:  # no value of the field: not capped
                continue
            counts[value] = counts.get(value, 0) + 1
            if counts[value] >= cap:
                allowed &= values != value  # the rest of this list may hold more of it: decode again
                break
    return picked, scores


def _fields_key(dataset) -> tuple[str, int, int]:
    path = Path(dataset.path) / FIELDS_FILE
    return str(dataset.path), dataset.num_items, path.stat().st_mtime_ns if path.is_file() else 0


def with_rule(recommender, dataset, rule: ItemRule):
    """``recommender`` decoding only the items ``rule`` allows (on the dataset's item fields)."""
    def item_number(raw_id: str) -> int | None:
        try:
            return dataset.item_id_for(raw_id)
        except GenrecError:
            return None

    fields = _item_fields(*_fields_key(dataset))
    allowed = rule.allowed(fields, item_number, dataset.num_items)
    return recommender.with_policy(dataclasses.replace(recommender.policy, allowed=allowed))


@functools.lru_cache(maxsize=4)
def _item_fields(path: str, num_items: int, stamp: int) -> dict:
    """The dataset's item fields, read once per version of the file (``stamp``: its mtime)."""
    from genrec.data_prep.item_fields import read_item_fields

    return read_item_fields(path, num_items)


class RuledDecoders:
    """The decoder of each recent (model, rule) pair, so that requests carrying the same rule share one
    recommender object (the batcher batches by it) and its allowed items are computed once."""

    def __init__(self, size: int = 32):
        self.size, self.lock, self.decoders = size, threading.Lock(), OrderedDict()

    def get(self, recommender, dataset, rule: ItemRule):
        key = (id(recommender), rule)
        with self.lock:
            if key in self.decoders:
                self.decoders.move_to_end(key)
                return self.decoders[key][1]
        decoder = with_rule(recommender, dataset, rule)
        with self.lock:  # the base recommender is kept with it, so its id is not reused meanwhile
            self.decoders[key] = (recommender, decoder)
            while len(self.decoders) > self.size:
                self.decoders.popitem(last=False)
        return decoder


def describe_recommendations(dataset, recommender, items, scores, history: list[int] | None = None,
                             influence_of: int | None = None) -> list[dict]:
    """Rank, item id, raw id, title, SID (None for a model without SIDs) and score of one ranked
    list of ``recommender``'s (0 = no item, dropped); with the ``history`` it was decoded from, each
    item's ``because``: the history items it most often followed in the interactions the transition
    prior counted, with those counts (``recommender.reasons``). With ``influence_of`` (the user the
    list was decoded for, 0 for a history alone) also each item's ``influence``: the history items
    whose removal lowers its fused score most, with the drop (``occlusion_influence``)."""
    kept = [(int(item), float(score)) for item, score in zip(items, scores) if item > 0]
    picks = [item for item, _ in kept]
    reasons = (transition_reasons(reason_counts(recommender, dataset), history, picks)
               if history is not None else [None] * len(kept))
    influences = (occlusion_influence(recommender, history, picks, user=influence_of)
                  if history is not None and influence_of is not None else [None] * len(kept))

    def named(item: int) -> dict:
        return {"item_id": item, "raw_id": dataset.item_raw_id(item), "title": dataset.item_title(item)}

    return [{"rank": rank, "item_id": item, "raw_id": dataset.item_raw_id(item), "title": dataset.item_title(item),
             "sid": recommender.semantic_id(item), "score": score,
             **({} if because is None else {"because": [{**named(r.item), "count": r.count} for r in because]}),
             **({} if influence is None else {"influence": [{**named(r.item), "drop": round(r.drop, 4)}
                                                            for r in influence]})}
            for rank, ((item, score), because, influence) in enumerate(zip(kept, reasons, influences), start=1)]


_FITTED_COUNTS: dict[int, object] = {}  # id(dataset) -> counts, dropped with the dataset
_FITTING = threading.Lock()


def reason_counts(recommender, dataset):
    """The transition counts reasons are read from: the fused prior's when the policy has one
    (what the ranking read), else the serving prior (``fused_scorers``, every interaction) fitted
    once per dataset."""
    from genrec.recommender.fusion import TransitionPrior

    for scorer, _ in recommender.policy.scorers:
        if scorer.name == TransitionPrior.name:
            return scorer.counts
    with _FITTING:
        key = id(dataset)
        if key not in _FITTED_COUNTS:
            prior = fused_scorers(dataset, {TransitionPrior.name}, None, fit="all")[TransitionPrior.name]
            _FITTED_COUNTS[key] = prior.counts
            weakref.finalize(dataset, _FITTED_COUNTS.pop, key, None)
        return _FITTED_COUNTS[key]


def describe_history(dataset, history: list[int]) -> list[dict]:
    """Item id, raw id and title of each history item (for JSON output and the web page)."""
    return [{"item_id": int(item), "raw_id": dataset.item_raw_id(item), "title": dataset.item_title(item)}
            for item in history]
