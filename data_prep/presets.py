"""Dataset presets: where each public dataset's raw files come from and how they are read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from genrec.data_prep import download, item_text, readers
from genrec.data_prep.interactions import Event
from genrec.core.errors import GenrecError

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


def _missing(raw_dir: Path, names: list[str]) -> list[str]:
    return [name for name in names if not (raw_dir / name).is_file()]


def _amazon(name: str, raw_dir: Path, allow_download: bool) -> RawData:
    category = AMAZON_CATEGORIES[name]
    reviews, meta_file = f"reviews_{category}_5.json.gz", f"meta_{category}.json.gz"
    sequence_file = raw_dir / P5_SEQUENCE_FILE
    # A P5-style user_sequence.txt, when present, replaces the reviews file.
    needed = [meta_file] if sequence_file.is_file() else [reviews, meta_file]
    missing = _missing(raw_dir, needed)
    if missing:
        hint = download.offline_hint(raw_dir, needed, f"{download.AMAZON_2014} (or a P5 {P5_SEQUENCE_FILE} "
                                                       "instead of the reviews file)")
        if not allow_download:
            raise GenrecError(f"{raw_dir}: file not found: {', '.join(missing)}; {hint}")
        for file in missing:
            download.fetch(download.AMAZON_2014 + file, raw_dir / file, hint)
    if sequence_file.is_file():
        events, source = readers.read_p5_sequences(sequence_file), sequence_file
    else:
        events, source = readers.read_amazon_reviews(raw_dir / reviews), raw_dir / reviews
    wanted = {e.item for e in events}
    meta = readers.read_amazon_meta(raw_dir / meta_file, wanted)
    return RawData(events, meta, item_text.amazon_text, [source, raw_dir / meta_file], min_count=5)


def _ml1m(raw_dir: Path, allow_download: bool) -> RawData:
    ratings, movies, sequence_file = raw_dir / "ratings.dat", raw_dir / "movies.dat", raw_dir / P5_SEQUENCE_FILE
    if not movies.is_file() or not (ratings.is_file() or sequence_file.is_file()):
        hint = download.offline_hint(raw_dir, ["ratings.dat (or a P5 user_sequence.txt)", "movies.dat"], download.ML_1M)
        if not allow_download:
            raise GenrecError(f"{raw_dir}: MovieLens 1M files not found; {hint}")
        download.fetch_zip_members(download.ML_1M, raw_dir, ["ratings.dat", "movies.dat"], hint)
    if ratings.is_file():
        events, source = readers.read_ml1m_ratings(ratings), ratings
    else:
        events, source = readers.read_p5_sequences(sequence_file), sequence_file
    return RawData(events, readers.read_ml1m_movies(movies), item_text.movie_text, [source, movies], min_count=5)


def _lastfm(raw_dir: Path, allow_download: bool) -> RawData:
    files = ["user_taggedartists.dat", "artists.dat", "tags.dat"]
    missing = _missing(raw_dir, files)
    if missing:
        hint = download.offline_hint(raw_dir, files, download.LASTFM)
        if not allow_download:
            raise GenrecError(f"{raw_dir}: file not found: {', '.join(missing)}; {hint}")
        download.fetch_zip_members(download.LASTFM, raw_dir, files, hint)
    events, meta = readers.read_lastfm(raw_dir)
    # S3Rec protocol: each user's tagged artists ordered by tag date, an artist kept once at its first
    # tag (ties in date keep file order), then 5-core: reproduces 1,090 / 3,646 / 52,551.
    return RawData(events, meta, item_text.artist_text, [raw_dir / f for f in files], min_count=5, dedup=True)


def _demo() -> RawData:
    from genrec.data_prep.demo import generate_demo

    events, meta = generate_demo()
    return RawData(events, meta, item_text.amazon_text, [], min_count=5)


def _custom(interactions: Path | None, items: Path | None, user_col: str, item_col: str, time_col: str,
            id_col: str) -> RawData:
    """User-supplied files: interactions with user, item, timestamp columns; items with an id column."""
    if interactions is None or items is None:
        raise GenrecError("the custom preset needs --interactions FILE (user, item, timestamp columns) "
                          "and --items FILE (an id column plus text columns)")
    events = []
    for index, (where, row) in enumerate(readers.read_table(interactions)):
        missing = [c for c in (user_col, item_col, time_col) if row.get(c) in (None, "")]
        if missing:
            raise GenrecError(f"{interactions}, {where}: missing column(s) {', '.join(missing)} "
                              "(set --user-column/--item-column/--time-column)")
        try:
            time = float(row[time_col])
        except (TypeError, ValueError):
            raise GenrecError(f"{interactions}, {where}: {time_col}={row[time_col]!r} is not a number") from None
        events.append(Event(str(row[user_col]), str(row[item_col]), time, index))
    if not events:
        raise GenrecError(f"{interactions}: no interactions in the file")
    meta = {}
    for where, row in readers.read_table(items):
        if row.get(id_col) in (None, ""):
            raise GenrecError(f"{items}, {where}: no {id_col!r} value (set --item-id-column)")
        meta[str(row[id_col])] = row
    return RawData(events, meta, lambda m: item_text.generic_text(m, id_col), [interactions, items], min_count=5)


PRESETS = (*AMAZON_CATEGORIES, "ml-1m", "lastfm", "demo", "custom", "synthetic")  # synthetic: data_prep.synthetic


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
