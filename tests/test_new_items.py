"""Items added after training reach the rankings through an exposure quota or a mixture with a
text-based distribution over them (``recommender.new_items``): both against a direct computation,
the scorer choice on validation, and the pipeline after ``add-items``."""

import json

import numpy as np
import pytest
import torch

from genrec import pipeline
from genrec.core.errors import GenrecError
from genrec.recommender.new_items import (NewItemMixture, NewItemSlots, TextScorer, best_first, fit_text_scorer,
                                          new_item_probabilities, slot_threshold, unit_rows)
from genrec.recommender.sasrec import SASRec, SASRecConfig
from genrec.recommender.sequences import left_pad
from tests.test_add_items import trained  # noqa: F401  (module fixture: a tiny trained catalogue)


def content_scorer(num_items=8, dim=5, seed=0) -> TextScorer:
    vectors = np.random.default_rng(seed).normal(size=(num_items, dim))
    return TextScorer("content", unit_rows(vectors))


def test_content_query_is_the_decayed_mean_of_the_recent_history():
    scorer = content_scorer()
    history = [1, 2, 3, 4]
    expected = scorer.vectors[4] + 0.5 * scorer.vectors[3] + 0.25 * scorer.vectors[2]
    expected /= np.linalg.norm(expected)
    assert np.allclose(scorer.queries([history])[0], expected, atol=1e-6)
    assert np.allclose(scorer.scores([history], np.array([5, 6])), expected @ scorer.vectors[[5, 6]].T, atol=1e-6)


def test_sasrec_text_scores_are_a_text_only_sasrec_logits():
    """The "sasrec" scorer is what SASRec gives an item with no id vector: hidden . W e_item."""
    torch.manual_seed(0)
    vectors = np.random.default_rng(1).normal(size=(9, 6)).astype(np.float32)
    model = SASRec(SASRecConfig(num_items=9, text_dim=6, use_ids=False, max_len=5, d_model=8, d_ff=16,
                                dropout=0.0), text=vectors).eval()
    scorer = TextScorer("sasrec", unit_rows(vectors), model)
    histories = [[1, 2, 3], [4]]
    items = np.array([2, 5, 9])
    with torch.no_grad():
        logits = model.scores(torch.from_numpy(left_pad(histories, 5))).numpy()
    assert np.allclose(scorer.scores(histories, items), logits[:, items], atol=1e-5)
    with pytest.raises(GenrecError, match="trained with text"):
        TextScorer("sasrec", unit_rows(vectors), SASRec(SASRecConfig(num_items=9)))


def test_mixture_matches_a_direct_computation():
    scorer = content_scorer(num_items=8)
    # Items 7, 8 are new; the recommender's scores are a fusion with weights summing to 1 (temperature 2).
    mixture = NewItemMixture(scorer, temperature=0.3, first_new=7, share=0.2, model_temperature=2.0)
    history = [1, 2]
    items = np.array([[3, 4, 5, 0]])
    scores = np.array([[-1.0, -2.0, -4.0, -np.inf]], dtype=np.float32)
    got_items, got_scores = mixture.merge([history], items, scores, top_k=4)
    known = np.exp(np.array([-1.0, -2.0, -4.0]) / 2.0)
    known /= known.sum()
    text = scorer.scores([history], np.array([7, 8]))[0] / 0.3
    new = np.exp(text - text.max())
    new /= new.sum()
    expected = {3: 0.8 * known[0], 4: 0.8 * known[1], 5: 0.8 * known[2], 7: 0.2 * new[0], 8: 0.2 * new[1]}
    ranked = sorted(expected, key=lambda i: -expected[i])[:4]
    assert got_items[0].tolist() == ranked
    assert np.allclose(np.exp(got_scores[0]), [expected[i] for i in ranked], atol=1e-6)


def test_mixture_leaves_the_ranking_alone_without_new_items_and_drops_seen_new_items():
    scorer = content_scorer(num_items=8)
    items = np.array([[3, 4, 5]])
    scores = np.array([[-1.0, -2.0, -3.0]], dtype=np.float32)
    none_new = NewItemMixture(scorer, temperature=0.3, first_new=9, share=0.5)
    assert none_new.merge([[1]], items, scores, 2)[0].tolist() == [[3, 4]]
    everything_new = NewItemMixture(scorer, temperature=0.3, first_new=7, share=0.99)
    top = everything_new.merge([[1, 7]], items, scores, 3, exclude_seen=True)[0][0].tolist()
    assert 7 not in top and top[0] == 8
    with pytest.raises(GenrecError, match="share"):
        NewItemMixture(scorer, temperature=0.3, first_new=7, share=1.0)


