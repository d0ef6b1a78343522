"""Dataset presets: where each public dataset's raw files come from and how they are read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from data_prep import download, item_text, readers
from data_prep.interactions import Event
from genrec.errors import GenrecError

AMAZON_CATEGORIES = {
    "amazon-beauty": "Beauty",
    "amazon-sports": "Sports_and_Outdoors",
    "amazon-toys": "Toys_and_Games",
    "amazon-clothing": "Clothing_Shoes_and_Jewelry",
}
P5_SEQUENCE_FILE = "user_sequence.txt"


@dataclass
class RawData:
    """What a preset reads: timed events, per-item metadata, and how to turn metadata into text."""

    events: list[Event]
    meta: dict[str, dict]
    text_of: Callable[[dict], tuple[str, str]]
    sources: list[Path]
    min_count: int
    dedup: bool = False


def _amazon(name: str, raw_dir: Path, allow_download: bool) -> RawData:
    category = AMAZON_CATEGORIES[name]
    reviews = raw_dir / f"reviews_{category}_5.json.gz"
    meta_file = raw_dir / f"meta_{category}.json.gz"
    sequence_file = raw_dir / P5_SEQUENCE_FILE
    if sequence_file.is_file():
        events, source = readers.read_p5_sequences(sequence_file), sequence_file
    else:
        if not reviews.is_file():
            if not allow_download:
                raise GenrecError(f"{reviews}: file not found; put reviews_{category}_5.json.gz (or a P5 {P5_SEQUENCE_FILE}) in {raw_dir}")
            download.fetch(download.AMAZON_2014 + reviews.name, reviews)
        events, source = readers.read_amazon_reviews(reviews), reviews
    if not meta_file.is_file():
        if not allow_download:
            raise GenrecError(f"{meta_file}: file not found; put meta_{category}.json.gz in {raw_dir}")
        download.fetch(download.AMAZON_2014 + meta_file.name, meta_file)
    wanted = {e.item for e in events}
    return RawData(events, readers.read_amazon_meta(meta_file, wanted), item_text.amazon_text, [source, meta_file], min_count=5)


def _ml1m(raw_dir: Path, allow_download: bool) -> RawData:
    ratings, movies, sequence_file = raw_dir / "ratings.dat", raw_dir / "movies.dat", raw_dir / P5_SEQUENCE_FILE
    if not movies.is_file() or not (ratings.is_file() or sequence_file.is_file()):
        if not allow_download:
            raise GenrecError(f"{raw_dir}: need movies.dat and ratings.dat (or {P5_SEQUENCE_FILE}) from MovieLens 1M")
        download.fetch_zip_members(download.ML_1M, raw_dir, ["ratings.dat", "movies.dat"])
    if ratings.is_file():
        events, source = readers.read_ml1m_ratings(ratings), ratings
    else:
        events, source = readers.read_p5_sequences(sequence_file), sequence_file
    return RawData(events, readers.read_ml1m_movies(movies), item_text.movie_text, [source, movies], min_count=5)


def _lastfm(raw_dir: Path, allow_download: bool) -> RawData:
    files = ["user_taggedartists.dat", "artists.dat", "tags.dat"]
    if not all((raw_dir / f).is_file() for f in files):
        if not allow_download:
            raise GenrecError(f"{raw_dir}: need the hetrec2011-lastfm-2k files {', '.join(files)}")
        download.fetch_zip_members(download.LASTFM, raw_dir, files)
    events, meta = readers.read_lastfm(raw_dir)
    # S3Rec protocol: a user's tagged artists ordered by tag time, each artist once, 5-core.
    return RawData(events, meta, item_text.artist_text, [raw_dir / f for f in files], min_count=5, dedup=True)


def _demo() -> RawData:
    from data_prep.demo import generate_demo

    events, meta = generate_demo()
    return RawData(events, meta, item_text.amazon_text, [], min_count=5)


def _custom(interactions: Path | None, items: Path | None, user_col: str, item_col: str, time_col: str, id_col: str) -> RawData:
    if interactions is None or items is None:
        raise GenrecError("the custom preset needs --interactions FILE and --items FILE")
    rows = readers.read_table(interactions)
    events = []
    for index, row in enumerate(rows):
        missing = [c for c in (user_col, item_col, time_col) if c not in row or row[c] in (None, "")]
        if missing:
            raise GenrecError(f"{interactions}, row {index + 1}: missing column(s) {', '.join(missing)}")
        try:
            time = float(row[time_col])
        except (TypeError, ValueError):
            raise GenrecError(f"{interactions}, row {index + 1}: {time_col}={row[time_col]!r} is not a number") from None
        events.append(Event(str(row[user_col]), str(row[item_col]), time, index))
    meta = {}
    for index, row in enumerate(readers.read_table(items)):
        if id_col not in row:
            raise GenrecError(f"{items}, row {index + 1}: no {id_col!r} column (set --item-id-column)")
        meta[str(row[id_col])] = row
    return RawData(events, meta, lambda m: item_text.generic_text(m, id_col), [interactions, items], min_count=5)


PRESETS = (*AMAZON_CATEGORIES, "ml-1m", "lastfm", "demo", "custom")


def load_raw(name: str, raw_dir: Path, allow_download: bool, **custom) -> RawData:
    if name in AMAZON_CATEGORIES:
        return _amazon(name, raw_dir, allow_download)
    if name == "ml-1m":
        return _ml1m(raw_dir, allow_download)
    if name == "lastfm":
        return _lastfm(raw_dir, allow_download)
    if name == "demo":
        return _demo()
    if name == "custom":
        return _custom(**custom)
    raise GenrecError(f"unknown dataset {name!r}; choose one of: {', '.join(PRESETS)}")
