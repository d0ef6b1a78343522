"""Beam search's own error (recommender.search_error): a target's teacher-forced log-probability is
the score the beam gives the same item, an exhaustive beam makes no search error, and a narrow beam
on a sharp untrained model does make some: every target the exact top k holds and it missed."""

import numpy as np
import torch

from genrec.recommender.recommender import Recommender
from genrec.recommender.search_error import search_error, target_log_probs
from tests.test_encoder_input import setup


def _recommender(tmp_path):
    dataset, sids, _, config, model = setup(tmp_path)
    return dataset, Recommender(model, sids, config)


def test_a_targets_log_probability_is_the_beams_score_for_that_item(tmp_path):
    dataset, recommender = _recommender(tmp_path)
    histories = [dataset.train_sequence(u) for u in range(1, 6)]
    items, scores = recommender.recommend(histories, top_k=5, beams=5, exclude_seen=False)
    got = target_log_probs(recommender, histories, [int(row[2]) for row in items])
    np.testing.assert_allclose(got, scores[:, 2], rtol=1e-4, atol=1e-4)


def test_an_exhaustive_beam_makes_no_search_error_and_shares_sum_to_one(tmp_path):
    dataset, recommender = _recommender(tmp_path)
    every = search_error(recommender, dataset, "valid", k=5, beams=recommender.num_items)
    assert every["search_error"] == 0.0
    assert abs(every["hit"] + every["search_error"] + every["model_error"] - 1) < 1e-9


def test_a_narrow_beam_prunes_targets_the_model_ranks_in_the_top_k(tmp_path):
    dataset, recommender = _recommender(tmp_path)
    torch.manual_seed(3)
    with torch.no_grad():  # a sharper, arbitrary model: the first SID step decides more
        for p in recommender.model.parameters():
            p.mul_(4.0)
    narrow = search_error(recommender, dataset, "valid", k=5, beams=5)
    exhaustive = search_error(recommender, dataset, "valid", k=5, beams=recommender.num_items)
    assert narrow["search_error"] > 0 and exhaustive["search_error"] == 0
    # A target in the exact top k that the narrow beam missed scores above the narrow k-th: a search error.
    assert exhaustive["hit"] <= narrow["hit"] + narrow["search_error"] + 1e-9


def test_several_widths_at_once_are_each_width_alone(tmp_path):
    from genrec.recommender.search_error import search_errors

    dataset, recommender = _recommender(tmp_path)
    together = search_errors(recommender, dataset, "valid", k=5, widths=(5, 10))
    assert together == [search_error(recommender, dataset, "valid", k=5, beams=5),
                        search_error(recommender, dataset, "valid", k=5, beams=10)]
