"""Dataset presets: where each public dataset's raw files come from and how they are read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from genrec.data_prep import download, item_fields, item_text, readers
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
    counts: dict[str, int] = field(default_factory=dict)  # input checks for the stats (custom preset)
    notes: list[str] = field(default_factory=list)  # one line each, printed by prepare
    fields_of: Callable[[dict], dict] = item_fields.no_fields  # the fields rules read (data_prep.item_fields)


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
    return RawData(events, meta, item_text.amazon_text, [source, raw_dir / meta_file], min_count=5,
                   fields_of=item_fields.amazon_fields)


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
    return RawData(events, readers.read_ml1m_movies(movies), item_text.movie_text, [source, movies], min_count=5,
                   fields_of=item_fields.movie_fields)


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
    return RawData(events, meta, item_text.amazon_text, [], min_count=5, fields_of=item_fields.amazon_fields)


def _columns(rows: list[tuple[str, dict]]) -> list[str]:
    """Every column name of a file's rows, in first-seen order."""
    return list(dict.fromkeys(name for _, row in rows for name in row))


def _cell(path: Path, where: str, row: dict, column: str):
    """A required cell's value; an empty one is an error naming file, line and column."""
    value = row[column]
    if value is None or (isinstance(value, str) and not value.strip()):
        raise GenrecError(f"{path}, {where}, column {column!r}: empty cell")
    return value


def _event_time(path: Path, where: str, column: str, value, time_format: str | None) -> tuple[float, str]:
    """(seconds, kind) of one timestamp cell; anything else is an error naming file and line."""
    try:
        return readers.parse_timestamp(value, time_format)
    except (TypeError, ValueError):
        wanted = (f"does not match the time format {time_format!r}" if time_format else
                  "is not a number or an ISO-8601 date (e.g. 1709294400 or 2024-03-01T12:00:00Z)")
        raise GenrecError(f"{path}, {where}: {column}={value!r} {wanted}") from None


def _read_events(path: Path, columns: tuple[str, str, str], time_format: str | None) -> tuple[list[Event], int]:
    """Interactions in file order, and how many exact duplicates (same user, item, time) were dropped."""
    rows = readers.read_table(path)
    events, seen, first_kind = [], set(), None
    for where, row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise GenrecError(f"{path}, {where}: missing column(s) {', '.join(missing)} (the file has: "
                              f"{', '.join(map(str, _columns(rows)))}; set --user-column/--item-column/--time-column)")
        user, item, raw_time = (_cell(path, where, row, c) for c in columns)
        time, kind = _event_time(path, where, columns[2], raw_time, time_format)
        first_kind = first_kind or (where, kind)
        if kind != first_kind[1]:
            raise GenrecError(f"{path}, {where}: {columns[2]}={raw_time!r} is a {kind} but {first_kind[0]}'s is a "
                              f"{first_kind[1]}; use one kind in the whole file")
        key = (str(user), str(item), time)
        if key not in seen:
            seen.add(key)
            events.append(Event(key[0], key[1], time, len(events)))
    return events, len(rows) - len(events)


def _read_items(path: Path, id_col: str) -> dict[str, dict]:
    """Item rows by id; a missing id column, an empty id or an id twice is an error."""
    rows = readers.read_table(path)
    meta, first = {}, {}
    for where, row in rows:
        if id_col not in row:
            raise GenrecError(f"{path}, {where}: no {id_col!r} column (the file has: "
                              f"{', '.join(map(str, _columns(rows)))}; set --item-id-column)")
        raw = str(_cell(path, where, row, id_col))
        if raw in first:
            raise GenrecError(f"{path}, {where}: item {raw!r} appears twice (first on {first[raw]})")
        first[raw] = where
        meta[raw] = row
    return meta


def _is_text(value) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def _title_column(path: Path, meta: dict[str, dict], id_col: str) -> tuple[str | None, list[str]]:
    """The column display titles come from when there is no title or name column: the first one
    holding text (not numbers); with the note saying so."""
    columns = list(dict.fromkeys(name for row in meta.values() for name in row))
    if not meta or {"title", "name"} & set(columns):
        return None, []
    column = next((c for c in columns if c != id_col and any(_is_text(r.get(c)) for r in meta.values())), None)
    if column is None:
        return None, [f"{path.name} has no title, name or other text column: items have no display title"]
    return column, [f"{path.name} has no title or name column: display titles come from column {column!r}"]


def _unknown_items(events: list[Event], meta: dict[str, dict], path: Path) -> tuple[dict, list[str]]:
    """Counts and a note for interactions naming items the items file lacks (kept, text 'Item <id>')."""
    unknown = {}
    for event in events:
        if event.item not in meta:
            unknown[event.item] = unknown.get(event.item, 0) + 1
    counts = {"interactions_with_unknown_items": sum(unknown.values()), "unknown_items": len(unknown)}
    if not unknown:
        return counts, []
    shown = ", ".join(list(unknown)[:5]) + (", ..." if len(unknown) > 5 else "")
    total = counts["interactions_with_unknown_items"]
    note = (f"{readers.plural(total, 'interaction')} {'names' if total == 1 else 'name'} "
            f"{readers.plural(len(unknown), 'item')} not in {path.name} ({shown}): kept, with the text 'Item <id>' "
            "and no title")
    return counts, [note]


def _custom(interactions: Path | None, items: Path | None, user_col: str, item_col: str, time_col: str,
            id_col: str, time_format: str | None = None) -> RawData:
    """User-supplied files: interactions with user, item, timestamp columns; items with an id column.
    Exact duplicate interactions are dropped and items missing from the items file kept, both counted
    (``RawData.counts``) and reported (``RawData.notes``); README "Your own data"."""
    if interactions is None or items is None:
        raise GenrecError("the custom preset needs --interactions FILE (user, item, timestamp columns) "
                          "and --items FILE (an id column plus text columns)")
    events, dropped = _read_events(interactions, (user_col, item_col, time_col), time_format)
    if not events:
        raise GenrecError(f"{interactions}: no interactions in the file")
    meta = _read_items(items, id_col)
    title_col, title_notes = _title_column(items, meta, id_col)
    counts, unknown_notes = _unknown_items(events, meta, items)
    dropped_notes = [(f"dropped {readers.plural(dropped, 'exact duplicate interaction')} (same user, item and "
                      f"timestamp) in {interactions.name}")] if dropped else []
    return RawData(events, meta, lambda m: item_text.generic_text(m, id_col, title_col), [interactions, items],
                   min_count=5, counts={"duplicate_interactions_dropped": dropped, **counts},
                   notes=dropped_notes + title_notes + unknown_notes,
                   fields_of=lambda m: item_fields.custom_fields(m, id_col))


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
