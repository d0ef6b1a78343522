"""Business rules (recommender.rules): parsed from JSON with one-line errors, turned into the allowed
items from the item fields, and kept inside the beam: every returned item satisfies the rule, a
top-K is full when K items qualify, and the constrained beam finds what an exhaustive ranking of the
allowed items finds."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genrec.core.errors import GenrecError
from genrec.data_prep.item_fields import read_item_fields, write_item_fields
from genrec.recommender.fusion import DecodingPolicy, TransitionPrior
from genrec.recommender.recommender import Recommender
from genrec.recommender.rules import ItemRule
from tests.test_encoder_input import setup

FIELDS = {"category": np.array([None, "a", "b", "a", None, "b"], dtype=object),
          "price": np.array([None, 5.0, 25.0, 15.0, 9.0, None], dtype=object),
          "in_stock": np.array([None, True, False, True, True, True], dtype=object)}


def _number(raw: str) -> int | None:
    return int(raw[1:]) if raw.startswith("I") and 1 <= int(raw[1:]) <= 5 else None


def _allowed(rule) -> list[int]:
    return np.nonzero(ItemRule.parse(rule).allowed(FIELDS, _number, 5))[0].tolist()


def test_conditions_lists_comparisons_and_id_lists_pick_the_items():
    assert _allowed({"where": {"category": "a"}}) == [1, 3]
    assert _allowed({"where": {"category": ["a", "b"], "in_stock": True}}) == [1, 3, 5]
    assert _allowed({"where": {"price": {"<=": 15, ">": 5}}}) == [3, 4]  # a missing price never passes
    assert _allowed({"where": {"category": {"!=": "a"}}}) == [2, 5]
    assert _allowed({"exclude": ["I1"], "only": ["I1", "I2", "I4"]}) == [2, 4]
    assert _allowed(json.dumps({"where": {"price": {">=": 25}}})) == [2]  # the JSON text too
    assert _allowed({}) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("rule, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ({"wher": {}}, "unknown key.*wher"),
    ({"where": {"colour": "red"}}, "unknown item field 'colour'; fields: category, in_stock, price"),
    ({"where": {"price": {"<=": "cheap"}}}, "price <= needs a number"),
    ({"where": {"price": {"~": 3}}}, "unknown comparison '~'"),
    ({"where": {"category": []}}, "empty list"),
    ({"where": {"category": {"a": 1}}}, "unknown comparison"),
    ({"exclude": "I1"}, "exclude must be a list of item ids"),
    ({"only": ["I9"]}, "only: unknown item id.*I9"),
    ({"where": {"category": "c"}}, "no item satisfies it"),
])
def test_a_bad_rule_is_one_line_naming_what_is_wrong(rule, message):
    with pytest.raises(GenrecError, match=message) as caught:
        ItemRule.parse(rule).allowed(FIELDS, _number, 5)
    assert "\n" not in str(caught.value)


def test_fields_are_typed_when_written_and_read_back(tmp_path):
    write_item_fields(tmp_path / "f.parquet", [{"price": "3.5", "new": "yes", "tag": "x"}, {"price": 2, "new": False},
                                               {"tag": 7}])
    (tmp_path / "item_fields.parquet").write_bytes((tmp_path / "f.parquet").read_bytes())
    fields = read_item_fields(tmp_path, 4)
    assert fields["price"].tolist() == [None, 3.5, 2.0, None, None]
    assert fields["new"].tolist() == [None, True, False, None, None]
    assert fields["tag"].tolist() == [None, "x", None, "7", None]
    assert read_item_fields(tmp_path / "nothing", 3) == {}


def _recommender(tmp_path):
    dataset, sids, _, config, model = setup(tmp_path)
    return dataset, Recommender(model.eval(), sids, config)


@pytest.mark.parametrize("exclude_seen", [False, True])
def test_the_beam_keeps_to_the_rule_and_finds_the_exhaustive_top_k(tmp_path, exclude_seen):
    dataset, recommender = _recommender(tmp_path)
    histories = [dataset.history(user) for user in range(1, 9)]
    rng = np.random.default_rng(0)
    allowed = np.zeros(31, dtype=bool)
    allowed[rng.choice(np.arange(1, 31), 12, replace=False)] = True
    ruled = recommender.with_policy(DecodingPolicy(allowed=allowed))
    narrow, _ = ruled.recommend(histories, top_k=5, beams=5, exclude_seen=exclude_seen)
    assert (narrow > 0).all() and allowed[narrow].all()  # a beam as wide as K still ends full, all allowed
    # a beam as wide as the catalogue is exact, with and without the rule
    items, scores = ruled.recommend(histories, top_k=5, beams=30, exclude_seen=exclude_seen)
    every, every_scores = recommender.recommend(histories, top_k=30, beams=30)
    for row, history in enumerate(histories):
        candidates = [(s, i) for i, s in zip(every[row], every_scores[row])
                      if allowed[i] and not (exclude_seen and i in history)]
        expected = [i for _, i in sorted(candidates, key=lambda pair: -pair[0])[:5]]
        assert items[row].tolist() == expected  # full (5 <= the allowed items left) and the same order
        assert all(allowed[i] for i in items[row])
        np.testing.assert_allclose(scores[row], sorted([s for s, _ in candidates], reverse=True)[:5], rtol=1e-5)


def test_the_fused_beam_and_the_catalogue_ranker_keep_to_the_rule_too(tmp_path):
    dataset, recommender = _recommender(tmp_path)
    histories = [dataset.history(user) for user in range(1, 9)]
    prior = TransitionPrior.fit(dataset.train_sequences(), dataset.num_items)
    allowed = np.zeros(31, dtype=bool)
    allowed[[2, 3, 5, 7, 11, 13, 17, 19, 23, 29]] = True
    policy = DecodingPolicy(((prior, 2.0),), allowed=allowed)
    items, _ = recommender.with_policy(policy).recommend(histories, top_k=10, beams=10, exclude_seen=False)
    assert all(allowed[i] for row in items for i in row) and (items > 0).all()  # 10 allowed: all of them
    scores = DecodingPolicy(((prior, 1.0),), allowed=allowed).log_scores(histories)
    assert np.isneginf(scores[:, ~allowed]).all() and np.isfinite(scores[:, allowed]).all()
    unruled = dataclasses.replace(policy, allowed=None)
    assert unruled.prefix_log_prior(histories, recommender._states or _states(recommender)) is not None


def _states(recommender):
    from genrec.recommender.fusion import prefix_states

    return prefix_states(recommender.table)


def test_prepare_keeps_the_shops_item_fields(tmp_path):
    from genrec.cli import main

    (tmp_path / "items.csv").write_text("id,title,category,price,in_stock\n" + "".join(
        f"i{n},Item {n},{'tea' if n % 2 else 'cake'},{n}.5,{'yes' if n % 3 else 'no'}\n" for n in range(1, 7)))
    (tmp_path / "events.csv").write_text("user,item,timestamp\n" + "".join(
        f"u{u},i{(u + k) % 6 + 1},{k}\n" for u in range(6) for k in range(4)))
    assert main(["prepare", "custom", "--interactions", str(tmp_path / "events.csv"), "--items",
                 str(tmp_path / "items.csv"), "--min-count", "1", "--out", str(tmp_path / "shop")]) == 0
    table = pq.read_table(tmp_path / "shop" / "item_fields.parquet")
    assert table.schema.field("price").type == pa.float64() and table.schema.field("in_stock").type == pa.bool_()
    raw = pq.read_table(tmp_path / "shop" / "items.parquet").column("raw_id").to_pylist()
    category = dict(zip(raw, table.column("category").to_pylist()))
    assert category["i1"] == "tea" and category["i2"] == "cake"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """A tiny trained recommender whose 30 items have a category (odd / even) and a price."""
    from tests.recommender_fixtures import train_tiny_recommender

    root = train_tiny_recommender(tmp_path_factory.mktemp("rules"), num_users=20)
    write_item_fields(root / "data" / "item_fields.parquet",
                      [{"category": "odd" if i % 2 else "even", "price": float(i), "shade": f"s{i % 5}"}
                       for i in range(1, 31)])
    return root


def test_the_cli_keeps_to_the_rule_and_rejects_a_bad_one_in_one_line(shop, capsys):
    from genrec.cli import main

    args = ["recommend", "--model", str(shop / "model"), "--dataset", str(shop / "data"), "--top-k", "5", "--json"]
    for user in ("U1", "U2", "U3"):
        assert main([*args, "--user", user, "--rule", '{"where": {"category": "even", "price": {"<": 25}}}']) == 0
        rows = json.loads(capsys.readouterr().out)["recommendations"]
        assert len(rows) == 5 and all(r["item_id"] % 2 == 0 and r["item_id"] < 25 for r in rows)
    out = shop / "all.parquet"
    assert main(["recommend", "--all", "--model", str(shop / "model"), "--dataset", str(shop / "data"),
                 "--out", str(out), "--no-progress", "--rule", '{"only": ["I1", "I2", "I3", "I4", "I5", "I6"]}']) == 0
    assert set(pq.read_table(out).column("item_id").to_pylist()) <= {1, 2, 3, 4, 5, 6}
    capsys.readouterr()
    for bad, message in [("{oops", "not valid JSON"), ('{"where": {"colour": "red"}}', "unknown item field 'colour'"),
                         ('{"where": {"price": {">": 99}}}', "no item satisfies it")]:
        assert main([*args, "--user", "U1", "--rule", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("genrec recommend: error: rule: ") and message in err and "\n" not in err


def test_the_http_api_keeps_to_the_rule_and_answers_a_bad_one_with_a_422(shop):
    from fastapi.testclient import TestClient

    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.serve import create_app

    recommender, dataset = Recommender.load(shop / "model"), load_processed_dataset(shop / "data")
    with TestClient(create_app(recommender, dataset)) as client:
        answer = client.post("/recommend", json={"user": "U1", "top_k": 6, "rule": {"where": {"category": "odd"}}})
        assert answer.status_code == 200
        items = [r["item_id"] for r in answer.json()["recommendations"]]
        assert len(items) == 6 and all(i % 2 == 1 for i in items)
        plain = client.post("/recommend", json={"user": "U1", "top_k": 6}).json()["recommendations"]
        assert len(plain) == 6  # the rule changed nothing for the next request
        for rule in ({"where": {"colour": "red"}}, {"where": {"price": {"<=": "cheap"}}}, "not an object"):
            bad = client.post("/recommend", json={"user": "U1", "rule": rule})
            assert bad.status_code == 422 and "\n" not in bad.json()["detail"]


def test_requests_with_the_same_rule_share_one_decoder(shop):
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.pipeline.recommendations import RuledDecoders

    recommender, dataset = Recommender.load(shop / "model"), load_processed_dataset(shop / "data")
    decoders = RuledDecoders(size=2)
    first = decoders.get(recommender, dataset, ItemRule.parse({"where": {"category": "odd"}}))
    assert decoders.get(recommender, dataset, ItemRule.parse('{"where": {"category": "odd"}}')) is first
    other = decoders.get(recommender, dataset, ItemRule.parse({"where": {"category": "even"}}))
    assert other is not first and other.policy.allowed[2] and not first.policy.allowed[2]
    decoders.get(recommender, dataset, ItemRule.parse({"exclude": ["I1"]}))  # a third: the oldest goes
    assert decoders.get(recommender, dataset, ItemRule.parse({"where": {"category": "odd"}})) is not first


def test_max_per_caps_a_field_value_and_matches_the_greedy_pick_over_the_exact_ranking(shop, monkeypatch):
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.pipeline import recommendations
    from genrec.pipeline.recommendations import ranked, with_rule

    recommendations_capped_alone = recommendations._capped_alone
    recommender, dataset = Recommender.load(shop / "model"), load_processed_dataset(shop / "data")
    shade = {i: f"s{i % 5}" for i in range(1, 31)}
    for user in (1, 2, 3):
        history = dataset.history(user)
        every, _ = recommender.recommend([history], 30, users=[user], beams=30, exclude_seen=True)
        expected, used = [], {}
        for item in every[0]:  # greedy over the exact ranking: at most 2 per shade
            if item > 0 and used.get(shade[item], 0) < 2 and len(expected) < 7:
                expected.append(int(item))
                used[shade[item]] = used.get(shade[item], 0) + 1
        rule = ItemRule.parse({"max_per": {"shade": 2}})
        items, scores = ranked(with_rule(recommender, dataset, rule), dataset, rule, [history], [user], 7, 30, True)
        assert items[0].tolist() == expected and np.isfinite(scores[0]).all()
    # a beam of 5 holds too few shades for 7 items: the short rows decode again, alone, and stay full
    rule = ItemRule.parse({"max_per": {"shade": 1}})
    histories = [dataset.history(user) for user in (1, 2, 3)]
    alone = []
    monkeypatch.setattr(recommendations, "_capped_alone",
                        lambda *args: alone.append(args[3]) or recommendations_capped_alone(*args))
    items, scores = ranked(with_rule(recommender, dataset, rule), dataset, rule, histories, [1, 2, 3], 5, 5, True)
    for row, history in zip(items, histories):
        assert len({shade[i] for i in row}) == 5 and not set(row.tolist()) & set(history)
    assert np.isfinite(scores).all() and alone  # at least one row went the long way
    with pytest.raises(GenrecError, match="max_per must be one field and a count"):
        ItemRule.parse({"max_per": {"shade": 0}})
    with pytest.raises(GenrecError, match="max_per: unknown item field 'size'"):
        with_rule(recommender, dataset, ItemRule.parse({"max_per": {"size": 1}}))


def test_max_per_through_the_cli_and_the_http_api(shop, capsys):
    from fastapi.testclient import TestClient

    from genrec.cli import main
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.serve import create_app

    args = ["recommend", "--model", str(shop / "model"), "--dataset", str(shop / "data"), "--top-k", "5", "--json",
            "--user", "U4", "--rule", '{"max_per": {"shade": 1}}']
    assert main(args) == 0
    items = [r["item_id"] for r in json.loads(capsys.readouterr().out)["recommendations"]]
    assert len(items) == 5 and len({i % 5 for i in items}) == 5  # full, one per shade
    assert main(["recommend", "--all", "--model", str(shop / "model"), "--dataset", str(shop / "data"), "--out",
                 str(shop / "capped.parquet"), "--top-k", "5", "--rule", '{"max_per": {"shade": 1}}']) == 0
    table = pd.read_parquet(shop / "capped.parquet")
    assert table[table.user_raw_id == "U4"].sort_values("rank").item_id.tolist() == items  # as the one request
    assert (table.groupby("user_id").item_id.apply(lambda ids: len({i % 5 for i in ids})) == 5).all()
    with TestClient(create_app(Recommender.load(shop / "model"), load_processed_dataset(shop / "data"))) as client:
        answer = client.post("/recommend", json={"user": "U4", "top_k": 5, "rule": {"max_per": {"shade": 1}}})
        assert [r["item_id"] for r in answer.json()["recommendations"]] == items


def test_the_rules_bench_compares_inside_the_beam_with_post_filtering(shop, tmp_path):
    from bench import rules_beam

    out = tmp_path / "bench"
    assert rules_beam.main(["--dataset", str(shop / "data"), "--model", str(shop / "model"), "--out", str(out),
                            "--users", "20"]) == 0
    report = json.loads((out / "rules-beauty.json").read_text())
    assert set(report["rules"]) == {"category = odd", "category = even", "in stock (random 50% of items)"}
    for rule in report["rules"].values():
        assert rule["inside_short_share"] == 0.0  # a 30-item catalogue has enough allowed items for 10
        for key in ("inside", "inside_wide", "post_filter"):
            assert 0.0 <= rule[key]["recall@10"] <= 1.0
        diff = rule["inside_wide"]["recall@10"] - rule["post_filter"]["recall@10"]
        assert rule["inside_wide_minus_post_filter_recall@10"] == pytest.approx(diff)
    assert "minus post-filter" in (out / "rules-beauty.md").read_text()
