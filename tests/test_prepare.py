"""genrec prepare on fixture files the tests write in each raw format."""

import gzip
import json
import random

import numpy as np
import pytest

from data_prep.dataset import load_processed_dataset
from data_prep.interactions import Sequences, k_core
from data_prep.item_text import amazon_text
from data_prep.prepare import prepare_dataset
from genrec.cli import main
from genrec.errors import GenrecError


def brute_force_k_core(sequences: dict, k: int) -> dict:
    """Remove one offending user or item at a time until none is left."""
    sequences = {u: list(s) for u, s in sequences.items()}
    while True:
        counts = {}
        for seq in sequences.values():
            for i in seq:
                counts[i] = counts.get(i, 0) + 1
        bad_item = next((i for i, c in counts.items() if c < k), None)
        if bad_item is not None:
            sequences = {u: [i for i in s if i != bad_item] for u, s in sequences.items()}
            continue
        bad_user = next((u for u, s in sequences.items() if len(s) < k), None)
        if bad_user is None:
            return sequences
        del sequences[bad_user]


def test_k_core_equals_brute_force():
    rng = random.Random(0)
    for trial in range(20):
        data = {f"u{u}": [f"i{rng.randint(0, 25)}" for _ in range(rng.randint(1, 12))] for u in range(40)}
        result = k_core(Sequences(list(data), list(data.values())), 3, 3)
        assert dict(zip(result.user_ids, result.sequences)) == brute_force_k_core(data, 3)


def write_amazon(raw, users=8, items=6):
    """Every user reviews every item (so 5-core keeps all), out of time order in the file."""
    reviews, meta = [], []
    for u in range(users):
        for i in reversed(range(items)):
            reviews.append(json.dumps({"reviewerID": f"U{u}", "asin": f"A{i}", "unixReviewTime": 1000 * i + u}))
    with gzip.open(raw / "reviews_Beauty_5.json.gz", "wt") as f:
        f.write("\n".join(reviews) + "\n")
    for i in range(items):
        record = {"asin": f"A{i}", "title": f"Soap &amp; Co {i}", "price": 3.5,
                  "categories": [["Beauty", "Bath"], ["Beauty", "Soap"]]}
        if i != 2:
            record["brand"] = "Suds"
        meta.append(repr(record))  # Python dict literal, as the 2014 files are
    with gzip.open(raw / "meta_Beauty.json.gz", "wt") as f:
        f.write("\n".join(meta) + "\n")


def test_amazon_reviews_and_meta(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_amazon(raw)
    stats = prepare_dataset("amazon-beauty", tmp_path / "out", raw, allow_download=False)
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (8, 6, 48)
    data = load_processed_dataset(tmp_path / "out")
    assert data.user_raw_ids[:2] == ["U0", "U1"]  # first appearance in the file
    assert data.item_raw_ids == ["A0", "A1", "A2", "A3", "A4", "A5"]  # chronological first appearance
    assert data.sequences[0] == [1, 2, 3, 4, 5, 6]
    assert data.split(1, "valid") == ([1, 2, 3, 4], 5) and data.split(1, "test") == ([1, 2, 3, 4, 5], 6)
    assert data.train_sequence(1) == [1, 2, 3, 4]
    assert data.item_titles[0] == "Soap & Co 0"
    assert data.item_texts[0] == "Title: Soap & Co 0; Brand: Suds; Categories: Beauty, Bath, Soap; Price: 3.50"
    assert "Brand" not in data.item_texts[2]  # a missing field is skipped, not "None"
    assert data.user_id_for("U3") == 4 and data.item_id_for("A5") == 6


def test_p5_sequence_file_and_numbering_is_stable(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_amazon(raw)
    lines = [f"U{u} " + " ".join(f"A{(u + i) % 6}" for i in range(6)) for u in range(7)]
    (raw / "user_sequence.txt").write_text("\n".join(lines) + "\n")
    first = prepare_dataset("amazon-beauty", tmp_path / "a", raw, allow_download=False)
    second = prepare_dataset("amazon-beauty", tmp_path / "b", raw, allow_download=False)
    a, b = load_processed_dataset(tmp_path / "a"), load_processed_dataset(tmp_path / "b")
    assert first["num_interactions"] == 42 and a.sequences == b.sequences and a.item_raw_ids == b.item_raw_ids
    assert a.sequences[1] == [2, 3, 4, 5, 6, 1]  # user U1 starts at A1, numbered by first appearance


def test_ml1m_and_lastfm_and_custom(tmp_path):
    ml = tmp_path / "ml"
    ml.mkdir()
    rows = [f"{u}::{m}::4::{100 * m + u}" for u in range(1, 7) for m in range(1, 7)] + ["1::99::5::1"]
    (ml / "ratings.dat").write_text("\n".join(rows) + "\n", encoding="latin-1")
    (ml / "movies.dat").write_text("\n".join(f"{m}::Film {m} (1999)::Drama|Comedy" for m in range(1, 7)) + "\n99::Rare::Drama\n", encoding="latin-1")
    stats = prepare_dataset("ml-1m", tmp_path / "ml-out", ml, allow_download=False)
    assert (stats["num_users"], stats["num_items"]) == (6, 6)  # movie 99 has one rating: dropped
    assert load_processed_dataset(tmp_path / "ml-out").item_texts[0] == "Title: Film 1 (1999); Genres: Drama, Comedy"

    fm = tmp_path / "fm"
    fm.mkdir()
    tagged = ["userID\tartistID\ttagID\tday\tmonth\tyear"]
    for u in range(2, 8):
        for a in range(1, 7):
            tagged += [f"{u}\t{a}\t1\t1\t{a}\t2009", f"{u}\t{a}\t2\t2\t{a}\t2009"]  # two tags: one interaction
    (fm / "user_taggedartists.dat").write_text("\n".join(tagged) + "\n")
    (fm / "artists.dat").write_text("id\tname\turl\tpictureURL\n" + "".join(f"{a}\tBand {a}\tu\tp\n" for a in range(1, 7)))
    (fm / "tags.dat").write_text("tagID\ttagValue\n1\trock\n2\tindie\n", encoding="latin-1")
    stats = prepare_dataset("lastfm", tmp_path / "fm-out", fm, allow_download=False)
    assert (stats["num_users"], stats["num_items"], stats["num_interactions"]) == (6, 6, 36)
    assert load_processed_dataset(tmp_path / "fm-out").item_texts[0] == "Artist: Band 1; Tags: indie, rock"

    interactions = tmp_path / "events.csv"
    interactions.write_text("user,item,timestamp\n" + "".join(f"u{u},p{i},{10 * i}\n" for u in range(5) for i in range(5)))
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"p{i}", "title": f"Pan {i}", "color": "red"}) + "\n" for i in range(5)))
    stats = prepare_dataset("custom", tmp_path / "c-out", tmp_path, allow_download=False, interactions=interactions,
                            items=items, user_col="user", item_col="item", time_col="timestamp", id_col="id")
    assert stats["num_interactions"] == 25
    assert load_processed_dataset(tmp_path / "c-out").item_texts[0] == "Title: Pan 0; Color: red"


