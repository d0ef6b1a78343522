"""Input files for ``genrec prepare custom``: nothing lost, nothing surprising (issue 44).

Malformed files are one-line errors naming file and line; duplicate item ids are errors; exact
duplicate interactions are dropped and counted; interactions naming items missing from the items
file are kept and reported; dates are read as ISO-8601 (or a strptime format)."""

import pytest

import genrec.core.layout
from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.core.io import read_json
from genrec.data_prep.dataset import load_processed_dataset
from genrec.data_prep.prepare import prepare_dataset
from genrec.data_prep.readers import parse_timestamp, read_table

ITEMS = "id,title,category\ntea,Green tea,Drinks\npot,Teapot,Kitchen\ncup,Tea cup,Kitchen\ncake,Lemon cake,Bakery\n"
EVENTS = "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u in ("ann", "bob", "cat")
                                           for t, i in enumerate(["tea", "pot", "cup", "cake"], start=1))


@pytest.fixture(autouse=True)
def private_data_root(tmp_path, monkeypatch):
    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path / "data-root")


def files(tmp_path, events=EVENTS, items=ITEMS, suffix="csv"):
    (tmp_path / f"events.{suffix}").write_text(events)
    (tmp_path / f"items.{suffix}").write_text(items)
    return tmp_path / f"events.{suffix}", tmp_path / f"items.{suffix}"


def prepare(tmp_path, events=EVENTS, items=ITEMS, **options):
    """prepare_dataset on two CSV files with min_count 1; returns the stats."""
    interactions, items_file = files(tmp_path, events, items)
    return prepare_dataset("custom", tmp_path / "out", tmp_path, min_count=options.pop("min_count", 1),
                           allow_download=False, interactions=interactions, items=items_file, user_col="user",
                           item_col="item", time_col="timestamp", id_col="id", **options)


