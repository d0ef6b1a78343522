"""Collision suffix: unique, deterministic, numbered by item order within a bucket; SIDs by item id."""

import numpy as np
import pytest

from genrec.core.errors import GenrecError
from genrec.tokenizer.artifact import SemanticIds
from genrec.tokenizer.semantic_ids import add_collision_suffix


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


def test_codes_of_reads_the_row_of_each_1_based_item_id():
    sids = SemanticIds(codes=add_collision_suffix(np.array([[1, 2], [1, 2], [0, 3]])), codebook_sizes=(4, 4),
                       suffix_size=2, checksum="")
    assert sids.codes_of(1).tolist() == [1, 2, 0]
    assert sids.codes_of([3, 2]).tolist() == [[0, 3, 0], [1, 2, 1]]
    assert sids.codes_of(np.array([[2], [1]])).shape == (2, 1, 3)
    for bad in (0, 4, [1, -1]):  # 0 would otherwise read the last row
        with pytest.raises(GenrecError, match="1..3"):
            sids.codes_of(bad)
    with pytest.raises(GenrecError, match="integers"):
        sids.codes_of([1.0])


def test_bad_codes():
    with pytest.raises(ValueError):
        add_collision_suffix(np.zeros(3))