def test_demo_is_deterministic_and_structured(tmp_path):
    prepare_dataset("demo", tmp_path / "a", tmp_path)
    prepare_dataset("demo", tmp_path / "b", tmp_path)
    a, b = load_processed_dataset(tmp_path / "a"), load_processed_dataset(tmp_path / "b")
    assert a.sequences == b.sequences and a.item_texts == b.item_texts
    assert 1000 <= a.num_items <= 5000 and a.num_users >= 1000
    assert "Brand:" in a.item_texts[0] and "Categories: Beauty" in a.item_texts[0]


@pytest.mark.parametrize("content, message", [
    ("not a dict\n", "line 1: malformed"),
    ("{'title': 'no asin'}\n", "line 1: malformed"),
])
def test_malformed_meta_line_names_file_and_line(tmp_path, content, message):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_amazon(raw)
    with gzip.open(raw / "meta_Beauty.json.gz", "wt") as f:
        f.write(content)
    with pytest.raises(GenrecError, match=message):
        prepare_dataset("amazon-beauty", tmp_path / "out", raw, allow_download=False)
    assert not (tmp_path / "out").exists()


def test_bad_inputs_give_one_clear_error_and_no_output(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    out = tmp_path / "out"
    assert main(["prepare", "amazon-beauty", "--raw-dir", str(raw), "--out", str(out), "--no-download"]) == 2
    assert "file not found" in capsys.readouterr().err
    assert main(["prepare", "netflix", "--out", str(out)]) == 2
    assert "unknown dataset" in capsys.readouterr().err
    (raw / "user_sequence.txt").write_text("U1 A1 A2\nU2\n")
    assert main(["prepare", "amazon-beauty", "--raw-dir", str(raw), "--out", str(out), "--no-download"]) == 2
    err = capsys.readouterr().err
    assert "user_sequence.txt, line 2" in err
    (raw / "user_sequence.txt").write_text("U1 A1 A2\nU2 A3 A4\n")
    write_amazon(raw)
    assert main(["prepare", "amazon-beauty", "--raw-dir", str(raw), "--out", str(out), "--no-download"]) == 2
    assert "nothing left after filtering" in capsys.readouterr().err
    assert not out.exists()
    events = tmp_path / "bad.jsonl"
    events.write_text('{"user": "a", "item": "b", "timestamp": 1}\n{oops\n')
    items = tmp_path / "items.csv"
    items.write_text("id,title\nb,Thing\n")
    assert main(["prepare", "custom", "--interactions", str(events), "--items", str(items), "--out", str(out)]) == 2
    assert "bad.jsonl, line 2" in capsys.readouterr().err


def test_amazon_text_handles_missing_fields():
    assert amazon_text({}) == ("", "")
    assert amazon_text({"title": "A &quot;B&quot;", "price": "$5"}) == ('A "B"', 'Title: A "B"; Price: $5')
