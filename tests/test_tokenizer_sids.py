"""Collision suffix: unique, deterministic, numbered by item order within a bucket."""

import numpy as np
import pytest

from genrec.tokenizer.semantic_ids import add_collision_suffix, sid_key, sid_maps


def test_suffix_numbers_items_in_a_bucket_by_item_order():
    codes = np.array([[1, 2], [0, 0], [1, 2], [3, 3], [1, 2], [0, 0]])
    sids = add_collision_suffix(codes)
    assert sids[:, -1].tolist() == [0, 0, 1, 0, 2, 1]
    assert (sids[:, :2] == codes).all() and sids.dtype == np.int64


def test_suffix_makes_sids_unique_and_is_deterministic():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, size=(500, 3))
    sids = add_collision_suffix(codes)
    assert len({tuple(r) for r in sids}) == 500
    assert (add_collision_suffix(codes.copy()) == sids).all()
    # Brute force: suffix = number of earlier rows with the same codes.
    expected = [sum((codes[j] == codes[i]).all() for j in range(i)) for i in range(500)]
    assert sids[:, -1].tolist() == expected


def test_maps_round_trip():
    sids = add_collision_suffix(np.array([[1, 2], [1, 2]]))
    to_item, to_sid = sid_maps(sids)
    assert to_item == {"1-2-0": 1, "1-2-1": 2}
    assert to_sid == {"1": [1, 2, 0], "2": [1, 2, 1]}
    assert sid_key([4, 5, 0]) == "4-5-0"


def test_bad_codes():
    with pytest.raises(ValueError):
        add_collision_suffix(np.zeros(3))
