"""The synthetic preset: the sizes asked for, the same data for the same seed, embeddings that come
with it (no encoder run), and transitions a model can learn (the prior beats popularity)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

from genrec.cli import main
from genrec.core.layout import ITEMS_FILE, SEQUENCES_FILE, USERS_FILE
from genrec.data_prep.dataset import load_processed_dataset
from genrec.data_prep.embeddings import load_or_compute_item_embeddings
from genrec.data_prep.prepare import prepare_dataset
from genrec.data_prep.synthetic import ENCODER, SyntheticConfig
from genrec.eval.popularity import popularity_metrics
from genrec.recommender.fusion import prior_metrics


@pytest.fixture(autouse=True)
def data_root(tmp_path, monkeypatch):
    import genrec.core.layout

    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path / "data-root")


def make(path, **fields):
    prepare_dataset("synthetic", path, path.parent, synthetic=SyntheticConfig(**fields))
    return load_processed_dataset(path)


def test_sizes_lengths_and_embeddings(tmp_path):
    data = make(tmp_path / "a", num_items=500, num_users=700, chunk_users=300)
    assert (data.num_items, data.num_users) == (500, 700)
    lengths = np.array([len(s) for s in data.sequences])
    assert lengths.min() >= 5 and lengths.max() <= 50 and 8 <= lengths.mean() <= 12
    assert all(1 <= i <= 500 for seq in data.sequences for i in seq)
    assert data.stats["num_interactions"] == lengths.sum()
    embeddings = load_or_compute_item_embeddings(tmp_path / "a", show_progress=False)  # no encoder: it came along
    assert embeddings.encoder == ENCODER and embeddings.vectors.shape == (500, 64)
    np.testing.assert_allclose(np.linalg.norm(embeddings.vectors, axis=1), 1.0, rtol=1e-5)
    assert len(set(data.item_texts)) == 500 and len(set(data.user_raw_ids)) == 700


def test_same_seed_same_data_other_seed_other_data(tmp_path):
    a = make(tmp_path / "a", num_items=300, num_users=400, seed=3)
    b = make(tmp_path / "b", num_items=300, num_users=400, seed=3)
    c = make(tmp_path / "c", num_items=300, num_users=400, seed=4)
    assert a.sequences == b.sequences and a.item_texts == b.item_texts
    for name in (ITEMS_FILE, USERS_FILE, SEQUENCES_FILE):
        assert pq.read_table(tmp_path / "a" / name).equals(pq.read_table(tmp_path / "b" / name))
    va = load_or_compute_item_embeddings(tmp_path / "a", show_progress=False).vectors
    vb = load_or_compute_item_embeddings(tmp_path / "b", show_progress=False).vectors
    np.testing.assert_array_equal(va, vb)
    assert a.sequences != c.sequences


def test_embeddings_cluster_and_popularity_is_skewed(tmp_path):
    data = make(tmp_path / "a", num_items=2000, num_users=3000, cluster_size=100)
    vectors = load_or_compute_item_embeddings(tmp_path / "a", show_progress=False).vectors
    cluster = np.array([int(t.rsplit(" ", 1)[1]) for t in data.item_texts])
    same = cluster[:, None] == cluster[None, :]
    cosine = vectors @ vectors.T
    assert cosine[same].mean() > cosine[~same].mean() + 0.3
    counts = np.bincount(np.concatenate(data.sequences), minlength=2001)[1:]
    top = np.sort(counts)[::-1]
    assert top[:20].sum() > 5 * 0.01 * counts.sum()  # a power law: the top 1% of items get over 5% of the interactions


def test_transitions_are_learnable(tmp_path):
    """The transition prior (fit on training parts) beats most-popular on the test split by far."""
    data = make(tmp_path / "a", num_items=1000, num_users=2000)
    prior, popular = prior_metrics(data, "test"), popularity_metrics(data, "test")
    assert prior["recall@10"] > 3 * popular["recall@10"] and prior["recall@10"] > 0.15


def test_cli(tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["prepare", "synthetic", "--items", "200", "--users", "250", "--seed", "1", "--out", str(out)]) == 0
    assert "250 users, 200 items" in capsys.readouterr().out
    assert load_processed_dataset(out).num_users == 250
    assert main(["prepare", "synthetic", "--items", "lots", "--out", str(tmp_path / "t")]) == 2
    assert "--items 'lots'" in capsys.readouterr().err
    assert main(["prepare", "synthetic", "--items", "5", "--out", str(tmp_path / "t")]) == 2
    assert main(["prepare", "demo", "--users", "5", "--out", str(tmp_path / "t")]) == 2
