"""genrec prepare on fixture files the tests write in each raw format, checked against reference code."""

import gzip
import json
import os
import random
from collections import Counter, defaultdict

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import genrec.core.layout
from genrec.data_prep.dataset import load_processed_dataset
from genrec.data_prep.interactions import Sequences, k_core
from genrec.data_prep.item_text import amazon_text
from genrec.data_prep.prepare import prepare_dataset
from genrec.core.io import read_json, sha256_file
from tests.prepare_fixtures import (amazon_meta_for, random_reviews, write_amazon_meta, write_amazon_reviews,
                                    write_hetrec_lastfm, write_ml1m, write_p5_sequences)


@pytest.fixture(autouse=True)
def private_data_root(tmp_path, monkeypatch):
    """prepare records the last dataset under DATA_ROOT; keep that out of the real data/ folder."""
    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path / "data-root")


def brute_force_k_core(sequences: dict, k: int) -> dict:
    """Remove one offending item or user at a time until none is left (the fixed point is unique)."""
    sequences = {u: list(s) for u, s in sequences.items()}
    while True:
        counts = Counter(i for seq in sequences.values() for i in seq)
        bad_item = next((i for i, c in counts.items() if c < k), None)
        if bad_item is not None:
            sequences = {u: [i for i in s if i != bad_item] for u, s in sequences.items()}
            continue
        bad_user = next((u for u, s in sequences.items() if len(s) < k), None)
        if bad_user is None:
            return sequences
        del sequences[bad_user]


def reference_pipeline(events, k, dedup=False):
    """Textbook version of prepare: per-user chronological order (ties: file order), k-core, numbering."""
    by_user = defaultdict(list)
    for index, (user, item, time) in enumerate(events):
        by_user[user].append((time, index, item))
    sequences = {}
    for user, rows in by_user.items():  # dicts keep first-appearance order
        items = [item for _, _, item in sorted(rows)]
        sequences[user] = list(dict.fromkeys(items)) if dedup else items
    kept = brute_force_k_core(sequences, k)
    item_order = list(dict.fromkeys(i for seq in kept.values() for i in seq))
    return list(kept), item_order, kept


def assert_matches_reference(dataset_dir, events, k, dedup=False):
    users, items, sequences = reference_pipeline(events, k, dedup)
    data = load_processed_dataset(dataset_dir)
    assert data.user_raw_ids == users
    assert data.item_raw_ids == items
    assert [[data.item_raw_ids[i - 1] for i in seq] for seq in data.sequences] == [sequences[u] for u in users]
    stats = read_json(dataset_dir / "stats.json")
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (
        len(users), len(items), sum(map(len, sequences.values())))


def test_k_core_equals_brute_force():
    rng = random.Random(0)
    for _ in range(30):
        data = {f"u{u}": [f"i{rng.randint(0, 25)}" for _ in range(rng.randint(1, 12))] for u in range(40)}
        k = rng.choice([2, 3, 5])
        result = k_core(Sequences(list(data), list(data.values())), k, k)
        assert dict(zip(result.user_ids, result.sequences)) == brute_force_k_core(data, k)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_amazon_reviews_prepare_equals_reference(tmp_path, seed):
    raw = tmp_path / "raw"
    raw.mkdir()
    reviews = random_reviews(seed)
    write_amazon_reviews(raw / "reviews_Beauty_5.json.gz", reviews)
    write_amazon_meta(raw / "meta_Beauty.json.gz", amazon_meta_for(sorted({i for _, i, _ in reviews})))
    stats = prepare_dataset("amazon-beauty", tmp_path / "out", raw, min_count=3, allow_download=False)
    assert stats["num_users"] > 10  # the fixture leaves something non-trivial after 3-core
    assert_matches_reference(tmp_path / "out", reviews, 3)


