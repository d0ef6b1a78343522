"""``genrec recommend --all --out FILE.parquet`` (or ``--partitioned --out FOLDER``): every user's top-K,
a chunk of users at a time, on one process or sharded over the processes of ``accelerate launch``."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genrec.cli import main
from genrec.core.errors import GenrecError
from genrec.data_prep.dataset import load_processed_dataset
from genrec.pipeline import RecommendAllConfig, recommend_all
from genrec.recommender.recommender import Recommender
from tests.recommender_fixtures import train_tiny_recommender

COLUMNS = ["user_id", "user_raw_id", "rank", "item_id", "item_raw_id", "score"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny_recommender(tmp_path_factory.mktemp("recommend_all"), num_users=25)


def _args(root, *extra):
    return ["recommend", "--model", str(root / "model"), "--dataset", str(root / "data"), *extra]


def test_every_user_gets_top_k_rows_equal_to_single_recommend_calls(trained, capsys):
    out = trained / "out" / "recs.parquet"
    out.parent.mkdir()
    assert main(_args(trained, "--all", "--out", str(out), "--top-k", "4", "--batch-size", "7")) == 0
    assert "25 users" in capsys.readouterr().out
    table = pq.read_table(out)
    assert table.column_names == COLUMNS
    rows = table.to_pydict()
    dataset = load_processed_dataset(trained / "data")
    assert table.num_rows == dataset.num_users * 4
    assert all(1 <= item <= dataset.num_items for item in rows["item_id"])
    assert rows["item_raw_id"] == [dataset.item_raw_id(item) for item in rows["item_id"]]
    assert rows["user_raw_id"] == [dataset.user_raw_id(user) for user in rows["user_id"]]
    assert sorted(set(rows["user_id"])) == list(range(1, 26)) and set(rows["rank"]) == {1, 2, 3, 4}
    recommender = Recommender.load(trained / "model")
    for user in (1, 9, 25):
        items, scores = recommender.recommend([dataset.history(user)], 4, users=[user], beams=20,
                                              exclude_seen=True)  # the CLI default
        mine = [i for i, u in enumerate(rows["user_id"]) if u == user]
        assert [rows["rank"][i] for i in mine] == [1, 2, 3, 4]
        assert [rows["item_id"][i] for i in mine] == items[0].tolist()
        np.testing.assert_allclose([rows["score"][i] for i in mine], scores[0], rtol=1e-5, atol=1e-5)
    assert [p.name for p in out.parent.iterdir()] == ["recs.parquet"]  # no temporary file left behind


def test_exclude_seen_through_the_api(trained):
    result = recommend_all(RecommendAllConfig(trained / "seen.parquet", dataset=trained / "data",
                                              model=trained / "model", top_k=3, exclude_seen=True, progress=False))
    dataset = load_processed_dataset(trained / "data")
    rows = pq.read_table(result.path).to_pydict()
    assert result.num_users == 25 and result.num_rows == len(rows["item_id"]) == 25 * 3
    assert not any(item in dataset.history(user) for user, item in zip(rows["user_id"], rows["item_id"]))


@pytest.mark.parametrize("extra, message", [
    (["--all"], "--all needs --out"),
    (["--all", "--user", "3", "--out", "x.parquet"], "drop --user / --history"),
    (["--all", "--history", "I1", "--out", "x.parquet"], "drop --user / --history"),
    (["--user", "3", "--out", "x.parquet"], "--out is for --all"),
    (["--all", "--out", "recs.csv"], "ending in .parquet"),
])
def test_bad_combinations_are_one_line_errors(trained, capsys, extra, message):
    assert main(_args(trained, *extra)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_out_that_is_a_directory_or_under_a_file_is_a_clear_error(trained, capsys):
    assert main(_args(trained, "--all", "--out", str(trained))) == 2
    err = capsys.readouterr().err
    assert "is a directory" in err and err.count("\n") == 1
    (trained / "plain-file").write_text("x")
    assert main(_args(trained, "--all", "--out", str(trained / "plain-file" / "recs.parquet"))) == 2
    err = capsys.readouterr().err
    assert "is a file, not a directory" in err and err.count("\n") == 1


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _same(a, b) -> bool:
    """The same users, ranks and items; scores equal up to float32 rounding (a process's kernels may
    round the last bit differently)."""
    a, b = a.to_pandas(), b.to_pandas()
    return (list(a.columns) == list(b.columns) and a.drop(columns="score").equals(b.drop(columns="score"))
            and np.allclose(a["score"], b["score"], rtol=1e-5, atol=0))


def _parts(folder):
    return {part.name: pq.read_table(part) for part in sorted(folder.glob("part-*.parquet"))}


def test_partitioned_output_is_the_single_file_in_chunks(trained):
    """chunk_users 4: 25 users in 7 part files whose rows, in order, are the single file's rows."""
    folder, single = trained / "parts-one", trained / "single.parquet"
    result = recommend_all(RecommendAllConfig(folder, dataset=trained / "data", model=trained / "model", top_k=3,
                                              partitioned=True, chunk_users=4, progress=False, fusion={"prior": 2.0}))
    assert result.parts == 7 and result.num_rows == 25 * 3
    parts = _parts(folder)
    assert list(parts) == [f"part-{i:05d}.parquet" for i in range(7)]
    assert json.loads((folder / "_recommendations.json").read_text())["num_users"] == 25
    recommend_all(RecommendAllConfig(single, dataset=trained / "data", model=trained / "model", top_k=3,
                                     chunk_users=4, progress=False, fusion={"prior": 2.0}))
    assert pa.concat_tables(parts.values()).equals(pq.read_table(single))
    again = recommend_all(RecommendAllConfig(folder, dataset=trained / "data", model=trained / "model", top_k=2,
                                             partitioned=True, chunk_users=10, progress=False))
    assert again.parts == 3 and len(_parts(folder)) == 3  # an earlier output is replaced whole
    with pytest.raises(GenrecError, match="no earlier"):
        recommend_all(RecommendAllConfig(trained / "data", dataset=trained / "data", model=trained / "model",
                                         partitioned=True, progress=False))
    assert not list(trained.glob(".*parts*"))  # no staging folder left behind


