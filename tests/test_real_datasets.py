"""Standard counts on the real datasets in ../shared/datasets (slow; run with -m slow)."""

from pathlib import Path

import pytest

from data_prep.prepare import prepare_dataset

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


@pytest.mark.slow
@pytest.mark.parametrize("name, folder, expected", [
    ("amazon-beauty", "amazon-beauty", (22363, 12101, 198502)),
    ("lastfm", "lastfm", (1090, 3646, 52551)),
    ("ml-1m", "ml-1m", (6040, 3416, None)),
])
def test_standard_counts(tmp_path, name, folder, expected):
    if not (SHARED / folder).is_dir():
        pytest.skip(f"{SHARED / folder} not present")
    stats = prepare_dataset(name, tmp_path / name, SHARED / folder, allow_download=False)
    got = (stats["num_users"], stats["num_items"], stats["num_interactions"])
    assert got[:2] == expected[:2]
    if expected[2] is not None:
        assert got[2] == expected[2]
