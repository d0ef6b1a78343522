"""Fault injection: every long command killed (SIGKILL) at the write boundaries it passes, then rerun,
ends exactly where an uninterrupted run does, and never reads a half-written file; a full disk is a
one-line error that leaves the previous output whole.

The kill points come from the commands themselves: genrec.core.io.fault_point marks each boundary
(a temporary file or folder written, not yet renamed into place; between the renames of a folder
swap). A reference run with GENREC_FAULT_LOG lists the points a command passes, in order; the
harness then reruns the command from the same starting files once per chosen point with
GENREC_FAULT_AT=NAME:COUNT, which SIGKILLs it there (no cleanup runs), checks that every output a
reader would open is either absent or the reference's own, reruns it without the fault and compares
the outputs with the reference's: bit-identical SIDs, embeddings and parquet, the same checkpoint
step, metrics and weights.

Quick tier (default suite): prepare killed at its folder swap, train-recommender killed before a
checkpoint swap, and injected ENOSPC for prepare, train-recommender and recommend --all.
Slow tier (-m slow): the whole pipeline (prepare, embed, train-tokenizer, train-recommender,
add-items, recommend --all) at up to MAX_POINTS kill points each, and a real full disk (a tmpfs,
where mounting one is allowed).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from genrec.cli import main
from genrec.core import io
from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.recommender import Recommender
from tests.recommender_fixtures import write_dataset, write_tokenizer

MAX_POINTS = 6  # kill points per command in the slow tier, spread over the points it passes
ENV = {"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0",
       "TOKENIZERS_PARALLELISM": "false"}
TINY_MODEL = {"num_encoder_layers": 1, "num_decoder_layers": 1, "d_model": 16, "num_heads": 2, "d_kv": 8,
              "d_ff": 32, "dropout": 0.1, "max_history": 5}
TINY_TRAIN = {"eval_users": 0, "eval_beams": 10, "warmup_steps": 2, "lr": 3e-3, "patience": 100}


# -- running commands -----------------------------------------------------------------------------
def genrec(args: list[str], cwd: Path, fault: str | None = None, log: Path | None = None) -> subprocess.CompletedProcess:
    """``genrec ARGS`` as its own process (a SIGKILL must not take the test with it)."""
    env = {key: value for key, value in os.environ.items() if key not in (io.FAULT_AT_ENV, io.FAULT_LOG_ENV)}
    env.update(ENV)
    if fault:
        env[io.FAULT_AT_ENV] = fault
    if log:
        env[io.FAULT_LOG_ENV] = str(log)
    return subprocess.run([sys.executable, "-m", "genrec.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def passed_points(log: Path) -> list[str]:
    """``NAME:COUNT`` for each fault point pass a run logged, in order."""
    seen: dict[str, int] = {}
    points = []
    for name in log.read_text().splitlines():
        seen[name] = seen.get(name, 0) + 1
        points.append(f"{name}:{seen[name]}")
    return points


def chosen_points(points: list[str], limit: int = MAX_POINTS) -> list[str]:
    """At most ``limit`` points spread evenly over the run, the first and the last included."""
    if len(points) <= limit:
        return points
    return [points[round(i * (len(points) - 1) / (limit - 1))] for i in range(limit)]


# -- comparing outputs ----------------------------------------------------------------------------
VOLATILE = ("seconds", "time", "genrec_version")  # wall-clock figures differ between any two runs


def _stable(value):
    """A JSON value without its wall-clock figures."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not any(word in k.lower() for word in VOLATILE)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def file_content(path: Path):
    """What must match between two runs: bytes, or JSON without wall-clock figures; None for a plot."""
    if path.suffix == ".png":
        return None
    if path.suffix == ".json":
        return _stable(json.loads(path.read_text()))
    if path.suffix == ".jsonl":
        return [_stable(json.loads(line)) for line in path.read_text().splitlines()]
    return path.read_bytes()


