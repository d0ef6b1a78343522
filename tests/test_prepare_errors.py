"""Every bad input to genrec prepare: one clear message (file and line where there is one), exit code 2,
and no output directory, not even a half-written one."""

import gzip
import json
import urllib.error
import urllib.request

import pytest

import genrec.core.layout
from genrec.cli import main
from tests.prepare_fixtures import write_amazon_meta, write_amazon_reviews, write_hetrec_lastfm, write_ml1m


@pytest.fixture(autouse=True)
def private_data_root(tmp_path, monkeypatch):
    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path / "data-root")


def good_amazon(raw):
    raw.mkdir(exist_ok=True)
    write_amazon_reviews(raw / "reviews_Beauty_5.json.gz", [(f"U{u}", f"A{i}", i) for u in range(6) for i in range(6)])
    write_amazon_meta(raw / "meta_Beauty.json.gz", [{"asin": f"A{i}", "title": f"T{i}"} for i in range(6)])
    return raw


def prepare_fails(tmp_path, capsys, argv) -> str:
    out = tmp_path / "out"
    assert main(["prepare", *argv, "--out", str(out)]) == 2
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no leftover temp dir
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    return err


def gz_lines(path, lines):
    with gzip.open(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")


def test_unknown_preset_lists_the_valid_ones(tmp_path, capsys):
    err = prepare_fails(tmp_path, capsys, ["netflix"])
    assert "unknown dataset 'netflix'" in err and "amazon-beauty" in err and "custom" in err


def test_missing_files_say_what_to_put_where(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(raw), "--no-download"])
    assert "reviews_Beauty_5.json.gz" in err and "meta_Beauty.json.gz" in err and str(raw) in err
    err = prepare_fails(tmp_path, capsys, ["ml-1m", "--raw-dir", str(raw), "--no-download"])
    assert "ratings.dat" in err and "movies.dat" in err
    err = prepare_fails(tmp_path, capsys, ["lastfm", "--raw-dir", str(raw), "--no-download"])
    assert "user_taggedartists.dat" in err and "artists.dat" in err
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(tmp_path / "nope")])
    assert "no such directory" in err
    err = prepare_fails(tmp_path, capsys, ["custom"])
    assert "--interactions" in err


def test_offline_download_names_the_files_and_the_folder(tmp_path, capsys, monkeypatch):
    calls = []

    def offline(url, timeout=None):
        calls.append(url)
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    raw = tmp_path / "raw"
    raw.mkdir()
    err = prepare_fails(tmp_path, capsys, ["amazon-sports", "--raw-dir", str(raw)])
    assert calls == ["https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
                     "reviews_Sports_and_Outdoors_5.json.gz"]
    assert "cannot download" in err and "meta_Sports_and_Outdoors.json.gz" in err and str(raw) in err
    err = prepare_fails(tmp_path, capsys, ["lastfm", "--raw-dir", str(raw)])
    assert calls[-1] == "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"
    assert "user_taggedartists.dat" in err
    prepare_fails(tmp_path, capsys, ["ml-1m", "--raw-dir", str(raw)])
    assert calls[-1] == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
    assert list(raw.iterdir()) == []  # no partial downloads left behind


@pytest.mark.parametrize("bad_line, line_number", [
    ('{"reviewerID": "U1", "asin": "A1"', 1),  # truncated JSON
    ('{"reviewerID": "U1", "asin": "A1", "unixReviewTime": "soon"}', 1),
    ('{"reviewerID": "U1", "unixReviewTime": 5}', 1),  # no asin
])
def test_malformed_review_line(tmp_path, capsys, bad_line, line_number):
    raw = good_amazon(tmp_path / "raw")
    good = json.dumps({"reviewerID": "U0", "asin": "A0", "unixReviewTime": 1})
    gz_lines(raw / "reviews_Beauty_5.json.gz", [good, good, bad_line])
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(raw), "--no-download"])
    assert "reviews_Beauty_5.json.gz, line 3: malformed" in err


@pytest.mark.parametrize("bad_line", ["not a dict", "{'title': 'no asin'}", "{'asin': 'A1', 'title': oops}",
                                      "__import__('os').system('echo hacked')"])
