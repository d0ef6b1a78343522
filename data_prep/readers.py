"""Readers for each raw public format. Every malformed line raises GenrecError naming file and line."""

from __future__ import annotations

import ast
import csv
import datetime
import gzip
import io
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Iterator

from tqdm.auto import tqdm

from genrec.data_prep.interactions import Event
from genrec.core.errors import GenrecError


def _require(path: Path, hint: str = "") -> Path:
    if not path.is_file():
        raise GenrecError(f"{path}: file not found{'; ' + hint if hint else ''}")
    return path


def numbered_lines(path: Path, encoding: str = "utf-8", skip_header: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) for non-empty lines of a plain or .gz text file.

    Shows a progress bar (lines read) when stderr is a terminal: the real Amazon files take a while.
    """
    _require(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding=encoding, newline="") as handle:
            lines = tqdm(handle, desc=f"reading {path.name}", unit=" lines", disable=None, mininterval=0.5, leave=False)
            for number, line in enumerate(lines, start=1):
                if skip_header and number == 1:
                    continue
                line = line.strip()
                if line:
                    yield number, line
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise GenrecError(f"{path}: cannot read ({exc})") from None


def malformed(path: Path, number: int, what: str) -> GenrecError:
    return GenrecError(f"{path}, line {number}: malformed line ({what})")


def read_p5_sequences(path: Path) -> list[Event]:
    """P5-style ``user_sequence.txt``: ``USER ITEM ITEM ...`` per line, oldest first, no timestamps.

    The position in the line is the time, so each user must have exactly one line.
    """
    events: list[Event] = []
    first_line: dict[str, int] = {}
    for number, line in numbered_lines(path):
        fields = line.split()
        if len(fields) < 2:
            raise malformed(path, number, "expected `USER ITEM [ITEM ...]`")
        user = fields[0]
        if user in first_line:
            raise malformed(path, number, f"user {user} already has a sequence on line {first_line[user]}")
        first_line[user] = number
        events.extend(Event(user, item, position, len(events) + position) for position, item in enumerate(fields[1:]))
    return events


def read_amazon_reviews(path: Path) -> list[Event]:
    """Amazon 2014 ``reviews_<Category>_5.json.gz``: one JSON object a line."""
    events: list[Event] = []
    for number, line in numbered_lines(path):
        try:
            record = json.loads(line)
            events.append(Event(str(record["reviewerID"]), str(record["asin"]), float(record["unixReviewTime"]), len(events)))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise malformed(path, number, f"need JSON with reviewerID, asin, unixReviewTime: {exc}") from None
    return events


# Both the 2014 dict literals and JSON start with the asin: {'asin': '0205616461', ...}
_LEADING_ASIN = re.compile(r"""\{\s*(['"])asin\1\s*:\s*['"]([^'"\\]*)['"]""")


def read_amazon_meta(path: Path, wanted: set[str] | None = None) -> dict[str, dict]:
    """Amazon 2014 ``meta_<Category>.json.gz``: a Python dict literal a line (not strict JSON).

    Parsed with ``ast.literal_eval`` (safe: literals only, never code), strict JSON accepted too.
    With ``wanted`` given, a line whose leading asin is plainly not wanted is skipped unparsed (the full
    files hold ~10x more items than the 5-core reviews touch), so such lines are not validated.
    """
    meta: dict[str, dict] = {}
    for number, line in numbered_lines(path):
        quick = _LEADING_ASIN.match(line)
        if wanted is not None and quick and quick.group(2) not in wanted:
            continue
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise malformed(path, number, "not a dict literal or JSON object") from None
        if not isinstance(record, dict) or "asin" not in record:
            raise malformed(path, number, "record without an 'asin' field")
        if wanted is None or record["asin"] in wanted:
            meta[str(record["asin"])] = record
    return meta


def read_ml1m_ratings(path: Path) -> list[Event]:
    """MovieLens 1M ``ratings.dat``: ``UserID::MovieID::Rating::Timestamp``."""
    events: list[Event] = []
    for number, line in numbered_lines(path, encoding="latin-1"):
        fields = line.split("::")
        if len(fields) != 4:
            raise malformed(path, number, "expected UserID::MovieID::Rating::Timestamp")
        try:
            events.append(Event(fields[0], fields[1], float(fields[3]), len(events)))
        except ValueError:
            raise malformed(path, number, "timestamp is not a number") from None
    return events


def read_ml1m_movies(path: Path) -> dict[str, dict]:
    """MovieLens 1M ``movies.dat``: ``MovieID::Title::Genre|Genre`` (latin-1)."""
    movies: dict[str, dict] = {}
    for number, line in numbered_lines(path, encoding="latin-1"):
        fields = line.split("::")
        if len(fields) != 3:
            raise malformed(path, number, "expected MovieID::Title::Genres")
        movies[fields[0]] = {"title": fields[1], "genres": [g for g in fields[2].split("|") if g]}
    return movies


def _tab_rows(path: Path, columns: int, encoding: str = "utf-8") -> Iterator[tuple[int, list[str]]]:
    for number, line in numbered_lines(path, encoding=encoding, skip_header=True):
        fields = line.split("\t")
        if len(fields) < columns:
            raise malformed(path, number, f"expected {columns} tab-separated fields")
        yield number, fields


def read_lastfm(raw_dir: Path, top_tags: int = 5) -> tuple[list[Event], dict[str, dict]]:
    """HetRec 2011 Last.fm: tag assignments as timed interactions, artists' names and top tags."""
    tagged = raw_dir / "user_taggedartists.dat"
    hint = "put the hetrec2011-lastfm-2k files in --raw-dir"
    _require(tagged, hint)
    tag_names = {f[0]: f[1] for _, f in _tab_rows(_require(raw_dir / "tags.dat", hint), 2, encoding="latin-1")}
    events: list[Event] = []
    tag_counts: dict[str, Counter] = {}
    for number, fields in _tab_rows(tagged, 6):
        try:
            day, month, year = int(fields[3]), int(fields[4]), int(fields[5])
        except ValueError:
            raise malformed(tagged, number, "day, month and year must be integers") from None
        events.append(Event(fields[0], fields[1], year * 10000 + month * 100 + day, len(events)))
        tag_counts.setdefault(fields[1], Counter())[tag_names.get(fields[2], "")] += 1
    meta: dict[str, dict] = {}
    for _, fields in _tab_rows(_require(raw_dir / "artists.dat", hint), 2):
        meta[fields[0]] = {"title": fields[1]}
    for artist, counts in tag_counts.items():
        tags = [tag for tag, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if tag][:top_tags]
        meta.setdefault(artist, {"title": ""})["tags"] = tags
    return events, meta


def read_table(path: Path) -> list[tuple[str, dict]]:
    """Rows of a CSV, TSV, JSONL or parquet file as (where, row dict); ``where`` is "line N" or "row N".

    The format is chosen by extension (``.gz`` allowed for text formats). CSV/TSV are read strictly: an
    unbalanced quote or a record with more or fewer fields than the header is an error naming the line
    the record starts on (quoted cells may span lines).
    """
    _require(path)
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    kind = suffixes[-1] if suffixes else ""
    if kind == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path).to_pylist()
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise GenrecError(f"{path}: not a readable parquet file ({exc})") from None
        return [(f"row {index + 1}", row) for index, row in enumerate(table)]
    if kind in (".jsonl", ".json", ".ndjson"):
        rows = []
        for number, line in numbered_lines(path):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise malformed(path, number, f"invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise malformed(path, number, "expected a JSON object")
            rows.append((f"line {number}", row))
        return rows
    if kind in (".csv", ".tsv", ".txt"):
        return _delimited_rows(path, "\t" if kind in (".tsv", ".txt") else ",")
    raise GenrecError(f"{path}: unsupported file type; use .csv, .tsv, .jsonl or .parquet")


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _quote_problem(exc: csv.Error) -> str:
    """What a strict csv.Error means, in words: both of its quote errors are an unbalanced quote."""
    message = str(exc)
    if "unexpected end of data" in message:
        return "unbalanced quote: the quoted field opened on this line never closes"
    if "expected after" in message:
        return f'unbalanced quote: {message}; a quote inside a quoted field is written twice: ""'
    return message


def _records(path: Path, text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line the record starts on, fields) of each non-blank CSV/TSV record. Strict about quotes: a
    stray or unterminated quote is an error naming the record's first line (else it swallows lines)."""
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)
    start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise malformed(path, start, _quote_problem(exc)) from None
        if fields:
            yield start, fields
        start = reader.line_num + 1


def _delimited_rows(path: Path, delimiter: str) -> list[tuple[str, dict]]:
    """Rows of a CSV/TSV file with a header line; every record has exactly the header's fields."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", newline="") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise GenrecError(f"{path}: cannot read ({exc})") from None
    records = _records(path, text, delimiter)
    number, header = next(records, (0, None))
    if header is None:
        raise GenrecError(f"{path}: empty file; expected a header line with column names")
    twice = next((name for name, count in Counter(header).items() if count > 1), None)
    if twice is not None:
        raise GenrecError(f"{path}, line {number}: column {twice!r} appears twice in the header")
    rows = []
    for number, fields in records:
        if len(fields) != len(header):
            raise malformed(path, number, f"{plural(len(fields), 'field')}, header has {len(header)}")
        rows.append((f"line {number}", dict(zip(header, fields))))
    return rows


def _utc_seconds(moment: datetime.datetime) -> float:
    """Seconds since the epoch; a moment without a zone is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def _date_seconds(value, time_format: str | None) -> float:
    """Seconds of a date: a datetime/date value, a ``strptime`` format, else ISO-8601. ValueError otherwise."""
    if isinstance(value, datetime.datetime):
        return _utc_seconds(value)
    if isinstance(value, datetime.date):
        return _utc_seconds(datetime.datetime.combine(value, datetime.time()))
    text = str(value).strip()
    if time_format:
        return _utc_seconds(datetime.datetime.strptime(text, time_format))
    if text[-1:] in ("Z", "z"):  # Python 3.10's fromisoformat has no Z
        text = text[:-1] + "+00:00"
    return _utc_seconds(datetime.datetime.fromisoformat(text))


def parse_timestamp(value, time_format: str | None = None) -> tuple[float, str]:
    """(seconds, kind) of a timestamp cell; kind is "number" (any finite number, e.g. Unix seconds) or
    "date" (ISO-8601 such as 2024-03-01 or 2024-03-01T12:00:00Z, a parquet date, or with ``time_format``
    a ``strptime`` date, then only that). Raises ValueError for anything else."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a timestamp: {value!r}")
    if time_format is None and not isinstance(value, (datetime.date, datetime.datetime)):
        try:
            number = float(value)
        except (TypeError, ValueError):
            pass
        else:
            if not math.isfinite(number):
                raise ValueError(f"not a finite number: {value!r}")
            return number, "number"
    return _date_seconds(value, time_format), "date"