def test_slots_give_the_last_places_to_the_best_new_items_where_the_text_is_confident():
    scorer = content_scorer(num_items=10)  # items 7..10 are new
    histories = [[1, 2], [3], [4, 5, 6]]
    probabilities = new_item_probabilities(scorer, 0.2, histories, np.arange(7, 11))
    order = np.argsort(-probabilities, axis=1, kind="stable")
    best = probabilities.max(axis=1)
    threshold = float(np.sort(best)[1])  # the two most confident histories get slots, the third not
    slots = NewItemSlots(scorer, temperature=0.2, first_new=7, min_probability=threshold, slots=2)
    items = np.array([[3, 4, 5, 6], [1, 2, 0, 0], [1, 2, 3, 8]])
    scores = np.array([[-1, -2, -3, -4], [-1, -2, -np.inf, -np.inf], [-1, -2, -3, -5]], dtype=np.float32)
    got_items, got_scores = slots.merge(histories, items, scores, top_k=4)
    for row in range(3):
        ranked_new = [7 + int(c) for c in order[row]]
        if best[row] < threshold:
            assert got_items[row].tolist() == items[row].tolist()
            continue
        known = [int(i) for i in items[row] if i > 0]
        picks = [i for i in ranked_new if i not in known][:2]
        keep = min(len(known), 4 - len(picks))
        assert got_items[row].tolist()[:keep + len(picks)] == known[:keep] + picks
        assert np.all(np.diff(got_scores[row][np.isfinite(got_scores[row])]) <= 0)  # still sorted
    assert (got_items[1][2:] > 6).all() and got_items[1][:2].tolist() == [1, 2]  # empty places filled first


def test_a_longer_list_has_the_new_item_at_its_place_and_the_same_first_ten():
    scorer = content_scorer(num_items=40, dim=6)  # items 31..40 are new
    slots = NewItemSlots(scorer, temperature=0.1, first_new=31, min_probability=0.0)
    history = [[3, 4]]
    best = 31 + int(np.argmax(scorer.scores(history, np.arange(31, 41))[0]))
    ranked = np.array([[i for i in range(1, 31) if i != best][:20]])
    scores = -np.arange(20, dtype=np.float32)[None]
    top10, _ = slots.merge(history, ranked, scores, 10)
    top15, scores15 = slots.merge(history, ranked, scores, 15)
    assert top10[0].tolist() == top15[0, :10].tolist() and top15[0, 9] == best
    assert top15[0, 10:].tolist() == ranked[0, 9:14].tolist()  # the known items below moved down one place
    assert np.all(np.diff(scores15[0]) <= 0)
    with_it = ranked.copy()
    with_it[0, 11] = best  # the model ranks the best new item itself: it is not repeated, the next best comes in
    again, _ = slots.merge(history, with_it, scores, 15)
    second = 31 + int(np.argsort(-scorer.scores(history, np.arange(31, 41))[0])[1])
    assert again[0].tolist().count(best) == 1 and again[0, 9] == second and again[0, 12] == best


def test_best_first_is_the_start_of_a_stable_descending_sort():
    rng = np.random.default_rng(0)
    for values in (rng.normal(size=50), rng.integers(0, 4, size=50).astype(float)):  # with and without ties
        full = np.argsort(-values, kind="stable")
        for k in (1, 3, 17, 50, 80):
            assert best_first(values, k).tolist() == full[:k].tolist()


def test_slot_threshold_gives_a_slot_to_the_asked_fraction_and_seen_new_items_stay_out():
    scorer = content_scorer(num_items=40, dim=6)  # items 31..40 are new
    histories = [[int(i)] for i in range(1, 31)]
    for exposure in (0.2, 0.5, 1.0):
        threshold = slot_threshold(scorer, 0.1, histories, 31, exposure)
        slots = NewItemSlots(scorer, temperature=0.1, first_new=31, min_probability=threshold)
        items = np.tile(np.arange(1, 11), (30, 1))
        got = slots.merge(histories, items, np.zeros((30, 10), np.float32), top_k=10)[0]
        assert abs((got[:, -1] > 30).mean() - exposure) <= 1 / 30 + 1e-9
    everyone = NewItemSlots(scorer, temperature=0.1, first_new=31, min_probability=0.0)
    history = [1, int(31 + np.argmax(scorer.scores([[1]], np.arange(31, 41))))]
    top = everyone.merge([history], np.arange(1, 11)[None], np.zeros((1, 10), np.float32), 10, exclude_seen=True)
    assert top[0][0, -1] > 30 and top[0][0, -1] != history[1]
    with pytest.raises(GenrecError, match="exposure"):
        slot_threshold(scorer, 0.1, histories, 31, 0.0)