def test_amazon_text_numbering_split_and_stats(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    # every user reviews every item, written newest first in the file: order must come from the times
    reviews = [(f"U{u}", f"A{i}", 1000 * i + u) for u in range(6) for i in reversed(range(5))]
    write_amazon_reviews(raw / "reviews_Beauty_5.json.gz", reviews)
    meta = amazon_meta_for([f"A{i}" for i in range(5)])
    meta[3].pop("title")  # an item with metadata but no title
    write_amazon_meta(raw / "meta_Beauty.json.gz", meta + [{"asin": "NOT-REVIEWED", "title": "ignored"}])
    stats = prepare_dataset("amazon-beauty", tmp_path / "out", raw, allow_download=False)
    data = load_processed_dataset(tmp_path / "out")
    assert data.item_raw_ids == ["A0", "A1", "A2", "A3", "A4"] and data.user_raw_ids == [f"U{u}" for u in range(6)]
    assert data.sequences[0] == [1, 2, 3, 4, 5]
    assert data.split(1, "valid") == ([1, 2, 3], 4) and data.split(1, "test") == ([1, 2, 3, 4], 5)
    assert data.train_sequence(1) == [1, 2, 3]
    assert data.item_titles[0] == "Rose & Oud Cream A0"
    assert data.item_texts[0] == ("Title: Rose & Oud Cream A0; Brand: L'Atelier; "
                                  "Categories: Beauty, Skin Care, Face; Price: 12.50")
    assert data.item_texts[1] == "Title: Rose & Oud Cream A1; Categories: Beauty, Skin Care, Face"  # no brand, price
    assert data.user_id_for("U3") == 4 and data.item_id_for("A4") == 5
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (6, 5, 30)
    assert stats["items_without_metadata"] == 0 and stats["items_without_title"] == 1
    assert data.item_title(4) == "" and data.item_raw_id(5) == "A4" and data.history(2) == data.sequences[1]
    umask = os.umask(0)
    os.umask(umask)
    for path in [tmp_path / "out", *(tmp_path / "out").iterdir()]:  # outputs follow the umask, not 0600/0700
        assert path.stat().st_mode & 0o777 == (0o777 if path.is_dir() else 0o666) & ~umask, path
    assert stats["parameters"]["min_count_user"] == 5 and stats["genrec_version"]
    assert stats["sources"] == {str(raw / name): sha256_file(raw / name)
                                for name in ("reviews_Beauty_5.json.gz", "meta_Beauty.json.gz")}
    assert pq.read_table(tmp_path / "out" / "items.parquet").column_names[:4] == ["item_id", "raw_id", "title", "text"]
    assert (genrec.core.layout.DATA_ROOT / ".current").read_text().strip() == str((tmp_path / "out").resolve())


def test_p5_file_keeps_p5_numbering_and_is_stable(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    rng = random.Random(5)
    sequences = {str(u): [f"B{rng.randint(0, 12):03d}" for _ in range(rng.randint(5, 9))] for u in range(1, 40)}
    sequences = {u: list(dict.fromkeys(s)) for u, s in sequences.items()}
    write_p5_sequences(raw / "user_sequence.txt", sequences)
    write_amazon_meta(raw / "meta_Beauty.json.gz", amazon_meta_for([f"B{i:03d}" for i in range(13)]))
    prepare_dataset("amazon-beauty", tmp_path / "a", raw, min_count=3, allow_download=False)
    prepare_dataset("amazon-beauty", tmp_path / "b", raw, min_count=3, allow_download=False)
    a, b = load_processed_dataset(tmp_path / "a"), load_processed_dataset(tmp_path / "b")
    assert (a.sequences, a.item_raw_ids, a.item_texts) == (b.sequences, b.item_raw_ids, b.item_texts)
    events = [(u, i, t) for u, seq in sequences.items() for t, i in enumerate(seq)]
    assert_matches_reference(tmp_path / "a", events, 3)
    kept = [u for u in sequences if u in set(a.user_raw_ids)]
    assert a.user_raw_ids == kept  # file order, so user numbers match P5's


def test_ml1m_ratings(tmp_path):
    rng = random.Random(7)
    ratings = [(u, rng.randint(1, 15), rng.randint(1, 50)) for u in range(1, 30) for _ in range(rng.randint(3, 12))]
    ratings = list({(u, m): (u, m, t) for u, m, t in ratings}.values())  # one rating per (user, movie), as ML-1M
    movies = {m: (f"Am\xe9lie {m} (2001)", "Comedy|Romance") for m in range(1, 16)}
    raw = write_ml1m(tmp_path / "ml", ratings, movies)
    prepare_dataset("ml-1m", tmp_path / "out", raw, allow_download=False)
    assert_matches_reference(tmp_path / "out", [(str(u), str(m), t) for u, m, t in ratings], 5)
    data = load_processed_dataset(tmp_path / "out")
    first = int(data.item_raw_ids[0])
    assert data.item_texts[0] == f"Title: Am\xe9lie {first} (2001); Genres: Comedy, Romance"  # latin-1 decoded


def test_ml1m_p5_sequence_file_instead_of_ratings(tmp_path):
    raw = write_ml1m(tmp_path / "ml", [], {m: (f"Film {m}", "Drama") for m in range(1, 8)})
    (raw / "ratings.dat").unlink()
    write_p5_sequences(raw / "user_sequence.txt", {str(u): [str(m) for m in range(1, 8)] for u in range(1, 7)})
    stats = prepare_dataset("ml-1m", tmp_path / "out", raw, allow_download=False)
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (6, 7, 42)


def test_lastfm_s3rec_protocol(tmp_path):
    """Tag assignments ordered by date (ties: file order), an artist kept once at its first tag, 5-core."""
    rng = random.Random(11)
    tagged = []
    for u in range(2, 40):
        for _ in range(rng.randint(2, 25)):
            artist = min(int(rng.expovariate(1 / 10)), 40) + 1
            tagged.append((u, artist, rng.randint(1, 4), rng.randint(1, 28), rng.randint(1, 12), rng.choice([2008, 2009])))
    tags = {1: "rock", 2: "indie", 3: "80s", 4: "seen live"}
    raw = write_hetrec_lastfm(tmp_path / "fm", tagged, {a: f"Band {a}" for a in range(1, 42)}, tags)
    prepare_dataset("lastfm", tmp_path / "out", raw, allow_download=False)
    events = [(str(u), str(a), (y, mo, d)) for u, a, _, d, mo, y in tagged]
    assert_matches_reference(tmp_path / "out", events, 5, dedup=True)
    data = load_processed_dataset(tmp_path / "out")
    counts = Counter(tags[t] for _, a, t, *_ in tagged if str(a) == data.item_raw_ids[0])
    top = [tag for tag, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))][:5]
    assert data.item_texts[0] == f"Artist: Band {data.item_raw_ids[0]}; Tags: {', '.join(top)}"


