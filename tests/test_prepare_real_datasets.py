"""Standard counts on the real datasets in ../shared/datasets (slow; run with -m slow)."""

from pathlib import Path

import pytest

import genrec.core.layout
from genrec.data_prep.dataset import load_processed_dataset
from genrec.data_prep.prepare import prepare_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.mark.slow
@pytest.mark.parametrize("name, expected", [
    ("amazon-beauty", (22363, 12101, 198502)),
    ("lastfm", (1090, 3646, 52551)),
    ("ml-1m", (6040, 3416, None)),  # ML-1M's standard figure is users and items with >= 5 ratings
])
def test_standard_counts(tmp_path, monkeypatch, name, expected):
    if not (SHARED / name).is_dir():
        pytest.skip(f"{SHARED / name} not present")
    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path / "data-root")
    stats = prepare_dataset(name, tmp_path / name, SHARED / name, allow_download=False)
    got = (stats["num_users"], stats["num_items"], stats["num_interactions"])
    assert got[:2] == expected[:2]
    if expected[2] is not None:
        assert got[2] == expected[2]
    data = load_processed_dataset(tmp_path / name)
    assert stats["items_without_metadata"] == 0 and all(data.item_texts)
    if name == "amazon-beauty":  # P5 numbering: users in file order, items by first appearance
        first_line = (SHARED / name / "user_sequence.txt").read_text().split("\n", 1)[0].split()
        assert data.user_raw_ids[0] == first_line[0]
        assert [data.item_raw_ids[i - 1] for i in data.sequences[0]] == first_line[1:]
        assert data.sequences[0] == list(range(1, len(first_line)))