def test_malformed_meta_line_is_never_executed(tmp_path, capsys, bad_line):
    raw = good_amazon(tmp_path / "raw")
    gz_lines(raw / "meta_Beauty.json.gz", ["{'asin': 'A0', 'title': 'ok'}", bad_line])
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(raw), "--no-download"])
    assert "meta_Beauty.json.gz, line 2: malformed" in err and "hacked" not in err


def test_malformed_p5_lines(tmp_path, capsys):
    raw = good_amazon(tmp_path / "raw")
    (raw / "user_sequence.txt").write_text("U1 A1 A2\n\nU2\n")
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(raw), "--no-download"])
    assert "user_sequence.txt, line 3: malformed" in err
    (raw / "user_sequence.txt").write_text("U1 A1 A2\nU2 A1\nU1 A3\n")
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(raw), "--no-download"])
    assert "line 3" in err and "already has a sequence on line 1" in err


def test_malformed_ml1m_and_hetrec_lines(tmp_path, capsys):
    raw = write_ml1m(tmp_path / "ml", [(1, 1, 5)], {1: ("Film", "Drama")})
    (raw / "ratings.dat").write_text("1::1::5::100\n1::2::5\n")
    err = prepare_fails(tmp_path, capsys, ["ml-1m", "--raw-dir", str(raw), "--no-download"])
    assert "ratings.dat, line 2: malformed" in err
    (raw / "ratings.dat").write_text("1::1::5::100\n")
    (raw / "movies.dat").write_text("1::Film\n", encoding="latin-1")
    err = prepare_fails(tmp_path, capsys, ["ml-1m", "--raw-dir", str(raw), "--no-download"])
    assert "movies.dat, line 1: malformed" in err
    fm = write_hetrec_lastfm(tmp_path / "fm", [(2, 1, 1, 1, 1, 2009), (2, 1, 1, "x", 1, 2009)], {1: "A"}, {1: "rock"})
    err = prepare_fails(tmp_path, capsys, ["lastfm", "--raw-dir", str(fm), "--no-download"])
    assert "user_taggedartists.dat, line 3: malformed" in err


@pytest.mark.parametrize("name, content, message", [
    ("bad.jsonl", '{"user": "a", "item": "b", "timestamp": 1}\n{oops\n', "bad.jsonl, line 2: malformed"),
    ("bad.csv", "user,item,timestamp\na,b,1\na,b\n", "bad.csv, line 3: malformed"),
    ("bad.csv", "user,item,time\na,b,1\n", "bad.csv, line 2: missing column(s) timestamp"),
    ("bad.csv", "user,item,timestamp\na,b,yesterday\n", "is not a number"),
    ("events.xlsx", "x", "unsupported file type"),
])
def test_custom_file_errors(tmp_path, capsys, name, content, message):
    items = tmp_path / "items.csv"
    items.write_text("id,title\nb,Thing\n")
    events = tmp_path / name
    events.write_text(content)
    err = prepare_fails(tmp_path, capsys, ["custom", "--interactions", str(events), "--items", str(items)])
    assert message in err


def test_nothing_left_after_filtering_and_bad_min_count(tmp_path, capsys):
    raw = good_amazon(tmp_path / "raw")
    (raw / "user_sequence.txt").write_text("U1 A1 A2\nU2 A3 A4\n")
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(raw), "--no-download"])
    assert "nothing left after filtering" in err
    err = prepare_fails(tmp_path, capsys, ["amazon-beauty", "--raw-dir", str(raw), "--min-count", "0"])
    assert "--min-count" in err


def test_failed_prepare_keeps_the_previous_output(tmp_path, capsys):
    raw = good_amazon(tmp_path / "raw")
    out = tmp_path / "kept"
    assert main(["prepare", "amazon-beauty", "--raw-dir", str(raw), "--out", str(out), "--no-download"]) == 0
    before = (out / "sequences.parquet").read_bytes()
    gz_lines(raw / "meta_Beauty.json.gz", ["broken"])
    assert main(["prepare", "amazon-beauty", "--raw-dir", str(raw), "--out", str(out), "--no-download"]) == 2
    assert (out / "sequences.parquet").read_bytes() == before


def test_no_dataset_yet_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("genrec.core.layout.DATA_ROOT", tmp_path / "elsewhere")
    assert main(["embed"]) == 2
    err = capsys.readouterr().err
    assert str((tmp_path / "elsewhere").resolve()) in err and "--dataset" in err and "GENREC_DATA" in err
