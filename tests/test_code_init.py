"""Code embeddings initialised from the codes' residual centroids (recommender.code_init): values
against a loop-by-loop reference, only the code rows touched, and train-recommender --code-init."""

import json

import numpy as np
import pytest

from genrec.recommender.code_init import code_centroids, init_code_embeddings, principal_directions


def _reference_centroids(tokens, vectors, levels, vocab_size):
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    residual = x - x.mean(axis=0)
    table = np.zeros((vocab_size, x.shape[1]))
    for level in range(levels):
        for token in set(tokens[:, level].tolist()):
            members = [i for i in range(len(x)) if tokens[i, level] == token]
            table[token] = residual[members].mean(axis=0)
        residual = residual - np.stack([table[tokens[i, level]] for i in range(len(x))])
    return table


def _tokens(rng, items=40):
    codes = rng.integers(0, (5, 4, 3), size=(items, 3))
    return np.column_stack([codes + np.array([3, 8, 12]), rng.integers(15, 17, size=items)])  # 3 levels + suffix


def test_centroids_match_the_reference_and_reconstruct_the_items_level_by_level():
    rng = np.random.default_rng(0)
    tokens, vectors = _tokens(rng), rng.normal(size=(40, 6))
    table = code_centroids(tokens, vectors, 3, 17)
    np.testing.assert_allclose(table, _reference_centroids(tokens, vectors, 3, 17), atol=1e-12)
    assert not table[15:].any() and not table[:3].any()  # suffix and special tokens: untouched
    x = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    centred = x - x.mean(axis=0)
    one, three = table[tokens[:, 0]], table[tokens[:, :3]].sum(axis=1)
    assert np.linalg.norm(centred - three) < np.linalg.norm(centred - one) < np.linalg.norm(centred)


def test_only_the_code_rows_change_to_the_scaled_projection():
    import torch

    rng = np.random.default_rng(1)
    tokens, vectors = _tokens(rng), rng.normal(size=(40, 24))
    embedding = torch.nn.Embedding(17, 8)
    before = embedding.weight.detach().clone()
    init_code_embeddings(embedding, tokens, vectors, 3)
    rows = np.unique(tokens[:, :3])
    others = np.setdiff1d(np.arange(17), rows)
    assert torch.equal(embedding.weight[others], before[others])
    expected = code_centroids(tokens, vectors, 3, 17)[rows] @ principal_directions(vectors, 8)
    got = embedding.weight[rows].detach().double().numpy()
    scale = got.ravel() @ expected.ravel() / (expected.ravel() @ expected.ravel())
    np.testing.assert_allclose(got, scale * expected, atol=1e-5)
    assert got.std() == pytest.approx(before.std().item(), rel=1e-4)


def test_train_recommender_code_init_centroids_from_the_cli(tmp_path, capsys):
    from genrec.cli import main
    from genrec.recommender.recommender import Recommender
    from tests.recommender_fixtures import write_dataset, write_embedding_cache, write_tokenizer

    data = write_dataset(tmp_path / "data", num_users=30)
    write_tokenizer(data / "tokenizer")
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"model": {"num_encoder_layers": 1, "num_decoder_layers": 1, "d_model": 16,
                                             "num_heads": 2, "d_kv": 8, "d_ff": 32, "encoder_input": "items"},
                                   "train": {"batch_size": 16, "max_steps": 2, "eval_every": 2, "eval_users": 0,
                                             "eval_beams": 10, "warmup_steps": 1}}))
    args = ["train-recommender", "--dataset", str(data), "--config", str(options), "--code-init", "centroids",
            "--fusion-weights", "prior=0", "--no-progress", "--threads", "1", "--t5-only"]
    write_embedding_cache(data, np.random.default_rng(2).normal(size=(30, 8)))
    assert main(args) == 0
    assert Recommender.load(data / "recommender").config.code_init == "centroids"
    assert main([*args[:-1], "--code-init", "codebooks"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_centroids_without_text_embeddings_is_a_one_line_error():
    from genrec.core.errors import GenrecError
    from genrec.recommender.model import RecommenderConfig, build_model
    from genrec.recommender.vocab import SidVocab

    vocab = SidVocab((4, 4, 3, 2))
    with pytest.raises(GenrecError, match="needs the items' SIDs and text embeddings"):
        build_model(RecommenderConfig(d_model=16, num_heads=2, d_kv=8, d_ff=32, code_init="centroids"), vocab,
                    np.zeros((3, 4), dtype=np.int64), None)
