"""add-items on a T5 whose encoder reads item text and ids (recommender.item_input). Its own
module: test_add_items' module fixture patches the sentence encoder for its own dataset."""

import numpy as np
import pytest
import torch

from genrec import pipeline
from genrec.cli import main
from genrec.data_prep import embeddings
from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.recommender import Recommender
from genrec.tokenizer.rkmeans import RKMeansConfig
from tests.recommender_fixtures import write_dataset, write_embedding_cache
from tests.test_add_items import DIM, TINY, FakeEncoder



def test_a_model_reading_item_text_and_ids_takes_new_items_text_rows_and_no_id(tmp_path):
    """The T5 with item_text / item_ids (recommender.item_input): add-items writes the new items'
    unit text rows into its weights, their id vectors are zeros (never trained), the trained rows
    are untouched, and a history holding a new item is read with its text and recommended from."""
    from safetensors.torch import load_file

    data = write_dataset(tmp_path / "data", num_users=60, num_items=40)
    texts = load_processed_dataset(data).item_texts
    vectors = np.random.default_rng(0).normal(size=(len(texts), DIM)).astype(np.float32)
    write_embedding_cache(data, vectors)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
        pipeline.train_tokenizer(pipeline.TokenizerTrainingConfig(data, method="rkmeans", progress=False,
                                                                  options=RKMeansConfig(codebook_size=4, kmeans_iters=5)))
        torch.manual_seed(0)
        pipeline.train_recommender(pipeline.RecommenderTrainingConfig.from_options(
            data, model={**TINY, "encoder_input": "items", "item_text": True, "item_ids": True},
            train={"max_steps": 6, "eval_every": 6, "eval_users": 0, "batch_size": 16, "warmup_steps": 1},
            fusion_grids={"prior": (0.0,)}, progress=False, sasrec_beside=None))
        before = load_file(data / "recommender" / "model.safetensors")
        monkeypatch.setattr(embeddings, "load_encoder", lambda name, device=None: FakeEncoder(dict(zip(texts, vectors))))
        (tmp_path / "new.csv").write_text("id,title,text\nN1,new one,Title: never seen\n")
        assert main(["add-items", "--dataset", str(data), "--items", str(tmp_path / "new.csv")]) == 0
    after = load_file(data / "recommender" / "model.safetensors")
    np.testing.assert_array_equal(after["item_input.text"][:41].numpy(), before["item_input.text"].numpy())
    new_row = after["item_input.text"][41].numpy()
    grown = np.load(next((data / "embeddings").iterdir()) / embeddings.EMBEDDINGS_FILE)[40]
    np.testing.assert_allclose(new_row, grown / np.linalg.norm(grown), rtol=1e-5)
    recommender = Recommender.load(data / "recommender")
    module = recommender.model.item_input
    assert module.ids.weight.shape[0] == 42 and torch.count_nonzero(module.ids.weight[41]) == 0
    tokens = torch.from_numpy(recommender.vocab.item_tokens(recommender.sids.codes[40:41]))
    assert module.item_ids(tokens.unsqueeze(0)).tolist() == [[41]]  # the new item is found by its SID
    items, _ = recommender.recommend([[1, 2, 41]], top_k=5)
    assert (items > 0).all()
