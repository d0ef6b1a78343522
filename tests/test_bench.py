"""``genrec bench`` end to end on a tiny dataset: every decode path and training variant runs in its
own process, ratios are against the baseline of the same run, and the fast path agrees with generate."""

import json

import numpy as np
import pytest

from genrec.bench import synthetic_embeddings, tokenizer_case
from genrec.cli import main
from tests.recommender_fixtures import write_dataset, write_tokenizer

TINY = {"num_encoder_layers": 1, "num_decoder_layers": 1, "d_model": 16, "num_heads": 2, "d_kv": 8, "d_ff": 32,
        "max_history": 5}


def test_bench_decode_and_train_sections(tmp_path, capsys):
    write_dataset(tmp_path / "data", num_users=30)
    write_tokenizer(tmp_path / "tok")
    (tmp_path / "model.json").write_text(json.dumps(TINY))
    code = main(["bench", "--dataset", str(tmp_path / "data"), "--tokenizer", str(tmp_path / "tok"),
                 "--model-config", str(tmp_path / "model.json"), "--sections", "decode,train", "--beams", "5",
                 "--decode-users", "20", "--plain-users", "12", "--batch-size", "8", "--train-steps", "3",
                 "--plain-train-steps", "2", "--out", str(tmp_path / "out"), "--name", "tiny"])
    assert code == 0
    report = json.loads((tmp_path / "out" / "tiny.json").read_text())
    runs = report["decode"]["runs"]
    assert runs["fast"]["users"] == 20 and runs["plain"]["users"] == runs["processor"]["users"] == 12
    assert report["decode"]["fast_equals_processor"] == 1.0
    for path, run in runs.items():
        assert report["decode"]["speedup_vs_plain"][path] == pytest.approx(
            run["users_per_second"] / runs["plain"]["users_per_second"])
        assert run["peak_rss_mb"] > 0
    train = report["train"]["runs"]
    assert set(train) == {"plain", "bucketing", "bucketing+fast-dropout", "genrec"}
    assert train["plain"]["mean_input_width"] == 5 * 4 + 1 > train["genrec"]["mean_input_width"]
    assert train["genrec"]["keep_freed_memory"] and not train["plain"]["keep_freed_memory"]
    assert report["train"]["speedup_vs_plain"]["plain"] == 1.0
    markdown = (tmp_path / "out" / "tiny.md").read_text()
    assert "## Decoding" in markdown and "## Training step" in markdown and report["hardware"]["cores"] >= 1


def test_tokenizer_case_on_synthetic_items():
    settings = {"seed": 0, "synthetic_batch_size": 128, "synthetic_steps": 2}
    for method in ("rkmeans", "r3vae"):
        row = tokenizer_case({"settings": settings, "method": method, "items": 600, "codebook_size": 8})
        assert row["items"] == 600 and len(row["usage"]) == 3 and row["fit_seconds"] > 0
    x = synthetic_embeddings(50, 12, seed=1)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, rtol=1e-5)


def test_bench_rejects_bad_options(tmp_path, capsys):
    write_dataset(tmp_path / "data")
    assert main(["bench", "--dataset", str(tmp_path / "data"), "--sections", "decode,fly"]) == 2
    assert "unknown fly" in capsys.readouterr().err
    assert main(["bench", "--dataset", str(tmp_path / "data"), "--sections", "decode"]) == 2
    assert "no tokenizer artifact" in capsys.readouterr().err
    write_tokenizer(tmp_path / "data" / "tokenizer")
    assert main(["bench", "--dataset", str(tmp_path / "data"), "--synthetic-items", "1e6"]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
