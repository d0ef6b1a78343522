"""The ``synthetic`` preset: a catalogue and users of any size, for measuring how the pipeline scales.

Generated in numpy, a chunk of users at a time (memory bounded by the catalogue plus one chunk),
and written as an ordinary processed dataset (genrec.core.layout) together with its item
embeddings, so no encoder runs and every later stage reads it like a real dataset:
  * items fall into clusters grouped under topics; an item's embedding is its cluster centre plus
    noise, unit length, like sentence embeddings of texts about similar things;
  * popularity follows a power law over a random order of the items (ids say nothing about it);
  * each item has a few successors, items of its own cluster (popular ones more often); a user starts at a popular
    item and then, at each step, moves to one of the current item's successors (``follow``) or
    jumps to a popular item. Transitions therefore carry signal a model can learn and popularity
    cannot.
Same config (seed included) -> the same files, byte for byte.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import genrec
from genrec.core.errors import GenrecError
from genrec.core.io import atomic_directory, atomic_write_json
from genrec.core.layout import EMBEDDINGS_DIR, ITEMS_FILE, SEQUENCES_FILE, STATS_FILE, USERS_FILE

ENCODER = "synthetic"  # the "encoder" recorded for the preset's built-in embeddings
SUCCESSOR_WEIGHTS = (0.5, 0.25, 0.15, 0.1)  # how often a user takes an item's 1st, 2nd, ... successor


@dataclass
class SyntheticConfig:
    num_items: int = 10_000
    num_users: int | None = None  # default: 2 x num_items
    seed: int = 0
    dim: int = 64  # embedding width
    cluster_size: int = 200  # items per cluster, on average
    popularity_exponent: float = 0.9  # item of popularity rank r is drawn with weight r ** -exponent
    follow: float = 0.7  # chance that the next item is a successor of the current one
    min_length: int = 5  # items per user: min_length + a geometric number, at most max_length
    mean_length: float = 10.0
    max_length: int = 50
    chunk_users: int = 100_000  # users generated and written at a time

    @property
    def users(self) -> int:
        return 2 * self.num_items if self.num_users is None else self.num_users

    def check(self) -> None:
        if self.num_items < 10:
            raise GenrecError(f"synthetic: --items must be at least 10, got {self.num_items}")
        if self.users < 1:
            raise GenrecError(f"synthetic: --users must be at least 1, got {self.users}")
        if not 0 <= self.follow <= 1 or self.dim < 2 or self.cluster_size < 1 or self.chunk_users < 1:
            raise GenrecError("synthetic: follow must be in [0, 1], dim >= 2, cluster_size and chunk_users >= 1")
        if not 3 <= self.min_length <= self.mean_length <= self.max_length:
            raise GenrecError("synthetic: need 3 <= min_length <= mean_length <= max_length")


@dataclass
class Catalogue:
    """Item-level state of the generator (index i = item id i + 1)."""

    embeddings: np.ndarray  # float32 [N, dim], unit rows
    cluster: np.ndarray  # int32 [N]
    topic: np.ndarray  # int32 [N]
    popularity_cdf: np.ndarray  # float64 [N], cumulative popularity in item order
    successors: np.ndarray  # int32 [N, len(SUCCESSOR_WEIGHTS)], 0-based item indices


def build_catalogue(config: SyntheticConfig, rng: np.random.Generator) -> Catalogue:
    n = config.num_items
    clusters = max(1, n // config.cluster_size)
    topics = max(1, int(round(np.sqrt(clusters))))
    topic_centres = rng.standard_normal((topics, config.dim)).astype(np.float32)
    cluster_topic = rng.integers(0, topics, clusters).astype(np.int32)
    cluster_centres = topic_centres[cluster_topic] + 0.6 * rng.standard_normal((clusters, config.dim)).astype(np.float32)
    cluster = rng.integers(0, clusters, n).astype(np.int32)
    embeddings = np.empty((n, config.dim), dtype=np.float32)
    for start in range(0, n, 1 << 18):  # in slices: the noise never exists for the whole catalogue twice
        part = slice(start, min(start + (1 << 18), n))
        rows = cluster_centres[cluster[part]] + 0.5 * rng.standard_normal((part.stop - start, config.dim)).astype(np.float32)
        embeddings[part] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    weight = np.empty(n)
    weight[rng.permutation(n)] = np.arange(1, n + 1, dtype=np.float64) ** -config.popularity_exponent
    # Successors: draws inside the item's own cluster weighted by sqrt(popularity) (popular items
    # follow more often, without every path ending at the head), via one cumulative sum over the
    # items sorted by cluster (a cluster is a contiguous range of it).
    order = np.argsort(cluster, kind="stable")
    cdf = np.cumsum(np.sqrt(weight[order]))
    first = np.searchsorted(cluster[order], cluster, side="left")
    last = np.searchsorted(cluster[order], cluster, side="right") - 1
    low = np.where(first > 0, cdf[np.maximum(first - 1, 0)], 0.0)
    high = cdf[last]
    draws = low[:, None] + rng.random((n, len(SUCCESSOR_WEIGHTS))) * (high - low)[:, None]
    index = np.clip(np.searchsorted(cdf, draws, side="right"), first[:, None], last[:, None])
    return Catalogue(embeddings, cluster, cluster_topic[cluster], np.cumsum(weight), order[index].astype(np.int32))


def popular_items(catalogue: Catalogue, rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` 0-based item indices drawn by popularity."""
    cdf = catalogue.popularity_cdf
    return np.minimum(np.searchsorted(cdf, rng.random(size) * cdf[-1], side="right"), len(cdf) - 1)