def visible_files(root: Path) -> dict[str, Path]:
    """Every file under ``root`` whose path has no hidden part (temporary files and folders are hidden)."""
    return {str(p.relative_to(root)): p for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def assert_same_outputs(got: Path, expected: Path) -> None:
    a, b = visible_files(got), visible_files(expected)
    assert sorted(a) == sorted(b)
    for name in a:
        assert file_content(a[name]) == file_content(b[name]), name


# -- the pipeline on a tiny custom dataset ----------------------------------------------------------
def write_raw(root: Path) -> None:
    """Interactions of 80 users walking chains of 40 items, the items' texts and 3 new items."""
    rng = random.Random(0)
    rows = []
    for user in range(80):
        start = rng.randrange(40)
        rows += [f"u{user},i{(start + step) % 40},{step * 10 + rng.randint(0, 5)}" for step in range(rng.randint(5, 10))]
    (root / "events.csv").write_text("user,item,timestamp\n" + "\n".join(rows) + "\n")
    (root / "items.csv").write_text("id,title\n" + "".join(f"i{i},Item number {i} of colour {i % 7}\n" for i in range(40)))
    (root / "new.csv").write_text("id,title\n" + "".join(f"n{i},New item {i}\n" for i in range(3)))
    (root / "config.json").write_text(json.dumps({"train": TINY_TRAIN, "model": TINY_MODEL}))


TRAIN_ARGS = ["--config", "config.json", "--max-steps", "12", "--eval-every", "4", "--batch-size", "16",
              "--time-budget", "0", "--no-progress"]
# (name, arguments): run in this order, each on the previous one's outputs.
PIPELINE = [
    ("prepare", ["prepare", "custom", "--interactions", "events.csv", "--items", "items.csv", "--out", "data"]),
    ("embed", ["embed", "--dataset", "data", "--no-progress"]),
    ("train-tokenizer", ["train-tokenizer", "--dataset", "data", "--method", "r3vae", "--levels", "2",
                         "--codebook-size", "8", "--epochs", "4", "--no-progress"]),
    ("train-recommender", ["train-recommender", "--dataset", "data", *TRAIN_ARGS, "--fusion-weights", "0", "1", "--t5-only"]),
    ("add-items", ["add-items", "--items", "new.csv", "--dataset", "data"]),
    ("recommend", ["recommend", "--all", "--dataset", "data", "--out", "recs.parquet", "--no-progress"]),
]


def readable_outputs_are_whole(work: Path, reference: Path) -> None:
    """After a kill, whatever a reader would open is absent or exactly the reference's: the dataset,
    the embedding cache, the SIDs, a finished recommender, the parquet."""
    data, ref = work / "data", reference / "data"
    if (data / "stats.json").is_file():
        assert load_processed_dataset(data).sequences == load_processed_dataset(ref).sequences
    for cache in (data / "embeddings").glob("[!.]*"):
        assert np.load(cache / "embeddings.npy").shape[0] == json.loads((cache / "meta.json").read_text())["num_items"]
    if (data / "tokenizer" / "config.json").is_file():
        codes = np.load(data / "tokenizer" / "semantic_ids.npy")
        assert codes.shape[0] == json.loads((data / "tokenizer" / "config.json").read_text()).get("num_items", len(codes))
    if (data / "recommender" / "genrec.json").is_file():
        Recommender.load(data / "recommender")
    if (work / "recs.parquet").is_file():
        assert (work / "recs.parquet").read_bytes() == (reference / "recs.parquet").read_bytes()


@pytest.fixture(scope="module")
def pipeline_reference(tmp_path_factory):
    """The uninterrupted pipeline: for each command the files before it, after it, and the fault
    points it passed."""
    root = tmp_path_factory.mktemp("faults")
    work = root / "work"
    work.mkdir()
    write_raw(work)
    stages = {}
    for name, args in PIPELINE:
        before = root / f"before-{name}"
        shutil.copytree(work, before)
        log = root / f"points-{name}.txt"
        done = genrec(args, work, log=log)
        assert done.returncode == 0, done.stderr
        after = root / f"after-{name}"
        shutil.copytree(work, after)
        stages[name] = (before, after, passed_points(log))
    return work, stages


def kill_and_rerun(work: Path, name: str, args: list[str], point: str, stages: dict) -> None:
    before, after, _ = stages[name]
    shutil.rmtree(work)
    shutil.copytree(before, work)  # the same absolute paths as the reference run (genrec.json records them)
    killed = genrec(args, work, fault=point)
    assert killed.returncode == -signal.SIGKILL, f"{name} not killed at {point}: {killed.stderr[-2000:]}"
    problems = []
    try:
        readable_outputs_are_whole(work, after)
    except Exception as exc:  # an assertion, or a loader's own error on a torn output
        problems.append(f"{name} killed at {point}, before the rerun: {type(exc).__name__}: {exc}")
    done = genrec(args, work)
    if done.returncode != 0:
        problems.append(f"{name} rerun after a kill at {point} failed: {done.stderr.strip()[-500:]}")
    else:
        try:
            assert_same_outputs(work, after)
        except AssertionError as exc:
            problems.append(f"{name} killed at {point}, after the rerun: {exc}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
@pytest.mark.parametrize("stage", [name for name, _ in PIPELINE])
def test_each_command_killed_at_its_write_boundaries_reruns_to_the_uninterrupted_result(pipeline_reference, stage):
    work, stages = pipeline_reference
    args = dict(PIPELINE)[stage]
    points = chosen_points(stages[stage][2])
    assert points, f"{stage} passes no fault point"
    failures = []
    for point in points:  # every point, so that a failure report lists them all
        try:
            kill_and_rerun(work, stage, args, point, stages)
        except AssertionError as exc:
            failures += [line for line in str(exc).splitlines() if line.startswith(stage)]
    assert not failures, "\n".join(failures)


# -- quick tier -----------------------------------------------------------------------------------
def test_a_folder_swap_is_one_atomic_exchange_where_the_system_has_one(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "new.txt").write_text("new")
    renames = []
    monkeypatch.setattr(io.os, "replace", lambda a, b: renames.append((a, b)))
    io.swap_directory(tmp_path / "new", tmp_path / "out")
    if not renames:  # exchanged: no moment without an "out"
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["new.txt"] and not (tmp_path / "new").exists()
    else:
        pytest.skip("no atomic exchange here (renameat2 RENAME_EXCHANGE): two renames and a restore on resume")
    assert not (tmp_path / ".out.old").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]



@pytest.fixture
def fault_env(monkeypatch):
    """In-process runs: fault-point counts start from zero, the variables are removed afterwards."""
    io._fault_passes.clear()
    monkeypatch.delenv(io.FAULT_LOG_ENV, raising=False)

    def set_fault(spec: str | None) -> None:
        io._fault_passes.clear()
        if spec:
            monkeypatch.setenv(io.FAULT_AT_ENV, spec)
        else:
            monkeypatch.delenv(io.FAULT_AT_ENV, raising=False)

    yield set_fault
    io._fault_passes.clear()


def test_a_fault_point_fires_on_its_count_only_and_logs_every_pass(tmp_path, fault_env, monkeypatch):
    monkeypatch.setenv(io.FAULT_LOG_ENV, str(tmp_path / "log"))
    fault_env("write a:b.json:2:enospc")  # a colon in the file name
    io.atomic_write_text(tmp_path / "a:b.json", "first")
    with pytest.raises(OSError) as error:
        io.atomic_write_text(tmp_path / "a:b.json", "second")
    assert error.value.errno == errno.ENOSPC and error.value.filename == str(tmp_path / "a:b.json")
    assert (tmp_path / "a:b.json").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["a:b.json", "log"]
    io.atomic_write_text(tmp_path / "a:b.json", "third")
    assert passed_points(tmp_path / "log") == ["write a:b.json:1", "write a:b.json:2", "write a:b.json:3"]


def test_prepare_killed_before_its_folder_swap_reruns_to_the_same_dataset(tmp_path, fault_env, monkeypatch):
    write_raw(tmp_path)
    args = PIPELINE[0][1]
    (tmp_path / "ref").mkdir()
    write_raw(tmp_path / "ref")
    monkeypatch.chdir(tmp_path / "ref")
    assert main(args) == 0
    killed = genrec(args, tmp_path, fault="dir data:1")
    assert killed.returncode == -signal.SIGKILL
    assert not (tmp_path / "data").exists() and list(tmp_path.glob(".data.*.partial"))  # the half-built folder
    assert genrec(args, tmp_path).returncode == 0
    assert_same_outputs(tmp_path / "data", tmp_path / "ref" / "data")


def _train_args(root: Path, out: str) -> list[str]:
    (root / "config.json").write_text(json.dumps({"train": TINY_TRAIN, "model": TINY_MODEL}))
    return ["train-recommender", "--dataset", str(root / "data"), "--tokenizer", str(root / "tok"),
            "--out", str(root / out), *TRAIN_ARGS, "--fusion-weights", "0", "--t5-only"]


def _same_training(got: Path, expected: Path) -> None:
    a, b = json.loads((got / "genrec.json").read_text()), json.loads((expected / "genrec.json").read_text())
    assert _stable(a) == _stable(b) and a["steps"] == 12
    assert file_content(got / "metrics.jsonl") == file_content(expected / "metrics.jsonl")
    for name, tensor in Recommender.load(expected).model.state_dict().items():
        assert torch.equal(Recommender.load(got).model.state_dict()[name], tensor), name


def test_training_killed_before_a_checkpoint_swap_resumes_to_the_same_model(tmp_path, fault_env, monkeypatch):
    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    monkeypatch.chdir(tmp_path)
    assert main(_train_args(tmp_path, "full")) == 0
    args = _train_args(tmp_path, "killed")
    killed = genrec(args, tmp_path, fault="dir checkpoint:2")  # the step-8 checkpoint written, not swapped in
    assert killed.returncode == -signal.SIGKILL
    assert json.loads((tmp_path / "killed" / ".checkpoint.tmp" / "trainer_state.json").read_text())["step"] == 8
    assert json.loads((tmp_path / "killed" / "checkpoint" / "trainer_state.json").read_text())["step"] == 4
    assert main(args) == 0
    _same_training(tmp_path / "killed", tmp_path / "full")


def _assert_one_line_full_disk(capsys, command: str) -> None:
    """The command's stderr is one error line, after the text-embedding step's progress lines if any."""
    lines = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("embeddings: ")]
    assert len(lines) == 1 and lines[0].startswith(f"genrec {command}: error: no space left on the device"), lines


