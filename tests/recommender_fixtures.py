"""Tiny prepared datasets and tokenizer artifacts written by the tests themselves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genrec.tokenizer.semantic_ids import add_collision_suffix


def write_dataset(root: Path, num_users: int = 40, num_items: int = 30, seed: int = 0) -> Path:
    """Users walk item chains i -> i+1 (mod M) with noise, so there is something to learn."""
    rng = np.random.default_rng(seed)
    sequences = []
    for _ in range(num_users):
        start, length = int(rng.integers(1, num_items + 1)), int(rng.integers(4, 9))
        seq = [(start - 1 + step) % num_items + 1 for step in range(length)]
        sequences.append(seq)
    root.mkdir(parents=True, exist_ok=True)
    ids = list(range(1, num_items + 1))
    pq.write_table(pa.table({"item_id": ids, "raw_id": [f"I{i}" for i in ids], "title": [f"item {i}" for i in ids],
                             "text": [f"Title: item {i}" for i in ids]}), root / "items.parquet")
    users = list(range(1, num_users + 1))
    pq.write_table(pa.table({"user_id": users, "raw_id": [f"U{u}" for u in users]}), root / "users.parquet")
    pq.write_table(pa.table({"user_id": users, "items": sequences}), root / "sequences.parquet")
    stats = {"num_users": num_users, "num_items": num_items, "num_interactions": sum(map(len, sequences))}
    (root / "stats.json").write_text(json.dumps(stats))
    return root


def write_tokenizer(root: Path, num_items: int = 30, sizes=(4, 4, 3), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    sids = add_collision_suffix(rng.integers(0, sizes, size=(num_items, len(sizes))))
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "semantic_ids.npy", sids)
    config = {"method": "test", "num_levels": len(sizes), "codebook_sizes": list(sizes),
              "suffix_size": int(sids[:, -1].max()) + 1}
    (root / "config.json").write_text(json.dumps(config))
    return root


def write_embedding_cache(dataset: Path, vectors: np.ndarray) -> None:
    """The bundled-encoder cache that `genrec embed` would leave for these items (no model load)."""
    from genrec.data_prep import embeddings
    from genrec.data_prep.dataset import load_processed_dataset

    texts = load_processed_dataset(dataset).item_texts
    folder = dataset / "embeddings" / embeddings.encoder_slug(embeddings.BUNDLED_ENCODER)
    folder.mkdir(parents=True)
    np.save(folder / embeddings.EMBEDDINGS_FILE, np.asarray(vectors, dtype=np.float32))
    meta = {"encoder": embeddings.BUNDLED_ENCODER, "dim": int(vectors.shape[1]), "num_items": len(texts),
            "texts_sha256": embeddings.texts_checksum(texts)}
    (folder / embeddings.META_FILE).write_text(json.dumps(meta))


def train_tiny_recommender(root: Path, num_users: int) -> Path:
    """root/data (a tiny dataset), root/tok (random SIDs) and root/model (6 training steps)."""
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.model import RecommenderConfig
    from genrec.recommender.train import train_recommender
    from genrec.recommender.train_config import TrainConfig
    from genrec.tokenizer.artifact import load_semantic_ids

    dataset = load_processed_dataset(write_dataset(root / "data", num_users=num_users))
    sids = load_semantic_ids(write_tokenizer(root / "tok"))
    model = RecommenderConfig(num_encoder_layers=1, num_decoder_layers=1, d_model=16, num_heads=2, d_kv=8, d_ff=32,
                              dropout=0.1, max_history=5)
    config = TrainConfig(batch_size=16, max_steps=6, eval_every=3, eval_users=0, eval_beams=10, patience=100,
                         warmup_steps=2, lr=3e-3)
    train_recommender(dataset, sids, root / "model", model, config, progress=False)
    return root


class Killed(Exception):
    """Raised inside an optimizer step to stand for the process being killed there."""


def train_until_killed(monkeypatch, train, kill_at_step: int) -> None:
    """Run ``train()`` so that it dies (as if killed) inside optimizer step ``kill_at_step``: no
    hook in the trainer, only AdamW.step patched for the call."""
    import pytest
    import torch

    calls = {"n": 0}
    original = torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == kill_at_step:
            raise Killed
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    with pytest.raises(Killed):
        train()
    monkeypatch.undo()