def user_sequences(catalogue: Catalogue, config: SyntheticConfig, rng: np.random.Generator,
                   count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` users' sequences as (lengths [count], 1-based item ids flattened, oldest first)."""
    extra = rng.geometric(1.0 / (config.mean_length - config.min_length + 1), count) - 1
    lengths = np.minimum(config.min_length + extra, config.max_length)
    width = int(lengths.max())
    grid = np.empty((count, width), dtype=np.int32)
    grid[:, 0] = popular_items(catalogue, rng, count)
    choice = np.searchsorted(np.cumsum(SUCCESSOR_WEIGHTS), rng.random((count, width)) * sum(SUCCESSOR_WEIGHTS))
    choice = np.minimum(choice, len(SUCCESSOR_WEIGHTS) - 1)
    for step in range(1, width):
        follows = rng.random(count) < config.follow
        jump = popular_items(catalogue, rng, count)
        grid[:, step] = np.where(follows, catalogue.successors[grid[:, step - 1], choice[:, step]], jump)
    keep = np.arange(width)[None, :] < lengths[:, None]
    return lengths, grid[keep].astype(np.int64) + 1


def item_texts(catalogue: Catalogue) -> tuple[list[str], list[str]]:
    """(titles, texts): short distinct strings naming each item's topic and cluster."""
    n = len(catalogue.cluster)
    titles = [f"Item {i}" for i in range(1, n + 1)]
    texts = [f"Item {i}; topic {t}; cluster {c}" for i, t, c in
             zip(range(1, n + 1), catalogue.topic.tolist(), catalogue.cluster.tolist())]
    return titles, texts


def write_synthetic(out: Path, config: SyntheticConfig) -> dict:
    """Generate and write the dataset (and its embeddings) into ``out`` atomically; returns its stats."""
    from genrec.data_prep.embeddings import META_FILE, EMBEDDINGS_FILE, encoder_slug, texts_checksum

    config.check()
    started = time.perf_counter()
    rng = np.random.default_rng([config.seed, 22])
    catalogue = build_catalogue(config, rng)
    titles, texts = item_texts(catalogue)
    n, interactions = config.num_items, 0
    with atomic_directory(out) as tmp:
        pq.write_table(pa.table({"item_id": pa.array(np.arange(1, n + 1), pa.int64()),
                                 "raw_id": [f"i{i}" for i in range(1, n + 1)], "title": titles, "text": texts}),
                       tmp / ITEMS_FILE)
        folder = tmp / EMBEDDINGS_DIR / encoder_slug(ENCODER)
        folder.mkdir(parents=True)
        np.save(folder / EMBEDDINGS_FILE, catalogue.embeddings)
        atomic_write_json(folder / META_FILE, {"encoder": ENCODER, "requested": ENCODER, "dim": config.dim,
                                               "num_items": n, "texts_sha256": texts_checksum(texts),
                                               "normalized_by_model": True})
        del titles, texts
        user_schema = pa.schema([("user_id", pa.int64()), ("raw_id", pa.string())])
        sequence_schema = pa.schema([("user_id", pa.int64()), ("items", pa.list_(pa.int64()))])
        with pq.ParquetWriter(tmp / USERS_FILE, user_schema) as users_out, \
                pq.ParquetWriter(tmp / SEQUENCES_FILE, sequence_schema) as sequences_out:
            for start in range(0, config.users, config.chunk_users):
                count = min(config.chunk_users, config.users - start)
                lengths, items = user_sequences(catalogue, config, rng, count)
                ids = pa.array(np.arange(start + 1, start + count + 1), pa.int64())
                offsets = pa.array(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32))
                users_out.write_table(pa.table({"user_id": ids, "raw_id": [f"u{u}" for u in range(start + 1, start + count + 1)]},
                                               schema=user_schema))
                sequences_out.write_table(pa.table({"user_id": ids, "items": pa.ListArray.from_arrays(offsets, pa.array(items))},
                                                   schema=sequence_schema))
                interactions += len(items)
        stats = {"name": "synthetic", "num_users": config.users, "num_items": n, "num_interactions": interactions,
                 "items_without_metadata": 0, "items_without_title": 0,
                 "parameters": {**asdict(config), "num_users": config.users,
                                "split": "leave-one-out (last = test, second-to-last = valid)"},
                 "embedding_encoder": ENCODER, "sources": {}, "genrec_version": genrec.__version__,
                 "seconds": round(time.perf_counter() - started, 2)}
        atomic_write_json(tmp / STATS_FILE, stats)
    return stats