def test_a_full_disk_is_a_one_line_error_and_the_previous_output_still_loads(tmp_path, fault_env, capsys,
                                                                            monkeypatch):
    write_raw(tmp_path)
    monkeypatch.chdir(tmp_path)
    prepare = PIPELINE[0][1]
    assert main(prepare) == 0
    before = {name: file_content(path) for name, path in visible_files(tmp_path / "data").items()}
    fault_env("write stats.json:1:enospc")  # preparing again: the new folder cannot be finished
    assert main(prepare) == 2
    _assert_one_line_full_disk(capsys, "prepare")
    assert {name: file_content(path) for name, path in visible_files(tmp_path / "data").items()} == before
    assert not list(tmp_path.glob(".data.*"))  # the unfinished folder is removed

    write_tokenizer(tmp_path / "tok", num_items=load_processed_dataset(tmp_path / "data").num_items)
    fault_env(None)
    args = _train_args(tmp_path, "model")
    assert main(args) == 0
    recommend = ["recommend", "--all", "--dataset", "data", "--model", "model", "--out", "recs.parquet",
                 "--no-progress"]
    assert main(recommend) == 0
    written = (tmp_path / "recs.parquet").read_bytes()
    capsys.readouterr()  # the training's output
    fault_env("write recs.parquet:1:enospc")
    assert main(recommend) == 2
    _assert_one_line_full_disk(capsys, "recommend")
    assert (tmp_path / "recs.parquet").read_bytes() == written and pq.read_table(tmp_path / "recs.parquet").num_rows
    assert not list(tmp_path.glob(".recs.parquet.*"))


