"""Collaborative item vectors for the tokenizer (data_prep.collaborative, train-tokenizer
--collaborative-weight): co-occurrence and PPMI against direct loops, vectors that put items with
the same neighbours together, only training interactions read, and the artifact that add-items and
sid-metrics reuse."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genrec import pipeline
from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.data_prep import embeddings
from genrec.data_prep.collaborative import (COLLABORATIVE_FILE, collaborative_vectors, cooccurrence_matrix, ppmi,
                                            tokenizer_vectors)
from genrec.data_prep.dataset import load_processed_dataset
from genrec.tokenizer.artifact import load_semantic_ids
from tests.recommender_fixtures import write_dataset, write_embedding_cache


def test_cooccurrence_weighs_each_pair_within_the_window_by_one_over_distance():
    sequences = [[1, 2, 3, 4], [4, 2], [5]]
    counts = cooccurrence_matrix(sequences, num_items=5, window=2).toarray()
    expected = np.zeros((5, 5))
    for sequence in sequences:
        for i, a in enumerate(sequence):
            for j, b in enumerate(sequence):
                if 0 < abs(i - j) <= 2:
                    expected[a - 1, b - 1] += 1.0 / abs(i - j)
    np.testing.assert_allclose(counts, expected)


def test_ppmi_matches_the_formula_and_drops_non_positive_values():
    counts = cooccurrence_matrix([[1, 2, 3, 1, 2], [3, 4], [4, 1]], num_items=4, window=3)
    dense = counts.toarray()
    rows = dense.sum(1)
    with np.errstate(divide="ignore"):
        pmi = np.log(dense * dense.sum() / np.outer(rows, rows))
    expected = np.where(np.isfinite(pmi) & (pmi > 0), pmi, 0.0)
    np.testing.assert_allclose(ppmi(counts).toarray(), expected, rtol=1e-10)


def test_items_with_the_same_neighbours_get_the_same_direction_and_loners_get_zero():
    rng = np.random.default_rng(0)
    # Two communities: items 1-5 and 6-10 co-occur within their own group only; item 11 never appears.
    sequences = [list(rng.choice(np.arange(1, 6), 6)) for _ in range(200)]
    sequences += [list(rng.choice(np.arange(6, 11), 6)) for _ in range(200)]
    vectors = collaborative_vectors(sequences, num_items=11, dim=4)
    assert vectors.shape == (11, 4) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors[:10], axis=1), 1.0, rtol=1e-5)
    assert np.all(vectors[10] == 0)
    cos = vectors[:10] @ vectors[:10].T
    assert cos[:5, :5].min() > cos[:5, 5:].max() + 0.2  # within a community closer than across
    np.testing.assert_array_equal(vectors, collaborative_vectors(sequences, num_items=11, dim=4))  # deterministic


def test_tokenizer_vectors_are_unit_text_then_weighted_collaborative_zero_for_items_added_later():
    text = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]], dtype=np.float32)
    collaborative = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)  # item 3 came later
    out = tokenizer_vectors(text, collaborative, weight=2.0)
    np.testing.assert_allclose(out, [[0.6, 0.8, 2, 0, 0], [0, 1, 0, 2, 0], [1, 0, 0, 0, 0]])
    assert tokenizer_vectors(text, collaborative, weight=0.0) is text
    assert tokenizer_vectors(text, None, weight=1.0) is text


@pytest.fixture()
def data(tmp_path, monkeypatch):
    root = write_dataset(tmp_path / "data", num_users=60, num_items=40)
    vectors = np.random.default_rng(0).normal(size=(40, 12)).astype(np.float32)
    write_embedding_cache(root, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    return root


def train(data, out=None, **fields):
    return pipeline.train_tokenizer(pipeline.tokenizer_config_from(
        {"method": "rkmeans", "codebook_size": 4, "kmeans_iters": 5, **fields}, dataset=data, out=out, progress=False))


def test_a_collaborative_tokenizer_reads_text_plus_vectors_from_training_sequences_only(data, tmp_path):
    result = train(data, collaborative_weight=1.0, collaborative_dim=8)
    config = json.loads((result.path / "config.json").read_text())
    assert config["collaborative"] == {"weight": 1.0, "dim": 8, "window": 3}
    assert config["embedding_dim"] == 12 + 8
    stored = np.load(result.path / COLLABORATIVE_FILE)
    dataset = load_processed_dataset(data)
    sequences = [dataset.train_sequence(u) for u in range(1, dataset.num_users + 1)]
    np.testing.assert_array_equal(stored, collaborative_vectors(sequences, dataset.num_items, dim=8))
    # Changing every user's validation and test items changes nothing: they are never read.
    table = pq.read_table(data / "sequences.parquet").to_pydict()
    table["items"] = [s[:-2] + [(s[-1] % 40) + 1, (s[-2] % 40) + 1] for s in table["items"]]
    pq.write_table(pa.table(table), data / "sequences.parquet")
    again = train(data, out=tmp_path / "again", collaborative_weight=1.0, collaborative_dim=8)
    np.testing.assert_array_equal(np.load(again.path / COLLABORATIVE_FILE), stored)
    np.testing.assert_array_equal(load_semantic_ids(again.path).codes, load_semantic_ids(result.path).codes)


def test_the_cli_flags_sid_metrics_and_the_text_plus_collaborative_default(data, capsys):
    assert main(["train-tokenizer", "--dataset", str(data), "--method", "rkmeans", "--codebook-size", "4",
                 "--kmeans-iters", "5", "--collaborative-weight", "0.5", "--collaborative-dim", "6",
                 "--collaborative-window", "2", "--no-progress"]) == 0
    assert "collaborative vectors (weight 0.5, 6 dims, window 2)" in capsys.readouterr().out
    config = json.loads((data / "tokenizer" / "config.json").read_text())
    assert config["collaborative"] == {"weight": 0.5, "dim": 6, "window": 2}
    dataset = load_processed_dataset(data)
    np.testing.assert_array_equal(np.load(data / "tokenizer" / COLLABORATIVE_FILE),
                                  collaborative_vectors(dataset.train_sequences(), dataset.num_items, dim=6, window=2))
    assert json.loads((data / "tokenizer" / "config.json").read_text())["embedding_dim"] == 12 + 6
    assert main(["sid-metrics", "--dataset", str(data)]) == 0  # re-reads text + the stored vectors
    assert "semantic cohesion" in capsys.readouterr().out.lower()
    default = train(data, out=data / "default")  # the study's validation choice: W = 1, 64 dims
    assert json.loads((default.path / "config.json").read_text())["collaborative"] == {"weight": 1.0, "dim": 64, "window": 3}
    plain = train(data, out=data / "plain", collaborative_weight=0.0)
    assert not (plain.path / COLLABORATIVE_FILE).exists()
    assert "collaborative" not in json.loads((plain.path / "config.json").read_text())


def test_bad_collaborative_options_are_clear_errors(data):
    with pytest.raises(GenrecError, match="collaborative_weight must be >= 0"):
        train(data, collaborative_weight=-1.0)
    with pytest.raises(GenrecError, match="collaborative_dim >= 1"):
        train(data, collaborative_weight=1.0, collaborative_dim=0)


def test_add_items_gives_a_new_item_the_sid_of_its_text_with_no_collaborative_part(data, tmp_path, monkeypatch):
    import torch

    from genrec.tokenizer.registry import load_tokenizer
    from tests.test_add_items import TINY, FakeEncoder

    train(data, collaborative_weight=1.0, collaborative_dim=8)
    torch.manual_seed(0)
    pipeline.train_recommender(pipeline.RecommenderTrainingConfig.from_options(
        data, model=TINY, train={"max_steps": 2, "eval_every": 2, "eval_users": 0, "batch_size": 16,
                                 "warmup_steps": 1}, progress=False, sasrec_beside=None))
    texts = load_processed_dataset(data).item_texts
    text_vectors = np.load(next((data / "embeddings").iterdir()) / embeddings.EMBEDDINGS_FILE)
    monkeypatch.setattr(embeddings, "load_encoder",
                        lambda name, device=None: FakeEncoder(dict(zip(texts, text_vectors))))
    items = tmp_path / "new.jsonl"
    items.write_text(json.dumps({"id": "N1", "title": "new", "text": "Title: never seen"}) + "\n")
    assert main(["add-items", "--dataset", str(data), "--items", str(items)]) == 0
    sids = load_semantic_ids(data / "tokenizer")
    assert sids.num_items == 41
    new_vector = np.load(next((data / "embeddings").iterdir()) / embeddings.EMBEDDINGS_FILE)[40:]
    expected = load_tokenizer(data / "tokenizer").encode(np.concatenate([new_vector, np.zeros((1, 8), np.float32)], 1))
    bucket = (sids.codes[:40, :-1] == expected[0]).all(1).sum()
    assert bucket < sids.suffix_size  # its own bucket has room, so it must sit there
    assert sids.codes[40, :-1].tolist() == expected[0].tolist()
