"""The versioned catalogue (genrec.catalogue): add-items grows the dataset, tokenizer, SASRec and
every model it is pointed at together; other models keep working on the version they know; a wrong
--dataset or a full bucket changes nothing; a copied dataset folder is independent; a run failing
or killed between any two writes leaves everything loadable and consistent and a rerun finishes
the job; two runs at once both land, with distinct SIDs."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from genrec import pipeline
from genrec.cli import main
from genrec.core import io
from genrec.data_prep.dataset import load_processed_dataset
from genrec.recommender.recommender import Recommender
from genrec.recommender.sasrec_recommender import SASRecRecommender
from genrec.tokenizer.artifact import load_semantic_ids
from tests.catalogue_fixtures import build_catalogue, genrec_child, install_test_encoder, write_items
from tests.test_faults import assert_same_outputs, file_content, passed_points, visible_files

OLD = 40


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """The untouched catalogue (copy it before changing anything)."""
    return build_catalogue(tmp_path_factory.mktemp("catalogue"))


@pytest.fixture
def data(pristine, tmp_path, monkeypatch):
    """A fresh copy of the catalogue, with the test encoder in this process."""
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    install_test_encoder(copy, monkeypatch.setattr)
    io._fault_passes.clear()
    yield copy
    io._fault_passes.clear()


def add(data: Path, items: Path, *models: str) -> int:
    return main(["add-items", "--dataset", str(data), "--items", str(items),
                 *[arg for model in models for arg in ("--model", str(data / model))]])


def snapshot(folder: Path) -> dict:
    return {name: file_content(path) for name, path in visible_files(folder).items()}


def assert_consistent(data: Path) -> None:
    """What any moment of add-items must leave: every part loads, and no part knows more items than
    the one it builds on (dataset >= caches, tokenizer >= bundles; a fused SASRec is cut to its model)."""
    dataset = load_processed_dataset(data)
    sids = load_semantic_ids(data / "tokenizer")
    assert sids.num_items <= dataset.num_items
    for cache in (data / "embeddings").glob("[!.]*"):
        meta = json.loads((cache / "meta.json").read_text())
        assert len(np.load(cache / "embeddings.npy")) == meta["num_items"] <= dataset.num_items
    for name in ("recommender", "other", "sasrec"):
        fused = {} if name == "sasrec" else {"sasrec": 0.5}
        recommender, view = pipeline.load_trained(data, data / name, fusion=fused, fit="all")
        assert recommender.num_items == view.num_items <= dataset.num_items
        if recommender.kind == "t5":
            np.testing.assert_array_equal(recommender.sids.codes, sids.codes[:recommender.num_items])
        items, _ = recommender.recommend([[1, 2, 3]], top_k=5)
        assert (items > 0).all()


def test_add_items_grows_the_model_its_sasrec_and_tokenizer_and_the_other_model_keeps_its_version(data, tmp_path):
    before = SASRecRecommender.load(data / "sasrec")
    other_before = pipeline.load_trained(data, data / "other", fusion={"sasrec": 0.5}, fit="all")[0]
    assert add(data, write_items(tmp_path / "new.jsonl", "N", 3)) == 0
    dataset = load_processed_dataset(data)
    assert dataset.num_items == OLD + 3 and load_semantic_ids(data / "tokenizer").num_items == OLD + 3
    catalogue = dataset.catalogue()
    for name in ("recommender", "sasrec"):  # the model and the SASRec it fuses, both on the new version
        meta = json.loads((data / name / "genrec.json").read_text())
        assert meta["catalogue"] == catalogue and meta["dataset"] == ".."
    assert json.loads((data / "recommender" / "genrec.json").read_text())["tokenizer"] == "../tokenizer"

    grown = SASRecRecommender.load(data / "sasrec")
    model = grown.model
    assert torch.equal(model.item_ids.weight[OLD + 1:], torch.zeros(3, model.config.d_model))  # never trained
    new_text = np.load(next((data / "embeddings").glob("[!.]*")) / "embeddings.npy")[OLD:]
    np.testing.assert_allclose(model.item_text[OLD + 1:].numpy(),
                               new_text / np.linalg.norm(new_text, axis=1, keepdims=True), rtol=1e-5)
    for key, tensor in before.model.state_dict().items():  # every old weight as it was
        assert torch.equal(grown.model.state_dict()[key][:len(tensor)], tensor), key
    scores = grown.log_probabilities([[1, 2, 3]])
    assert np.isfinite(scores[0, OLD + 1:]).all() and len(set(scores[0, OLD + 1:].round(6))) == 3  # from text

    recommender, view = pipeline.load_trained(data, None, fit="all")  # the grown T5 with its grown SASRec
    assert recommender.num_items == view.num_items == OLD + 3 and view.item_id_for("N1") == OLD + 2
    assert sorted(recommender.recommend([[1, 2]], top_k=OLD + 3, beams=OLD + 3, exclude_seen=False)[0][0]) == \
        list(range(1, OLD + 4))

    other, view = pipeline.load_trained(data, data / "other", fusion={"sasrec": 0.5}, fit="all")
    assert other.num_items == view.num_items == OLD  # not pointed at: it works on the version it knows
    (sasrec, _), = other.policy.scorers  # its fused SASRec, cut back to those items: the same distribution
    np.testing.assert_allclose(sasrec.log_probabilities([[1, 2]]), before.log_probabilities([[1, 2]]), atol=1e-6)
    assert np.array_equal(other.recommend([[1, 2, 3]], top_k=5)[0], other_before.recommend([[1, 2, 3]], top_k=5)[0])
    with pytest.raises(Exception, match="unknown item"):
        view.item_id_for("N1")

    (tmp_path / "none.csv").write_text("id,title\n")
    assert add(data, tmp_path / "none.csv", "other") == 0  # pointed at later: grown to the dataset's version
    other = Recommender.load(data / "other")
    np.testing.assert_array_equal(other.sids.codes, load_semantic_ids(data / "tokenizer").codes)
    assert_consistent(data)


def test_a_wrong_dataset_is_a_one_line_error_and_changes_nothing(data, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    shutil.copytree(data, other, ignore=shutil.ignore_patterns("recommender", "other", "sasrec", "tokenizer"))
    ids = load_processed_dataset(other).item_raw_ids
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(other / "items.parquet")
    table = table.set_column(1, "raw_id", pa.array(list(reversed(ids))))  # same count, other items
    pq.write_table(table, other / "items.parquet")
    before = snapshot(other), snapshot(data)
    assert main(["add-items", "--dataset", str(other), "--model", str(data / "recommender"),
                 "--items", str(write_items(tmp_path / "new.jsonl", "N", 2))]) == 2
    err = capsys.readouterr().err.strip()
    assert "is not the dataset" in err and "\n" not in err, err
    assert (snapshot(other), snapshot(data)) == before
    with pytest.raises(Exception, match="is not the dataset"):
        pipeline.load_trained(other, data / "recommender")


def test_a_full_bucket_is_a_one_line_error_and_changes_nothing(data, tmp_path, capsys):
    text = load_processed_dataset(data).item_texts[2]  # every new item lands on item 3's prefix
    items = tmp_path / "same.jsonl"
    items.write_text("".join(json.dumps({"id": f"S{i}", "text": text}) + "\n" for i in range(80)))
    before = snapshot(data)
    assert add(data, items) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the encoder's progress line
    assert err.startswith("genrec add-items: error: new item 'S") and "nothing was changed" in err, err
    assert snapshot(data) == before and not list(data.rglob(".*.staged"))


def test_a_copied_dataset_folder_changes_alone(data, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    before = snapshot(data)
    assert add(copy, write_items(tmp_path / "new.jsonl", "N", 2)) == 0
    assert snapshot(data) == before
    assert load_processed_dataset(copy).num_items == OLD + 2
    assert Recommender.load(copy / "recommender").num_items == OLD + 2
    recommender, dataset = pipeline.load_trained(data, None)
    assert recommender.num_items == dataset.num_items == OLD
    assert_consistent(data)
    assert_consistent(copy)


def reference(data: Path, tmp_path: Path, items: Path, monkeypatch) -> tuple[Path, list[str]]:
    """An uninterrupted run on a copy: its result and the fault points it passed."""
    done = tmp_path / "reference"
    shutil.copytree(data, done)
    log = tmp_path / "points.txt"
    monkeypatch.setenv(io.FAULT_LOG_ENV, str(log))
    io._fault_passes.clear()
    assert add(done, items) == 0
    monkeypatch.delenv(io.FAULT_LOG_ENV)
    return done, passed_points(log)


def test_a_run_failing_at_any_write_leaves_everything_consistent_and_a_rerun_finishes_it(data, tmp_path, monkeypatch):
    items = write_items(tmp_path / "new.jsonl", "N", 3)
    done, points = reference(data, tmp_path, items, monkeypatch)
    assert [p for p in points if p.startswith(("commit", "dir"))] == [
        "commit items.parquet:1", "commit stats.json:1", f"dir {next(done.glob('embeddings/[!.]*')).name}:1",
        "dir tokenizer:1", "dir sasrec:1", "dir recommender:1"]  # the commit order
    pristine = tmp_path / "pristine"
    shutil.move(data, pristine)
    for point in points:
        shutil.copytree(pristine, data)
        monkeypatch.setenv(io.FAULT_AT_ENV, f"{point}:enospc")
        io._fault_passes.clear()
        assert add(data, items) == 2, point
        monkeypatch.delenv(io.FAULT_AT_ENV)
        assert_consistent(data)
        assert add(data, items) == 0, point
        assert_same_outputs(data, done)
        shutil.rmtree(data)


def _killed_and_rerun(data: Path, items: Path, point: str, done: Path) -> None:
    args = ["add-items", "--dataset", str(data), "--items", str(items)]
    killed = genrec_child(args, fault=point)
    killed.join(600)
    assert killed.exitcode == -signal.SIGKILL, f"not killed at {point}"
    assert_consistent(data)
    assert add(data, items) == 0, point
    assert_same_outputs(data, done)


def test_a_run_killed_between_the_tokenizer_and_model_commits_is_finished_by_the_next(data, tmp_path, monkeypatch):
    items = write_items(tmp_path / "new.jsonl", "N", 3)
    done, _ = reference(data, tmp_path, items, monkeypatch)
    _killed_and_rerun(data, items, "dir sasrec:1", done)


@pytest.mark.slow
def test_a_run_killed_at_every_write_is_finished_by_the_next(data, tmp_path, monkeypatch):
    items = write_items(tmp_path / "new.jsonl", "N", 3)
    done, points = reference(data, tmp_path, items, monkeypatch)
    pristine = tmp_path / "pristine"
    shutil.move(data, pristine)
    for point in points:
        shutil.copytree(pristine, data)
        _killed_and_rerun(data, items, point, done)
        shutil.rmtree(data)


def test_two_runs_at_once_both_land_with_distinct_sids(data, tmp_path):
    runs = [genrec_child(["add-items", "--dataset", str(data), "--items",
                           str(write_items(tmp_path / f"{prefix}.jsonl", prefix, 3))]) for prefix in "AB"]
    for run in runs:
        run.join(600)
        assert run.exitcode == 0
    dataset = load_processed_dataset(data)
    assert dataset.num_items == OLD + 6
    assert sorted(dataset.item_raw_ids[OLD:]) == ["A0", "A1", "A2", "B0", "B1", "B2"]
    codes = load_semantic_ids(data / "tokenizer").codes
    assert len(codes) == OLD + 6 and len({tuple(row) for row in codes}) == OLD + 6
    assert Recommender.load(data / "recommender").num_items == OLD + 6
    assert_consistent(data)


def test_serve_reload_swaps_in_the_grown_catalogue_without_dropping_requests(data, tmp_path):
    import threading

    from fastapi.testclient import TestClient

    from genrec.serve import create_app

    def load():
        return pipeline.load_trained(data, None, fit="all")

    with TestClient(create_app(*load(), reload=load)) as client:
        assert client.get("/items/N1").status_code == 404
        answers, stop = [], threading.Event()

        def keep_asking():  # requests in flight while the model is swapped
            while not stop.is_set():
                answers.append(client.post("/recommend", json={"user": "U3", "top_k": 5}).status_code)

        asker = threading.Thread(target=keep_asking)
        asker.start()
        assert add(data, write_items(tmp_path / "new.jsonl", "N", 3)) == 0
        reloaded = client.post("/admin/reload")
        stop.set()
        asker.join(60)
        assert reloaded.status_code == 200 and reloaded.json()["num_items"] == OLD + 3
        assert answers and set(answers) == {200}
        item = client.get("/items/N1").json()
        assert item["item_id"] == OLD + 2 and item["sid"] == load_semantic_ids(data / "tokenizer").codes[OLD + 1].tolist()
        picks = client.post("/recommend", json={"history": ["N1", "I1"], "top_k": 5, "exclude_seen": False})
        assert picks.status_code == 200 and picks.json()["history"][0]["raw_id"] == "N1"
        assert client.get("/health").json()["num_items"] == OLD + 3

        shutil.rmtree(data / "recommender")  # a reload that cannot load: one line, the grown model still serves
        failed = client.post("/admin/reload")
        assert failed.status_code == 503 and "still serving the previous model" in failed.json()["detail"]
        assert client.get("/items/N1").status_code == 200


def test_sighup_reloads_a_running_server(monkeypatch, capsys):
    import os
    import threading

    from genrec.commands.serve import _reload_on_sighup

    done = threading.Event()

    class App:  # what the handler reads of the app
        class state:
            @staticmethod
            def reload():
                done.set()
                return {"num_items": 43, "num_users": 60}

    previous = signal.getsignal(signal.SIGHUP)
    try:
        _reload_on_sighup(App)
        os.kill(os.getpid(), signal.SIGHUP)
        assert done.wait(10)
    finally:
        signal.signal(signal.SIGHUP, previous)
    for _ in range(100):
        if "reloaded: 43 items" in capsys.readouterr().out:
            break
        done.wait(0.05)
    else:
        pytest.fail("no reload line printed")