def test_training_on_a_full_disk_stops_with_one_line_and_resumes_from_its_last_checkpoint(tmp_path, fault_env, capsys,
                                                                                          monkeypatch):
    write_dataset(tmp_path / "data")
    write_tokenizer(tmp_path / "tok")
    monkeypatch.chdir(tmp_path)
    assert main(_train_args(tmp_path, "full")) == 0
    args = _train_args(tmp_path, "model")
    fault_env("write trainer_state.json:2:enospc")  # the step-8 checkpoint
    assert main(args) == 2
    _assert_one_line_full_disk(capsys, "train-recommender")
    state = json.loads((tmp_path / "model" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4 and not (tmp_path / "model" / ".checkpoint.tmp" / "trainer_state.json").exists()
    fault_env(None)
    assert main(args) == 0
    _same_training(tmp_path / "model", tmp_path / "full")


# -- slow tier: a real full disk --------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (skipped where this process may not mount one)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode(errors='replace').strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def fill(disk: Path, leave: int) -> Path:
    """Take all but ``leave`` bytes of the disk's free space."""
    filler = disk / "filler"
    with open(filler, "wb") as handle:
        handle.write(b"\0" * max(0, shutil.disk_usage(disk).free - leave))
    return filler


@pytest.mark.slow
def test_a_real_full_disk_stops_training_and_recommend_with_one_line_and_no_corruption(tmp_path, small_disk):
    write_dataset(small_disk / "data")
    write_tokenizer(small_disk / "tok")
    args = _train_args(small_disk, "model")
    assert genrec(_train_args(small_disk, "full"), small_disk).returncode == 0
    shutil.copytree(small_disk / "full", tmp_path / "full")
    shutil.rmtree(small_disk / "full")
    # Killed once the step-4 checkpoint is in place; then the disk fills up.
    assert genrec(args, small_disk, fault="dir checkpoint:2").returncode == -signal.SIGKILL
    shutil.rmtree(small_disk / "model" / ".checkpoint.tmp")
    filler = fill(small_disk, leave=20_000)
    failed = genrec(args, small_disk)
    assert failed.returncode == 2, failed.stderr[-3000:]
    err = failed.stderr.strip().splitlines()[-1]
    assert err.startswith("genrec train-recommender: error: no space left on the device"), failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    state = json.loads((small_disk / "model" / "checkpoint" / "trainer_state.json").read_text())
    assert state["step"] == 4
    filler.unlink()
    assert genrec(args, small_disk).returncode == 0
    _same_training(small_disk / "model", tmp_path / "full")

    recommend = ["recommend", "--all", "--dataset", "data", "--model", "model", "--out", "recs.parquet",
                 "--no-progress"]
    assert genrec(recommend, small_disk).returncode == 0
    written = (small_disk / "recs.parquet").read_bytes()
    fill(small_disk, leave=1_000)
    failed = genrec(recommend, small_disk)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr, failed.stderr[-3000:]
    assert failed.stderr.strip().splitlines()[-1].startswith("genrec recommend: error: no space left on the device")
    assert (small_disk / "recs.parquet").read_bytes() == written