def test_two_processes_write_exactly_the_one_process_output(trained):
    """accelerate launch with 2 CPU processes (gloo): each decodes and writes every other chunk; the
    folder, and the single file, equal the one-process output."""
    common = ["--model", str(trained / "model"), "--dataset", str(trained / "data"), "--top-k", "4",
              "--chunk-users", "3", "--batch-size", "2", "--fusion-weight", "prior=2", "--no-progress"]
    one, one_file = trained / "one", trained / "one.parquet"
    assert main(["recommend", "--all", "--partitioned", "--out", str(one), *common]) == 0
    assert main(["recommend", "--all", "--out", str(one_file), *common]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for out, extra in ((trained / "two", ["--partitioned"]), (trained / "two.parquet", [])):
        launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                  "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
                  "--main_process_port", str(_free_port()), "-m", "genrec.cli",
                  "recommend", "--all", *extra, "--out", str(out), *common]
        done = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
    two = _parts(trained / "two")
    assert len(two) == 9 and list(two) == list(_parts(one))
    for name, table in _parts(one).items():
        assert _same(table, two[name]), name
    manifest = json.loads((trained / "two" / "_recommendations.json").read_text())
    assert manifest["processes"] == 2 and manifest["num_rows"] == 25 * 4
    assert _same(pq.read_table(trained / "two.parquet"), pq.read_table(one_file))


def test_a_killed_run_resumes_from_its_written_parts(trained):
    """SIGKILL while the 4th part is written: the rerun keeps the three finished parts (not decoded
    again), writes the rest, and the output equals an uninterrupted run's; other settings start anew."""
    common = ["--all", "--partitioned", "--top-k", "3", "--chunk-users", "4", "--fusion-weight", "prior=2",
              "--no-progress"]
    whole, killed = trained / "whole", trained / "killed"
    assert main(_args(trained, "--out", str(whole), *common)) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GENREC_FAULT_AT": "write part-00003.parquet:1"}
    run = subprocess.run([sys.executable, "-m", "genrec.cli", *_args(trained, "--out", str(killed), *common)],
                         env=env, capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    staging = trained / ".killed.parts"
    finished = {part.name: part.stat().st_mtime_ns for part in staging.glob("part-*.parquet")}
    assert sorted(finished) == [f"part-{i:05d}.parquet" for i in range(3)] and not killed.exists()
    assert main(_args(trained, "--out", str(killed), *common)) == 0
    assert {name: (killed / name).stat().st_mtime_ns for name in finished} == finished  # reused, not rewritten
    assert not staging.exists() and not (killed / "_settings.json").exists()
    assert _parts(killed).keys() == _parts(whole).keys()
    assert all(_parts(killed)[name].equals(table) for name, table in _parts(whole).items())
    # Staged under other settings (top-k 2): nothing of it is reused.
    env["GENREC_FAULT_AT"] = "write part-00001.parquet:1"
    other = [arg if arg != "3" else "2" for arg in common]
    run = subprocess.run([sys.executable, "-m", "genrec.cli", *_args(trained, "--out", str(trained / "again"),
                                                                     *common)], env=env, capture_output=True)
    assert run.returncode == -9
    assert main(_args(trained, "--out", str(trained / "again"), *other)) == 0
    assert all(len(table) == 4 * 2 for name, table in _parts(trained / "again").items() if name != "part-00006.parquet")
