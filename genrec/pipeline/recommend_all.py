"""``recommend_all``: every user's top K to parquet, chunked, resumable and sharded over processes."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, fault_point
from genrec.core.limits import DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN, DEFAULT_TOP_K, check_request
from genrec.pipeline.common import check_output_file
from genrec.pipeline.loading import load_trained
from genrec.pipeline.recommendations import ranked, with_rule
from genrec.recommender.rules import ItemRule

RECOMMENDATIONS_MANIFEST = "_recommendations.json"  # in a partitioned output: what it holds; marks it as ours


def _check_output_folder(out: Path) -> None:
    """A partitioned output goes to a new folder (or replaces an earlier partitioned output) in a
    folder that exists."""
    if out.exists() and not (out / RECOMMENDATIONS_MANIFEST).is_file():
        raise GenrecError(f"output {out} exists and is no earlier `recommend --all --partitioned` output; "
                          "give a new folder name")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise GenrecError(f"output {out}: {blocking} is a file, not a directory")
    if not out.parent.is_dir():
        raise GenrecError(f"output {out}: folder {out.parent} does not exist; create it first")


@dataclass
class RecommendAllConfig:
    out: str | Path  # a .parquet file, or with ``partitioned`` a folder of part files; written atomically
    dataset: str | Path | None = None
    model: str | Path | None = None
    top_k: int = DEFAULT_TOP_K  # 1..MAX_TOP_K, as recommend and the HTTP API (genrec.core.limits)
    beams: int = DEFAULT_BEAMS
    exclude_seen: bool | None = DEFAULT_EXCLUDE_SEEN  # leave the user's history out; None = as chosen after training
    batch_size: int = 256
    progress: bool = True
    fusion: dict[str, float] | None = None  # scorer -> weight; default: the chosen weights ({} = the model alone)
    new_item_share: float | None = None  # items added after training: mixed in with this share (None = slots instead)
    new_item_exposure: float | None = None  # users whose 10th place goes to a new item (None = NEW_ITEM_EXPOSURE; 0 = off)
    partitioned: bool = False  # out is a folder: part-00000.parquet, ... (one per chunk of users) + a manifest
    chunk_users: int = 16384  # users decoded and written at a time (memory is bounded by one chunk)
    prior_successors: int | None = None  # followers the transition prior keeps per item (0 = all; default: chosen)
    rule: ItemRule | None = None  # only the items it allows, kept inside the beam (recommender.rules)


@dataclass
class WrittenRecommendations:
    path: Path
    num_users: int
    num_rows: int
    seconds: float  # decoding only (this process's share when sharded)
    parts: int = 1  # part files written (all processes together)


def _recommendation_table(dataset, first_user: int, items: np.ndarray, scores: np.ndarray):
    """Rows (user, rank) of users first_user.. with their items and scores (0 = no item: dropped)."""
    import pyarrow as pa

    user_grid = np.broadcast_to(np.arange(first_user, first_user + len(items))[:, None], items.shape)
    rank_grid = np.broadcast_to(np.arange(1, items.shape[1] + 1)[None, :], items.shape)
    keep = items > 0
    user_ids, ranks, item_ids = user_grid[keep], rank_grid[keep], items[keep]
    return pa.table({
        "user_id": pa.array(user_ids, pa.int64()),
        "user_raw_id": pa.array([dataset.user_raw_id(u) for u in user_ids.tolist()], pa.string()),
        "rank": pa.array(ranks, pa.int32()),
        "item_id": pa.array(item_ids, pa.int64()),
        "item_raw_id": pa.array([dataset.item_raw_id(i) for i in item_ids.tolist()], pa.string()),
        "score": pa.array(scores[keep], pa.float32()),
    })


def _decoder(config: RecommendAllConfig):
    """(recommender under the request's fusion and rule, its dataset)."""
    recommender, dataset = load_trained(config.dataset, config.model, fusion=config.fusion, fit="all",
                                        new_item_share=config.new_item_share,
                                        new_item_exposure=config.new_item_exposure,
                                        prior_successors=config.prior_successors)
    return (recommender if config.rule is None else with_rule(recommender, dataset, config.rule)), dataset


def recommend_all(config: RecommendAllConfig) -> WrittenRecommendations:
    """Every user's top ``top_k``, written as parquet: one row per (user, rank), columns user_id,
    user_raw_id, rank (1 = best), item_id, item_raw_id, score, in user order. A user has fewer
    than ``top_k`` rows only when ``exclude_seen`` leaves fewer unseen items than that.

    Users are decoded ``chunk_users`` at a time, each chunk written as its own part file, so memory
    holds one chunk's results. Under ``accelerate launch`` each process decodes and writes the
    chunks r, r + N, ... (``genrec.core.sharding``); the chunks, and so every batch inside them,
    are the same for any number of processes, and so is the output. The parts are staged in a
    hidden sibling folder, then become the ``partitioned`` folder (with a manifest) or are
    concatenated into the one .parquet file, atomically either way."""
    import pyarrow.parquet as pq
    from tqdm.auto import tqdm

    from genrec.core.io import swap_directory
    from genrec.core.sharding import current_shard

    check_request(config.top_k, config.beams)
    out = Path(config.out)
    if config.partitioned:
        _check_output_folder(out)
    else:
        check_output_file(out, ".parquet")
    if config.batch_size < 1 or config.chunk_users < 1:
        raise GenrecError("batch_size and chunk_users must be at least 1")
    shard = current_shard()
    recommender, dataset = _decoder(config)
    if shard.device is not None:
        recommender.model.to(shard.device)
    staging = out.with_name(f".{out.name}.parts")
    if shard.main:
        _open_staging(staging, _recommend_all_settings(config, recommender, dataset))
    shard.barrier()
    chunks = -(-dataset.num_users // config.chunk_users)
    mine = shard.mine(chunks)
    seconds = 0.0
    bar = tqdm(total=sum(min(config.chunk_users, dataset.num_users - c * config.chunk_users) for c in mine),
               desc="recommend --all", unit="user", disable=not (config.progress and shard.main))
    for chunk in mine:
        first = chunk * config.chunk_users
        users = list(range(first + 1, min(first + config.chunk_users, dataset.num_users) + 1))
        part = staging / f"part-{chunk:05d}.parquet"
        if part.is_file():  # written by an interrupted run with the same settings
            bar.update(len(users))
            continue
        started = time.perf_counter()
        items, scores = ranked(recommender, dataset, config.rule, dataset.sequences[first:first + len(users)], users,
                               config.top_k, config.beams, config.exclude_seen, config.batch_size)
        seconds += time.perf_counter() - started
        pq.write_table(_recommendation_table(dataset, first + 1, items, scores), part.with_suffix(".tmp"))
        fault_point(f"write {part.name}", part)
        os.replace(part.with_suffix(".tmp"), part)
        bar.update(len(users))
    bar.close()
    shard.barrier()
    parts = sorted(staging.glob("part-*.parquet"))
    num_rows = sum(pq.ParquetFile(part).metadata.num_rows for part in parts)
    if len(parts) != chunks:
        raise GenrecError(f"{staging}: {len(parts)} of {chunks} part files; a process failed, rerun")
    shard.barrier()
    if shard.main:
        (staging / STAGING_SETTINGS).unlink()
        if config.partitioned:
            atomic_write_json(staging / RECOMMENDATIONS_MANIFEST, {
                "num_users": dataset.num_users, "num_rows": num_rows, "parts": chunks, "chunk_users": config.chunk_users,
                "top_k": config.top_k, "beams": config.beams, "exclude_seen": config.exclude_seen,
                "fusion": recommender.policy.weights, "processes": shard.world,
                "columns": ["user_id", "user_raw_id", "rank", "item_id", "item_raw_id", "score"]})
            swap_directory(staging, out)
        else:
            try:
                _concatenate_parts(parts, out)
            finally:  # the parts are only a means to the one file, written or not
                shutil.rmtree(staging, ignore_errors=True)
    shard.barrier()
    return WrittenRecommendations(out, dataset.num_users, num_rows, seconds, chunks)


STAGING_SETTINGS = "_settings.json"  # in the staging folder of recommend --all: what its part files were decoded with


def _recommend_all_settings(config: RecommendAllConfig, recommender, dataset) -> dict:
    """What decides the part files of recommend --all: a staged part is reused only under the same
    settings, model and dataset (files named by size and modification time, so a retrained model or
    a rebuilt or grown dataset starts anew)."""
    def stamp(path: Path) -> list:
        info = path.stat()
        return [str(path.resolve()), info.st_size, info.st_mtime_ns]

    def stamps(folder: Path) -> list:
        return [stamp(path) for path in sorted(Path(folder).iterdir()) if path.is_file() and path.name[0] != "."]

    return {"top_k": config.top_k, "beams": config.beams, "exclude_seen": config.exclude_seen,
            "batch_size": config.batch_size, "chunk_users": config.chunk_users, "fusion": recommender.policy.weights,
            "new_item_share": config.new_item_share, "new_item_exposure": config.new_item_exposure,
            "prior_successors": config.prior_successors, "rule": repr(config.rule), "num_users": dataset.num_users,
            "num_items": dataset.num_items, "model": stamps(recommender.path), "dataset": stamps(dataset.path)}


def _open_staging(staging: Path, settings: dict) -> None:
    """The staging folder of recommend --all: kept, with its finished part files, when an interrupted
    run left it under the same ``settings`` (the rerun resumes); otherwise made anew."""
    recorded = staging / STAGING_SETTINGS
    try:
        if json.loads(recorded.read_text()) == json.loads(json.dumps(settings)):
            for leftover in staging.glob("*.tmp"):  # a part being written when the run stopped
                leftover.unlink()
            return
    except (OSError, ValueError):
        pass
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    atomic_write_json(recorded, settings)


def _concatenate_parts(parts: list[Path], out: Path) -> None:
    """The part files, in order, as the one parquet file ``out`` (written to a temporary sibling,
    then moved into place), a part at a time."""
    import pyarrow.parquet as pq

    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with pq.ParquetWriter(tmp, pq.read_schema(parts[0])) as writer:
            for part in parts:
                writer.write_table(pq.read_table(part))
        fault_point(f"write {out.name}", out)  # the name atomic_write_bytes used for the single file
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
