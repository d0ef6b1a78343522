"""``genrec compare`` end to end on a tiny dataset: every (method, seed) run, the table, Spearman,
the plots, the reference-projection report, and a rerun that repeats nothing."""

import json

import numpy as np

from genrec.data_prep import embeddings
from genrec.data_prep.dataset import load_processed_dataset
from genrec import compare
from genrec.cli import main
from tests.recommender_fixtures import write_dataset

RECIPE = {
    "tokenizer": {"codebook_size": 8, "kmeans_iters": 3},
    "method_options": {"r3vae": {"epochs": 2}},  # residual K-Means has no epochs
    "model": {"d_model": 16, "d_ff": 32, "num_heads": 2, "d_kv": 8, "num_encoder_layers": 1, "num_decoder_layers": 1},
    "train": {"max_steps": 4, "eval_every": 2, "eval_users": 0, "batch_size": 16, "warmup_steps": 1},
    "evaluate": {"beams": 30},
}


def cached_embeddings(dataset):
    """A MiniLM cache for the dataset's texts, as `genrec embed` would leave it (no model load)."""
    texts = load_processed_dataset(dataset).item_texts
    folder = dataset / "embeddings" / embeddings.encoder_slug(embeddings.BUNDLED_ENCODER)
    folder.mkdir(parents=True)
    vectors = np.random.default_rng(0).normal(size=(len(texts), 12)).astype(np.float32)
    np.save(folder / embeddings.EMBEDDINGS_FILE, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    meta = {"encoder": embeddings.BUNDLED_ENCODER, "dim": 12, "num_items": len(texts),
            "texts_sha256": embeddings.texts_checksum(texts)}
    (folder / embeddings.META_FILE).write_text(json.dumps(meta))


def test_compare_runs_every_method_and_seed_then_resumes(tmp_path, monkeypatch, capsys):
    dataset = write_dataset(tmp_path / "data", num_users=40, num_items=30)
    cached_embeddings(dataset)
    monkeypatch.setattr(embeddings, "hub_reachable", lambda timeout=3.0: False)
    (tmp_path / "recipe.json").write_text(json.dumps(RECIPE))
    argv = ["compare", "--dataset", str(dataset), "--methods", "r3vae,rkmeans", "--seeds", "2",
            "--config", str(tmp_path / "recipe.json"), "--out", str(tmp_path / "study")]
    assert main(argv) == 0
    study = tmp_path / "study"
    report = json.loads((study / "compare.json").read_text())
    assert report["num_runs"] == 4 and set(report["table"]) == {"r3vae", "rkmeans"}
    for run in report["runs"]:
        assert 0.0 <= run["ranking"]["recall@10"] <= 1.0 and run["ranking"]["invalid_rate"] == 0.0
        assert (study / "runs" / f"{run['variant']}-seed{run['seed']}" / "result.json").is_file()
    assert set(report["spearman_with_recall@10"]) == set(compare.SID_METRICS)
    projection = report["reference_projection"]
    for name in ("original", "projected"):
        assert projection[name]["pd_items"] < 0 and -1 <= projection[name]["mean_pairwise_cosine"] <= 1
    for png in ("sid_metrics_vs_recall.png", "codebook_usage.png", "reference_projection.png"):
        assert (study / png).stat().st_size > 1000
    markdown = (study / "compare.md").read_text()
    assert "| r3vae | 2 |" in markdown and "Spearman" in markdown and "Reference-vector projection" in markdown

    calls = []
    for stage in ("train_tokenizer", "train_recommender", "evaluate"):
        monkeypatch.setattr(compare.pipeline, stage, lambda config, stage=stage: calls.append(stage))
    assert main(argv) == 0  # every run has its result.json: nothing is trained again
    assert calls == []
    assert json.loads((study / "compare.json").read_text())["table"] == report["table"]
