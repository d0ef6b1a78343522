"""Reasons beside each recommendation: the history items it followed in the counted sequences, with
the counts, checked against a brute-force reference and through the Python API, CLI and HTTP API."""

import json

import numpy as np
import pytest
import scipy.sparse as sparse
from fastapi.testclient import TestClient

from genrec.recommender.fusion import DecodingPolicy, TransitionPrior
from genrec.recommender.reasons import MAX_REASONS, Reason, transition_reasons
from genrec.serve import create_app
from tests.serve_fixtures import loaded, trained  # noqa: F401 - pytest fixtures


def reference_reasons(counts: np.ndarray, history: list[int], item: int, limit: int) -> list[Reason]:
    """Every distinct history item with a count, most counts first, ties the more recent (a last position later)."""
    if not 0 < item < counts.shape[0]:
        return []
    last_seen = {a: position for position, a in enumerate(history) if 0 < a < counts.shape[0]}
    found = [(-counts[a, item], -position, a) for a, position in last_seen.items() if counts[a, item] > 0]
    return [Reason(a, int(-negative)) for negative, _, a in sorted(found)[:limit]]


@pytest.mark.parametrize("seed", range(5))
def test_reasons_match_the_brute_force_reference(seed):
    rng = np.random.default_rng(seed)
    dense = rng.integers(0, 4, size=(16, 16)) * (rng.random((16, 16)) < 0.4)
    dense[0] = dense[:, 0] = 0
    counts = sparse.csr_matrix(dense.astype(np.float64))
    history = rng.integers(1, 16, size=9).tolist()
    items = [*rng.choice(np.arange(1, 16), size=6, replace=False).tolist(), 0, 99]  # 0: no item; 99: added later
    got = transition_reasons(counts, history, items, limit=2)
    assert got == [reference_reasons(dense, history, item, 2) for item in items]
    assert got[-2:] == [[], []]


def test_the_fused_prior_is_what_reasons_read(loaded):
    from genrec.pipeline.recommendations import reason_counts

    recommender, dataset = loaded
    prior = TransitionPrior.fit(dataset.train_sequences()[:5], dataset.num_items)
    fused = recommender.with_policy(DecodingPolicy.from_weights({"prior": 1.0}, {"prior": prior}))
    assert reason_counts(fused, dataset) is prior.counts
    alone = reason_counts(recommender, dataset)  # no prior in the policy: one fitted on every interaction
    expected = TransitionPrior.fit(dataset.sequences, dataset.num_items).counts
    assert (alone != expected).nnz == 0 and reason_counts(recommender, dataset) is alone


def test_every_reason_is_a_history_item_the_pick_followed_that_many_times(loaded):
    recommender, dataset = loaded
    counts = TransitionPrior.fit(dataset.sequences, dataset.num_items).counts.toarray()
    with TestClient(create_app(*loaded)) as client:
        named = 0
        for user in range(1, dataset.num_users + 1):
            body = client.post("/recommend", json={"user": user, "top_k": 10, "exclude_seen": False}).json()
            history = dataset.history(user)
            for row in body["recommendations"]:
                assert [Reason(r["item_id"], r["count"]) for r in row["because"]] == \
                    reference_reasons(counts, history, row["item_id"], MAX_REASONS)
                for reason in row["because"]:
                    assert reason["raw_id"] == dataset.item_raw_id(reason["item_id"])
                named += len(row["because"])
    assert named > 0  # the tiny data has transitions: some picks have reasons


def test_the_cli_prints_the_reasons_and_puts_them_in_its_json(trained, capsys):
    from genrec.cli import main

    args = ["recommend", "--dataset", str(trained / "data"), "--model", str(trained / "model"), "--user", "3",
            "--include-seen"]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["recommendations"]
    assert all("because" in row for row in rows)
    assert main(args) == 0
    out = capsys.readouterr().out
    with_reasons = [row for row in rows if row["because"]]
    assert sum(line.strip().startswith("because of ") for line in out.splitlines()) == len(with_reasons)
    for row in with_reasons:
        first = row["because"][0]
        assert f"[{first['raw_id']}] ({first['count']}x)" in out