def test_custom_csv_and_jsonl(tmp_path):
    rng = random.Random(3)
    rows = [(f"u{u}", f"p{rng.randint(0, 9)}", rng.randint(0, 99)) for u in range(25) for _ in range(rng.randint(4, 10))]
    csv_file = tmp_path / "events.csv"
    csv_file.write_text("who,what,when\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows))
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"sku": f"p{i}", "name": f"Pan {i}", "color": "red &amp; black"}) + "\n"
                             for i in range(10)))
    prepare_dataset("custom", tmp_path / "out", tmp_path, allow_download=False, interactions=csv_file, items=items,
                    user_col="who", item_col="what", time_col="when", id_col="sku")
    unique = list(dict.fromkeys(rows))  # exact duplicates (same user, item, time) are dropped and counted
    assert len(unique) < len(rows)
    assert_matches_reference(tmp_path / "out", unique, 5)
    assert read_json(tmp_path / "out" / "stats.json")["duplicate_interactions_dropped"] == len(rows) - len(unique)
    assert load_processed_dataset(tmp_path / "out").item_texts[0].endswith("; Color: red & black")
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("".join(json.dumps({"who": u, "what": i, "when": t}) + "\n" for u, i, t in rows))
    prepare_dataset("custom", tmp_path / "out2", tmp_path, allow_download=False, interactions=jsonl, items=items,
                    user_col="who", item_col="what", time_col="when", id_col="sku")
    assert load_processed_dataset(tmp_path / "out2").sequences == load_processed_dataset(tmp_path / "out").sequences
    tsv, parquet = tmp_path / "events.tsv", tmp_path / "events.parquet"
    tsv.write_text("who\twhat\twhen\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows))
    pq.write_table(pa.table({"who": [r[0] for r in rows], "what": [r[1] for r in rows], "when": [r[2] for r in rows]}),
                   parquet)
    for index, events in enumerate([tsv, parquet]):
        prepare_dataset("custom", tmp_path / f"o{index}", tmp_path, allow_download=False, interactions=events,
                        items=items, user_col="who", item_col="what", time_col="when", id_col="sku")
        assert load_processed_dataset(tmp_path / f"o{index}").sequences == load_processed_dataset(tmp_path / "out").sequences


def test_amazon_text_handles_missing_fields():
    assert amazon_text({}) == ("", "")
    assert amazon_text({"title": "A &quot;B&quot;", "price": "$5"}) == ('A "B"', 'Title: A "B"; Price: $5')
