"""Small raw files in each public format, written by the tests themselves (no real data needed)."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path


def write_amazon_reviews(path: Path, reviews: list[tuple[str, str, int]]) -> Path:
    """Amazon 2014 ``reviews_<Cat>_5.json.gz``: strict JSON a line, with the real files' other fields."""
    lines = [json.dumps({"reviewerID": user, "asin": item, "reviewerName": "A. Reader", "helpful": [0, 0],
                         "reviewText": "Nice.", "overall": 5.0, "summary": "ok", "unixReviewTime": time,
                         "reviewTime": "01 1, 2014"}) for user, item, time in reviews]
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def write_amazon_meta(path: Path, records: list[dict]) -> Path:
    """Amazon 2014 ``meta_<Cat>.json.gz``: one Python dict literal a line (single quotes; not JSON)."""
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(repr(record) for record in records) + "\n")
    return path


def random_reviews(seed: int, users: int = 60, items: int = 30, max_len: int = 14) -> list[tuple[str, str, int]]:
    """Random reviews with skewed item popularity, some duplicate times and file order not by time."""
    rng = random.Random(seed)
    reviews = []
    for u in range(users):
        for _ in range(rng.randint(1, max_len)):
            item = min(int(rng.expovariate(1 / 8)), items - 1)
            reviews.append((f"U{u:03d}", f"B{item:03d}", rng.randint(1, 40) * 1000))
    rng.shuffle(reviews)
    return reviews


def amazon_meta_for(items: list[str]) -> list[dict]:
    """Metadata with HTML entities, a float price, category paths, and some fields missing."""
    records = []
    for index, asin in enumerate(items):
        record = {"asin": asin, "title": f"Rose &amp; Oud Cream {asin}", "price": 12.5 + index,
                  "salesRank": {"Beauty": 100 + index}, "categories": [["Beauty", "Skin Care"], ["Beauty", "Face"]]}
        if index % 3 == 0:
            record["brand"] = "L&#39;Atelier"
        if index % 4 == 1:
            del record["price"]
        records.append(record)
    return records


def write_p5_sequences(path: Path, sequences: dict[str, list[str]]) -> Path:
    path.write_text("".join(f"{user} {' '.join(items)}\n" for user, items in sequences.items()))
    return path


def write_ml1m(raw: Path, ratings: list[tuple[int, int, int]], movies: dict[int, tuple[str, str]]) -> Path:
    """MovieLens 1M ``ratings.dat`` (UserID::MovieID::Rating::Timestamp) and ``movies.dat`` (latin-1)."""
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "ratings.dat").write_text("".join(f"{u}::{m}::4::{t}\n" for u, m, t in ratings), encoding="latin-1")
    (raw / "movies.dat").write_text("".join(f"{m}::{title}::{genres}\n" for m, (title, genres) in movies.items()),
                                    encoding="latin-1")
    return raw


def write_hetrec_lastfm(raw: Path, tagged: list[tuple[int, int, int, int, int, int]], artists: dict[int, str],
                        tags: dict[int, str]) -> Path:
    """HetRec 2011 files: tab-separated with a header; tagged rows are (user, artist, tag, day, month, year)."""
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "user_taggedartists.dat").write_text(
        "userID\tartistID\ttagID\tday\tmonth\tyear\n" + "".join("\t".join(map(str, row)) + "\n" for row in tagged))
    (raw / "artists.dat").write_text("id\tname\turl\tpictureURL\n" + "".join(
        f"{a}\t{name}\thttp://www.last.fm/music/{a}\thttp://img/{a}.jpg\n" for a, name in artists.items()))
    (raw / "tags.dat").write_text("tagID\ttagValue\n" + "".join(f"{t}\t{v}\n" for t, v in tags.items()),
                                  encoding="latin-1")
    return raw
