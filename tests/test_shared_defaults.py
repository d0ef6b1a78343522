"""The Python API, the CLI and the HTTP API answer one request alike: the same defaults (top K, beam
width, the user's own history left out) and the same limits (genrec.core.limits)."""

import pytest

from genrec import pipeline
from genrec.cli import build_parser
from genrec.core.errors import GenrecError
from genrec.core.limits import DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN, DEFAULT_TOP_K, MAX_TOP_K
from tests.recommender_fixtures import train_tiny_recommender


def test_api_cli_and_server_share_their_defaults():
    from genrec.serve import RecommendRequest

    cli = build_parser().parse_args(["recommend", "--user", "1"])
    api, every = pipeline.RecommendConfig(), pipeline.RecommendAllConfig(out="x.parquet")
    server = RecommendRequest(user="1")
    assert (api.top_k, api.beams, api.exclude_seen) == (DEFAULT_TOP_K, DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN)
    assert (every.top_k, every.beams, every.exclude_seen) == (DEFAULT_TOP_K, DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN)
    assert (cli.top_k, cli.beams, cli.exclude_seen) == (DEFAULT_TOP_K, DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN)
    assert (server.top_k, server.exclude_seen) == (DEFAULT_TOP_K, DEFAULT_EXCLUDE_SEEN)


@pytest.mark.parametrize("options, message", [({"top_k": MAX_TOP_K + 1}, "top_k must be in 1.."),
                                              ({"top_k": 0}, "top_k must be in 1.."),
                                              ({"beams": 0}, "beams must be in 1..")])
def test_the_api_refuses_what_the_cli_and_server_refuse(options, message):
    with pytest.raises(GenrecError, match=message):  # before any model is loaded
        pipeline.recommend(pipeline.RecommendConfig(dataset="nowhere", user="1", **options))
    with pytest.raises(GenrecError, match=message):
        pipeline.recommend_all(pipeline.RecommendAllConfig(out="nowhere/x.parquet", dataset="nowhere", **options))


def test_the_api_leaves_the_users_history_out_by_default(tmp_path):
    root = train_tiny_recommender(tmp_path, num_users=40)
    config = pipeline.RecommendConfig(dataset=root / "data", model=root / "model", user="#3", top_k=20, beams=30)
    result = pipeline.recommend(config)
    seen = {item["item_id"] for item in result.history}
    assert result.items and not seen & {item["item_id"] for item in result.items}
    kept = pipeline.recommend(pipeline.RecommendConfig(dataset=root / "data", model=root / "model", user="#3",
                                                       top_k=20, beams=30, exclude_seen=False))
    assert seen & {item["item_id"] for item in kept.items}  # asked for: history items may come back