def test_fit_picks_the_informative_scorer_and_the_likeliest_temperature():
    rng = np.random.default_rng(0)
    half = rng.normal(size=(30, 8))
    vectors = unit_rows(np.vstack([half, half]))  # item i + 30 has item i's text
    examples = [([i], i + 30) for i in range(1, 31)]  # ... and is what follows it
    noise = TextScorer("content", unit_rows(rng.normal(size=(60, 8))))
    informative = TextScorer("content", vectors)
    result = fit_text_scorer({"content": informative, "sasrec": noise}, examples, 60, sample=20,
                             temperatures=(0.05, 0.5, 5.0))
    assert result["scorer"] == "content" and result["ndcg@10"] == 1.0
    assert result["tried"]["content"]["ndcg@10"] > result["tried"]["sasrec"]["ndcg@10"]
    assert result["temperature"] == 0.05  # the target always scores 1, every other item less: sharpest wins


def test_a_learned_scorer_is_not_chosen_by_stand_ins_it_was_trained_on():
    """The better stand-in NDCG@10 of a learned scorer is recorded, but the untrained one is chosen
    (the learned one only when it is the only scorer)."""

    class Learned(TextScorer):
        learned = True

    rng = np.random.default_rng(0)
    half = rng.normal(size=(30, 8))
    examples = [([i], i + 30) for i in range(1, 31)]
    learned = Learned("content", unit_rows(np.vstack([half, half])))
    plain = TextScorer("content", unit_rows(rng.normal(size=(60, 8))))
    result = fit_text_scorer({"content": plain, "sasrec": learned}, examples, 60, sample=20)
    assert result["scorer"] == "content"
    assert result["tried"]["sasrec"]["ndcg@10"] == 1.0 > result["tried"]["content"]["ndcg@10"]
    assert fit_text_scorer({"sasrec": learned}, examples, 60, sample=20)["scorer"] == "sasrec"


def add_new_items(root, data, texts, name: str) -> list[int]:
    items = root / f"{name}.jsonl"
    rows = [{"id": f"{name}-{k}", "title": f"new {k}", "text": f"Title: {name} product number {k}"} for k in range(4)]
    items.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return pipeline.add_items(pipeline.AddItemsConfig(items, dataset=data, progress=False)).item_ids


def test_added_items_reach_recommendations_through_slots_by_default(trained):  # noqa: F811
    root, data, texts = trained
    added = add_new_items(root, data, texts, "slot")
    recommender, dataset = pipeline.load_trained(data, None, new_item_exposure=1.0)
    assert isinstance(recommender.policy.new_items, NewItemSlots)
    top = recommender.recommend([[1, 2, 3], [4, 5]], top_k=5)[0]
    assert all(row[-1] in added for row in top.tolist())
    default, _ = pipeline.load_trained(data, None)
    assert isinstance(default.policy.new_items, NewItemSlots)
    assert pipeline.load_trained(data, None, new_item_exposure=0)[0].policy.new_items is None
    with pytest.raises(GenrecError, match="exposure"):
        pipeline.load_trained(data, None, new_item_exposure=1.5)


def test_added_items_reach_recommendations_only_through_the_mixture(trained):  # noqa: F811
    root, data, texts = trained
    added = add_new_items(root, data, texts, "mix")
    meta = json.loads((data / "recommender" / "genrec.json").read_text())
    assert meta["new_items"]["scorer"] == "content"  # chosen on validation when the items came in
    history = [[1, 2, 3]]
    mixed, _ = pipeline.load_trained(data, None, new_item_share=0.9)
    assert set(mixed.recommend(history, top_k=5)[0][0].tolist()) & set(added)
    assert mixed.policy.new_items.model_temperature == 1.0 + sum(mixed.policy.weights.values())
    plain, _ = pipeline.load_trained(data, None, new_item_share=0)
    assert plain.policy.new_items is None
    assert mixed.evaluate(pipeline.load_trained(data, None)[1], "test", beams=30)["invalid_rate"] == 0.0
    with pytest.raises(GenrecError, match="share"):
        pipeline.load_trained(data, None, new_item_share=1.5)
