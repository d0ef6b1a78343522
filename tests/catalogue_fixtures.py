"""A tiny dataset with everything add-items grows (embedding cache, tokenizer, a SASRec at
DATASET/sasrec, a T5 model fusing it, a second T5 model on the same tokenizer), the test encoder
in place of a sentence encoder, and ``genrec`` runs in processes of their own (for runs a test
kills, or runs two of at once).

The test encoder (``FakeEncoder`` of tests/test_add_items.py) maps a text the dataset's embedding
cache holds to that item's vector and any other text to a hashed unit vector."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

from genrec.core import io
from tests.recommender_fixtures import write_dataset, write_embedding_cache

TINY_SASREC = dict(max_len=6, d_model=16, d_ff=32, num_layers=1, num_heads=2, dropout=0.1)
SASREC_TRAIN = {"batch_size": 8, "max_steps": 4, "eval_every": 4, "eval_users": 0, "warmup_steps": 2, "lr": 3e-3,
                "negatives": 10}
T5_TRAIN = {"max_steps": 4, "eval_every": 4, "eval_users": 0, "batch_size": 16, "warmup_steps": 1}


def build_catalogue(root: Path) -> Path:
    """root/data with all the parts; returns the dataset folder."""
    import torch

    from genrec import pipeline
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.tokenizer.rkmeans import RKMeansConfig
    from tests.test_add_items import DIM, TINY

    data = write_dataset(root / "data", num_users=60, num_items=40)
    texts = load_processed_dataset(data).item_texts
    vectors = np.random.default_rng(0).normal(size=(len(texts), DIM)).astype(np.float32)
    write_embedding_cache(data, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    os.environ["HF_HUB_OFFLINE"] = "1"  # the bundled encoder's cache above, no hub
    pipeline.train_tokenizer(pipeline.TokenizerTrainingConfig(data, method="rkmeans", progress=False,
                                                              options=RKMeansConfig(codebook_size=4, kmeans_iters=5)))
    torch.manual_seed(0)
    pipeline.train_sasrec(pipeline.SASRecTrainingConfig.from_options(data, model=TINY_SASREC, train=SASREC_TRAIN, progress=False,
                                                        fusion_grids={"prior": (0.0,)}))
    for out in ("recommender", "other"):
        pipeline.train_recommender(pipeline.RecommenderTrainingConfig.from_options(
            data, out=data / out, model=TINY, train=T5_TRAIN, progress=False,
            fusion_grids={"prior": (0.0,), "sasrec": (0.0, 0.5)}, fusion_users=20, sasrec_beside=None))
    return data


def install_test_encoder(dataset: Path, setattr=None) -> None:
    """Every sentence encoder load (``setattr``: a pytest monkeypatch's, default for this whole
    process) returns the test encoder for ``dataset``'s texts, and the hub is unreachable."""
    from genrec.data_prep import embeddings
    from genrec.data_prep.dataset import load_processed_dataset
    from tests.test_add_items import FakeEncoder

    cache = next(p for p in (dataset / "embeddings").iterdir() if not p.name.startswith("."))
    known = dict(zip(load_processed_dataset(dataset).item_texts, np.load(cache / embeddings.EMBEDDINGS_FILE)))
    setattr = setattr or (lambda owner, name, value: owner.__setattr__(name, value))
    setattr(embeddings, "load_encoder", lambda name, device=None: FakeEncoder(known))
    setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)


def write_items(path: Path, prefix: str, count: int) -> Path:
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "title": f"new {prefix}{i}",
                                        "text": f"Title: brand new {prefix} number {i}"}) + "\n" for i in range(count)))
    return path


def _run_genrec(args: list[str], fault: str | None, dataset: str) -> None:
    """A child process's body: the test encoder for ``dataset``, one thread, then ``genrec ARGS``."""
    import torch

    from genrec.cli import main

    torch.set_num_threads(1)
    install_test_encoder(Path(dataset))
    os.environ.pop(io.FAULT_LOG_ENV, None)
    if fault:
        os.environ[io.FAULT_AT_ENV] = fault
    sys.exit(main(args))


def genrec_child(args: list[str], fault: str | None = None):
    """``genrec ARGS`` (which names ``--dataset``) in a process of its own with the test encoder,
    started; ``fault``: its GENREC_FAULT_AT. Join it and read its ``exitcode`` (-9 when the fault
    point killed it). A spawned interpreter, not a fork: a fork of a process whose OpenMP threads
    already ran can hang in the child (it did on 2 cores with torch's default thread count)."""
    import multiprocessing

    dataset = args[args.index("--dataset") + 1]
    child = multiprocessing.get_context("spawn").Process(target=_run_genrec, args=(list(args), fault, str(dataset)))
    child.start()
    return child
