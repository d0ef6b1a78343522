"""bench.cold_start on a tiny dataset: the warm dataset really lacks the cold items, they come back
through add-items, and the report's counts agree with the data."""

import dataclasses
import json

import numpy as np
import pytest

from bench import cold_start
from genrec import pipeline
from genrec.core.errors import GenrecError
from genrec.data_prep import embeddings
from genrec.data_prep.dataset import load_processed_dataset
from tests.recommender_fixtures import write_dataset, write_embedding_cache
from tests.test_add_items import DIM, TINY, FakeEncoder

RECIPE = {"tokenizer": {"codebook_size": 4, "kmeans_iters": 3}, "model": TINY,
          "train": {"max_steps": 4, "eval_every": 4, "eval_users": 0, "batch_size": 16, "warmup_steps": 1}}


@pytest.fixture
def dataset(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data", num_users=60, num_items=40)
    texts = load_processed_dataset(data).item_texts
    vectors = np.random.default_rng(1).normal(size=(len(texts), DIM)).astype(np.float32)
    write_embedding_cache(data, vectors)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    fake = FakeEncoder(dict(zip(texts, vectors)))

    def load_encoder(name, device=None):  # offline: only the bundled encoder loads
        if name != embeddings.BUNDLED_ENCODER:
            raise GenrecError(f"encoder {name!r} is not reachable")
        return fake

    monkeypatch.setattr(embeddings, "load_encoder", load_encoder)
    return data


def test_cold_items_are_held_out_then_added_back_and_scored(dataset, tmp_path):
    (tmp_path / "recipe.json").write_text(json.dumps(RECIPE))
    argv = ["--dataset", str(dataset), "--config", str(tmp_path / "recipe.json"), "--work", str(tmp_path / "work"),
            "--methods", "rkmeans", "--cold-fraction", "0.2"]
    assert cold_start.main(argv) == 0
    original = load_processed_dataset(dataset)
    warm = load_processed_dataset(tmp_path / "work" / "warm")
    cold_raw = {json.loads(line)["id"] for line in (tmp_path / "work" / "cold_items.jsonl").read_text().splitlines()}
    assert len(cold_raw) == 8 and not cold_raw & set(warm.item_raw_ids)
    assert warm.num_items == 32 and all(len(seq) >= 3 for seq in warm.sequences)
    grown = load_processed_dataset(tmp_path / "work" / "runs" / "rkmeans" / "data")
    assert grown.num_items == 40 and set(grown.item_raw_ids[32:]) == cold_raw
    report = json.loads((tmp_path / "work" / "cold-start.json").read_text())
    run = report["runs"][0]
    expected_cold_targets = sum(original.item_raw_id(original.history(u)[-1]) in cold_raw
                                for u in range(1, original.num_users + 1)
                                if original.user_raw_id(u) in set(warm.user_raw_ids))
    assert run["users"] == warm.num_users and run["cold_targets"] == expected_cold_targets
    assert run["cold_share_of_catalogue"] == pytest.approx(8 / 40) and run["added"] == 8
    variants = run["variants"]
    assert set(variants) == {"none", "content", "content slots", "chosen"} and run["new_items"]["scorer"] == "content"
    assert all(0 <= v["cold_share_of_top10_slots"] <= 1 and 0 <= v["cold_items_in_some_top10"] <= 8
               for v in variants.values())
    # Mixed in with a fifth of the probability, the added items take top-10 slots they did not have.
    assert variants["content"]["cold_share_of_top10_slots"] > variants["none"]["cold_share_of_top10_slots"]
    # The default slots give the 10th place to a new item for some of the users (NEW_ITEM_EXPOSURE: the
    # threshold is set on the grown catalogue's validation histories), one place at most.
    added = variants["chosen"]["cold_share_of_top10_slots"] - variants["none"]["cold_share_of_top10_slots"]
    assert variants["chosen"]["exposure"] == pipeline.NEW_ITEM_EXPOSURE and 0 < added <= 0.1
    assert variants["content slots"]["exposure"] in cold_start.EXPOSURES
    assert "| rkmeans | content |" in (tmp_path / "work" / "cold-start.md").read_text()
    assert "| rkmeans | content slots |" in (tmp_path / "work" / "cold-start.md").read_text()
    assert cold_start.main(argv) == 0  # cached: the rerun reads result.json
    assert run["exclude_seen"] in (True, False) and "history" in (tmp_path / "work" / "cold-start.md").read_text()


def test_redo_decoding_rechooses_the_policy_once_and_the_beam_cache_follows_the_policy(dataset, tmp_path,
                                                                                       monkeypatch):
    """--redo-decoding scores a finished run again under a policy chosen anew (recorded, and said in
    the report), once; a decoded beam cached under one policy is not read under another."""
    from genrec import pipeline

    (tmp_path / "recipe.json").write_text(json.dumps(RECIPE))
    work = tmp_path / "work"
    argv = ["--dataset", str(dataset), "--config", str(tmp_path / "recipe.json"), "--work", str(work),
            "--methods", "rkmeans", "--cold-fraction", "0.2"]
    assert cold_start.main(argv) == 0
    model = work / "runs" / "rkmeans" / "data" / "recommender"
    meta = json.loads((model / "genrec.json").read_text())
    meta["fusion"]["exclude_seen"] = not meta["fusion"]["exclude_seen"]  # as if chosen under an older rule
    (model / "genrec.json").write_text(json.dumps(meta))
    chosen = []
    original_choose = pipeline.choose_fusion
    monkeypatch.setattr(pipeline, "choose_fusion", lambda *a, **k: chosen.append(a) or original_choose(*a, **k))
    assert cold_start.main([*argv, "--redo-decoding"]) == 0
    run = json.loads((work / "runs" / "rkmeans" / "result.json").read_text())
    assert len(chosen) == 1 and run["decoding_redone"]
    recorded = json.loads((model / "genrec.json").read_text())["fusion"]
    assert run["exclude_seen"] == recorded["exclude_seen"] and run["fusion"] == recorded["weights"]
    assert "re-chosen with --redo-decoding" in (work / "cold-start.md").read_text()
    assert cold_start.main([*argv, "--redo-decoding"]) == 0 and len(chosen) == 1  # done once
    (work / "runs" / "rkmeans" / "result.json").write_text(json.dumps({**run, "variants": {}}))
    assert cold_start.main([*argv, "--rescore"]) == 0 and len(chosen) == 1  # scored again, policy kept
    rescored = json.loads((work / "runs" / "rkmeans" / "result.json").read_text())
    assert rescored["variants"] == run["variants"] and rescored["decoding_redone"]

    recommender, grown = pipeline.load_trained(model.parent, model, new_item_share=0)
    histories = [grown.split(u, "valid")[0] for u in (1, 2, 3)]
    cache = tmp_path / "beam.npz"
    items, _ = cold_start.decode_cached(recommender, histories, 5, cache)
    other = recommender.with_policy(dataclasses.replace(recommender.policy,
                                                        exclude_seen=not recommender.policy.exclude_seen))
    again, _ = cold_start.decode_cached(other, histories, 5, cache)
    expected, _ = other.recommend(histories, top_k=5, beams=5)
    np.testing.assert_array_equal(again, expected)
    assert not np.array_equal(items, again)  # the two rules differ on these histories, so a stale read would show


def test_default_exposure_is_the_one_with_the_most_room_for_the_worst_tokenizer():
    """room = the smallest relative margin to the three goals; the chosen exposure maximises the
    worst run's room, and an exposure missing from a run is not a candidate."""
    def point(exposure, cold, share, warm):
        return {"exposure": exposure, "cold": {"recall@10": cold}, "cold_share_of_top10_slots": share,
                "warm_change": warm}

    assert cold_start.room(point(0.4, 0.036, 0.045, -0.015)) == pytest.approx(0.2)  # cold: 0.036 / 0.03 - 1
    assert cold_start.room(point(0.4, 0.06, 0.06, -0.045)) == pytest.approx(-0.5)  # warm goal missed
    runs = [{"new_items": {"scorer": "content"}, "variants": {"content slots": {"validation": [
                point(0.3, 0.033, 0.04, -0.01), point(0.5, 0.045, 0.05, -0.02), point(0.8, 0.06, 0.08, -0.03)]}}},
            {"new_items": {"scorer": "content"}, "variants": {"content slots": {"validation": [
                point(0.3, 0.04, 0.04, -0.01), point(0.5, 0.045, 0.05, -0.028)]}}}]
    best, rows = cold_start.exposure_with_most_room(runs)
    # 0.3: min(0.1, ..., 0.33) = 0.1 for the first run; 0.5: the second run's warm margin 1 - 0.028 / 0.03 = 0.067
    assert best == 0.3 and [row[0] for row in rows] == ["0.3", "0.5"]