def cli_error(tmp_path, capsys, events=EVENTS, items=ITEMS, extra=()) -> str:
    """The one line `genrec prepare custom` prints for a bad input (exit 2, nothing written)."""
    interactions, items_file = files(tmp_path, events, items)
    out = tmp_path / "out"
    assert main(["prepare", "custom", "--interactions", str(interactions), "--items", str(items_file),
                 "--out", str(out), *extra]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def read_error(tmp_path, content, name="items.csv") -> str:
    (tmp_path / name).write_text(content)
    with pytest.raises(GenrecError) as caught:
        read_table(tmp_path / name)
    return str(caught.value)


# -- malformed CSV / TSV ------------------------------------------------------------------------------
def test_a_stray_quote_is_an_error_naming_the_line(tmp_path):
    message = read_error(tmp_path, 'id,title,category\nX0,Cup,Kitchen\nX1,"Green, "tea" pot,Teapot\nX2,Mug,Kitchen\n')
    assert message == (f"{tmp_path / 'items.csv'}, line 3: malformed line (unbalanced quote: ',' expected after "
                       "'\"'; a quote inside a quoted field is written twice: \"\")")


def test_an_unterminated_quote_is_an_error_naming_the_line_it_opens(tmp_path):
    message = read_error(tmp_path, 'id,title\nNEW010,Ok\nNEW011,"unterminated\nNEW012,Fine\n')
    assert message == (f"{tmp_path / 'items.csv'}, line 3: malformed line (unbalanced quote: the quoted field "
                       "opened on this line never closes)")
    message = read_error(tmp_path, 'id\ttitle\nNEW011\t"unterminated\nNEW012\tFine', name="items.tsv")
    assert message.startswith(f"{tmp_path / 'items.tsv'}, line 2: malformed line (unbalanced quote")


def test_a_ragged_row_names_its_own_line(tmp_path):
    assert read_error(tmp_path, "id,title\nA,a\nB,b,extra\nC,c\n") == \
        f"{tmp_path / 'items.csv'}, line 3: malformed line (3 fields, header has 2)"
    # the line where the record starts, not where the reader stopped after a multi-line cell
    assert read_error(tmp_path, 'id,title\nA,"two\nlines"\n\nB\n') == \
        f"{tmp_path / 'items.csv'}, line 5: malformed line (1 field, header has 2)"


def test_a_column_named_twice_in_the_header_is_an_error(tmp_path):
    assert read_error(tmp_path, "id,title,title\nA,a,b\n") == \
        f"{tmp_path / 'items.csv'}, line 1: column 'title' appears twice in the header"


def test_quoted_cells_and_multi_line_cells_still_read(tmp_path):
    (tmp_path / "ok.csv").write_text('id,title\nA,"Green, ""tea"" pot"\n\nB,"two\nlines"\nC,c\n')
    assert read_table(tmp_path / "ok.csv") == [("line 2", {"id": "A", "title": 'Green, "tea" pot'}),
                                               ("line 4", {"id": "B", "title": "two\nlines"}),
                                               ("line 6", {"id": "C", "title": "c"})]


def test_prepare_stops_on_a_broken_items_file(tmp_path, capsys):
    items = 'id,title\ntea,"Green, "tea" pot\npot,Teapot\ncup,Tea cup\ncake,Lemon cake\n'
    err = cli_error(tmp_path, capsys, items=items)
    assert f"{tmp_path / 'items.csv'}, line 2: malformed line (unbalanced quote" in err


# -- duplicates and unknown items ---------------------------------------------------------------------
def test_an_item_id_twice_is_an_error_naming_both_lines(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, items=ITEMS + "pot,Big teapot,Kitchen\n")
    assert err.endswith(f"{tmp_path / 'items.csv'}, line 6: item 'pot' appears twice (first on line 3)")


def test_exact_duplicate_interactions_are_dropped_and_counted(tmp_path, capsys):
    events = EVENTS + "cat,cake,4\ncat,cake,5\n"  # one exact copy, one repeat at a later time (kept)
    interactions, items_file = files(tmp_path, events)
    out = tmp_path / "out"
    assert main(["prepare", "custom", "--interactions", str(interactions), "--items", str(items_file),
                 "--min-count", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "dropped 1 exact duplicate interaction (same user, item and timestamp) in events.csv" in stdout
    assert load_processed_dataset(out).sequences[2] == [1, 2, 3, 4, 4]
    stats = read_json(out / "stats.json")
    assert stats["duplicate_interactions_dropped"] == 1 and stats["num_interactions"] == 13


def test_interactions_with_items_not_in_the_items_file_are_kept_and_reported(tmp_path, capsys):
    events = EVENTS + "ann,mug,9\nbob,mug,9\ncat,bowl,9\n"
    interactions, items_file = files(tmp_path, events)
    out = tmp_path / "out"
    assert main(["prepare", "custom", "--interactions", str(interactions), "--items", str(items_file),
                 "--min-count", "1", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert ("3 interactions name 2 items not in items.csv (mug, bowl): kept, with the text 'Item <id>' "
            "and no title") in stdout
    stats = read_json(out / "stats.json")
    assert stats["interactions_with_unknown_items"] == 3 and stats["unknown_items"] == 2
    assert stats["items_without_metadata"] == 2
    data = load_processed_dataset(out)
    assert data.item_texts[data.item_raw_ids.index("mug")] == "Item mug"


def test_k_core_losses_are_reported(tmp_path):
    stats = prepare(tmp_path, events=EVENTS + "dan,tea,1\n", min_count=2)
    assert stats["notes"] == ["--min-count 2 dropped 1 of 4 users, 0 of 4 items, 1 of 13 interactions"]
    assert prepare(tmp_path)["notes"] == []


# -- required cells --------------------------------------------------------------------------------
def test_an_empty_cell_is_named_not_called_a_missing_column(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, events=EVENTS + ",tea,7\n")
    assert err.endswith(f"{tmp_path / 'events.csv'}, line 14, column 'user': empty cell")
    err = cli_error(tmp_path, capsys, items=ITEMS + ",Mug,Kitchen\n")
    assert err.endswith(f"{tmp_path / 'items.csv'}, line 6, column 'id': empty cell")


def test_a_missing_column_lists_the_columns_there_are(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, events=EVENTS.replace("timestamp", "time", 1))
    assert err.endswith(f"{tmp_path / 'events.csv'}, line 2: missing column(s) timestamp (the file has: user, "
                        "item, time; set --user-column/--item-column/--time-column)")
    err = cli_error(tmp_path, capsys, items=ITEMS.replace("id,", "sku,", 1))
    assert err.endswith(f"{tmp_path / 'items.csv'}, line 2: no 'id' column (the file has: sku, title, category; "
                        "set --item-id-column)")


# -- short users ------------------------------------------------------------------------------------
def test_short_users_are_named_and_min_count_3_is_costed(tmp_path, capsys):
    events = EVENTS + "dan,tea,1\ndan,pot,2\neve,cup,1\n"
    err = cli_error(tmp_path, capsys, events=events, extra=["--min-count", "1"])
    assert err.endswith("custom: 2 user(s) have fewer than 3 interactions after filtering (dan, eve); "
                        "leave-one-out needs at least 3 (train, valid, test). --min-count 3 would drop 2 of 5 "
                        "users and 0 of 4 items; or give those users more interactions.")


# -- timestamps -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, seconds", [
    ("1709294400", 1709294400.0), ("12.5", 12.5), (7, 7.0),
    ("2024-03-01", 1709251200.0), ("2024-03-01T12:00:00Z", 1709294400.0),
    ("2024-03-01T13:00:00+01:00", 1709294400.0), ("2024-03-01 12:00:00", 1709294400.0),
])
def test_timestamps_are_numbers_or_iso_dates(value, seconds):
    assert parse_timestamp(value)[0] == seconds


@pytest.mark.parametrize("value", ["yesterday", "nan", "inf", "", True, "01/03/2024"])
def test_other_timestamps_are_refused(value):
    with pytest.raises(ValueError):
        parse_timestamp(value)


def test_a_time_format_reads_other_dates():
    assert parse_timestamp("01/03/2024 12:00", "%d/%m/%Y %H:%M") == (1709294400.0, "date")
    with pytest.raises(ValueError):
        parse_timestamp("2024-03-01", "%d/%m/%Y")


def test_iso_dates_order_each_history(tmp_path):
    events = "user,item,timestamp\n" + "".join(
        f"{u},{i},2024-03-0{d}T10:00:00Z\n" for u in ("ann", "bob") for d, i in [(3, "cup"), (1, "tea"), (2, "pot")])
    prepare(tmp_path, events=events)
    data = load_processed_dataset(tmp_path / "out")
    assert [data.item_raw_ids[i - 1] for i in data.sequences[0]] == ["tea", "pot", "cup"]
    prepare(tmp_path, events=events.replace("2024-03-0", "0").replace("T10:00:00Z", "/03/2024"),
            time_format="%d/%m/%Y")
    assert load_processed_dataset(tmp_path / "out").sequences == data.sequences


def test_a_bad_timestamp_names_file_and_line(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, events=EVENTS + "ann,tea,next tuesday\n")
    assert err.endswith(f"{tmp_path / 'events.csv'}, line 14: timestamp='next tuesday' is not a number or an "
                        "ISO-8601 date (e.g. 1709294400 or 2024-03-01T12:00:00Z)")


def test_numbers_and_dates_do_not_mix(tmp_path, capsys):
    err = cli_error(tmp_path, capsys, events=EVENTS + "ann,tea,2024-03-01\n")
    assert err.endswith(f"{tmp_path / 'events.csv'}, line 14: timestamp='2024-03-01' is a date but line 2's is "
                        "a number; use one kind in the whole file")


# -- titles -------------------------------------------------------------------------------------------
def test_without_a_title_column_the_first_text_column_gives_titles(tmp_path):
    items = "id,price,label,category\ntea,3,Green tea,Drinks\npot,12,Teapot,Kitchen\ncup,4,Tea cup,Kitchen\n" \
            "cake,5,Lemon cake,Bakery\n"
    stats = prepare(tmp_path, items=items)
    assert "items.csv has no title or name column: display titles come from column 'label'" in stats["notes"]
    data = load_processed_dataset(tmp_path / "out")
    assert data.item_titles[data.item_raw_ids.index("pot")] == "Teapot"
    assert data.item_texts[data.item_raw_ids.index("pot")] == "Price: 12; Label: Teapot; Category: Kitchen"
    assert not [n for n in prepare(tmp_path)["notes"] if "title" in n]


def test_short_users_when_min_count_3_would_leave_nothing(tmp_path, capsys):
    events = "user,item,timestamp\nann,tea,1\nann,pot,2\nann,cup,3\nbob,tea,1\n"
    err = cli_error(tmp_path, capsys, events=events, extra=["--min-count", "1"])
    assert err.endswith("custom: 1 user(s) have fewer than 3 interactions after filtering (bob); leave-one-out "
                        "needs at least 3 (train, valid, test). --min-count 3 would leave nothing; or give those "
                        "users more interactions.")


def test_genrec_prepare_takes_a_time_format(tmp_path, capsys):
    events = "user,item,timestamp\n" + "".join(
        f"{u},{i},0{d}/03/2024\n" for u in ("ann", "bob") for d, i in [(3, "cup"), (1, "tea"), (2, "pot")])
    interactions, items_file = files(tmp_path, events)
    argv = ["prepare", "custom", "--interactions", str(interactions), "--items", str(items_file),
            "--out", str(tmp_path / "out"), "--min-count", "1"]
    assert main(argv) == 2 and "ISO-8601" in capsys.readouterr().err
    assert main([*argv, "--time-format", "%d/%m/%Y"]) == 0
    data = load_processed_dataset(tmp_path / "out")
    assert [data.item_raw_ids[i - 1] for i in data.sequences[0]] == ["tea", "pot", "cup"]
