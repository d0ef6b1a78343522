"""Item embeddings: the Sentence-T5 code path on a tiny local T5, the bundled MiniLM, caching."""

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer, models
from transformers import T5Config, T5EncoderModel

from data_prep import embeddings
from data_prep.embeddings import load_or_compute_item_embeddings
from genrec.errors import GenrecError
from tests.recommender_fixtures import write_dataset


def tiny_sentence_t5(path):
    """A sentence-T5-shaped model (T5 encoder + mean pooling + dense + normalize), random weights."""
    from tokenizers import Tokenizer, models as tok_models, pre_tokenizers

    words = ["[PAD]", "[UNK]", "</s>", "title", "item", ":", "1", "2", "3", "4", "5", "6", "7", "8", "9", "0"]
    backend = Tokenizer(tok_models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", eos_token="</s>")
    encoder = T5EncoderModel(T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2))
    (path / "t5").mkdir(parents=True)
    encoder.save_pretrained(path / "t5")
    tokenizer.save_pretrained(path / "t5")
    word = models.Transformer(str(path / "t5"))
    model = SentenceTransformer(modules=[word, models.Pooling(16, pooling_mode="mean"),
                                         models.Dense(16, 12, activation_function=__import__("torch").nn.Identity()),
                                         models.Normalize()])
    model.save(str(path / "st5"))
    return path / "st5"


def test_sentence_t5_code_path_with_a_local_tiny_model(tmp_path):
    data = write_dataset(tmp_path / "data", num_users=5, num_items=7)
    encoder = tiny_sentence_t5(tmp_path)
    result = load_or_compute_item_embeddings(data, encoder=str(encoder), show_progress=False)
    assert result.vectors.shape == (7, 12) and result.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-5)
    assert result.encoder == str(encoder)
    again = load_or_compute_item_embeddings(data, encoder=str(encoder), show_progress=False)
    np.testing.assert_array_equal(again.vectors, result.vectors)  # served from the cache


def test_bundled_minilm_on_real_texts():
    model = embeddings.load_encoder(embeddings.BUNDLED_ENCODER)
    vectors = model.encode(["vanilla scented body lotion", "moisturizing body cream with vanilla", "carbon fiber bicycle wheel"])
    assert vectors.shape == (3, 384)
    cos = vectors @ vectors.T / np.outer(np.linalg.norm(vectors, axis=1), np.linalg.norm(vectors, axis=1))
    assert cos[0, 1] > cos[0, 2] + 0.2


def test_default_encoder_falls_back_offline_with_a_warning(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data", num_users=5, num_items=4)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(embeddings, "DEFAULT_ENCODER", "sentence-transformers/not-in-cache-anywhere")
    with pytest.warns(UserWarning, match="bundled"):
        result = load_or_compute_item_embeddings(data, show_progress=False)
    assert result.encoder == embeddings.BUNDLED_ENCODER and result.vectors.shape == (4, 384)
    assert (result.path / "meta.json").is_file()


def test_explicit_missing_encoder_is_an_error(tmp_path, monkeypatch):
    data = write_dataset(tmp_path / "data", num_users=5, num_items=4)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(GenrecError, match="cannot be reached"):
        load_or_compute_item_embeddings(data, encoder="someone/missing-model", show_progress=False)
