"""Every method behind the one interface: fit/encode/decode, same seed -> same SIDs, save -> load,
the input left alone, R3-VAE's ablations, bad inputs -> GenrecError, and `genrec train-tokenizer`
end to end on a tiny dataset."""

import json

import numpy as np
import pytest
import torch

from genrec.core.errors import GenrecError
from genrec.tokenizer.artifact import load_semantic_ids
from genrec.tokenizer.base import TokenizerConfig
from genrec.tokenizer.registry import METHODS, TOKENIZERS, build_tokenizer, load_tokenizer
from tests.tokenizer_fixtures import clustered, single_thread  # noqa: F401  (single_thread: autouse)

SMALL = {"num_levels": 2, "codebook_size": 8}
FAST = {"r3vae": {"epochs": 2, "batch_size": 64, "top_k": 2, "kmeans_iters": 5},
        "rqvae": {"epochs": 30, "lr": 3e-3, "batch_size": 64, "hidden_dims": [16], "latent_dim": 4, "kmeans_iters": 5},
        "vqvae": {"epochs": 30, "lr": 3e-3, "batch_size": 64, "hidden_dims": [16], "latent_dim": 4, "kmeans_iters": 5},
        "rkmeans": {"kmeans_iters": 5},
        "opq": {"opq_iters": 2, "kmeans_iters": 3}}

# R3-VAE's ablations (paper Tables 8-9), each against the default config.
R3VAE_ABLATIONS = ({"use_reference": False}, {"rating": "ste"}, {"use_sc": False}, {"use_pd": False},
                   {"kmeans_init": False})


def make(method, **extra):
    return build_tokenizer(method, {**SMALL, **FAST[method], **extra})


@pytest.mark.parametrize("method", METHODS)
def test_fit_encode_decode_save_load(method, tmp_path):
    x = clustered()
    tok = make(method)
    history = tok.fit(x, progress=False)
    codes = tok.encode(x)
    assert codes.shape == (240, 2) and codes.dtype == np.int64
    assert codes.min() >= 0 and codes.max() < 8
    assert len(history.loss) >= 1 and len(history.usage[-1]) == 2
    decoded = tok.decode(codes)
    assert decoded.shape == x.shape and decoded.dtype == np.float32
    # Decoding is better than predicting the mean (the codes carry information).
    assert ((decoded - x) ** 2).sum(1).mean() < ((x - x.mean(0)) ** 2).sum(1).mean()
    # Same seed -> same codes.
    again = make(method)
    again.fit(x, progress=False)
    assert np.array_equal(again.encode(x), codes)
    # save -> load -> same codes and reconstructions.
    tok.save(tmp_path / "tok")
    loaded = load_tokenizer(tmp_path / "tok")
    assert np.array_equal(loaded.encode(x), codes)
    assert np.allclose(loaded.decode(codes), decoded, atol=1e-6)


def test_registry_names_every_method_once():
    assert len(set(METHODS)) == len(METHODS) == 5
    for method in METHODS:
        tok = build_tokenizer(method)
        assert type(tok) is TOKENIZERS[method] and tok.method == method
        assert isinstance(tok.config, TokenizerConfig)


def fitted_state(tok, x):
    return tok.encode(x), {k: v.detach().clone() for k, v in tok.state_dict().items()}


@pytest.mark.parametrize("method, flags", [*((m, {}) for m in METHODS), *(("r3vae", f) for f in R3VAE_ABLATIONS)])
def test_fit_leaves_its_input_unchanged(method, flags):
    # float32 and C-contiguous: check_embeddings hands this very buffer to the method, no copy.
    x = clustered()
    keep = x.copy()
    make(method, **flags).fit(x, progress=False)
    assert np.array_equal(x, keep)


@pytest.mark.parametrize("flags", R3VAE_ABLATIONS, ids=lambda f: next(iter(f)))
def test_every_r3vae_ablation_changes_the_result(flags):
    x = clustered()
    default = make("r3vae")
    default.fit(x, progress=False)
    codes, state = fitted_state(default, x)
    ablated = make("r3vae", **flags)
    ablated.fit(x, progress=False)
    other_codes, other_state = fitted_state(ablated, x)
    same_weights = state.keys() == other_state.keys() and all(torch.equal(state[k], other_state[k]) for k in state)
    assert not (np.array_equal(codes, other_codes) and same_weights), f"{flags} changed nothing"


def test_r3vae_options_change_behaviour():
    x = clustered()
    soft = make("r3vae")
    soft.fit(x, progress=False)
    hard = make("r3vae", encode_residual="hard")
    hard.fit(x, progress=False)
    # Same training (same seed); only the encode-time residual differs, and level 1 never depends on it.
    assert np.array_equal(soft.encode(x)[:, 0], hard.encode(x)[:, 0])
    for decoder, kind in (("linear", torch.nn.Linear), ("mlp", torch.nn.Sequential)):
        tok = make("r3vae", decoder=decoder)
        tok.fit(x, progress=False)
        assert isinstance(tok.model.decoder, kind) and tok.encode(x).shape == (240, 2)


def test_bad_inputs_raise_genrec_error(tmp_path):
    x = clustered()
    tok = make("rkmeans")
    with pytest.raises(GenrecError, match="not trained"):
        tok.encode(x)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(GenrecError, match="NaN"):
        tok.fit(bad, progress=False)
    with pytest.raises(GenrecError, match="2-D"):
        tok.fit(x[0], progress=False)
    with pytest.raises(GenrecError, match="fewer than the codebook size"):
        tok.fit(x[:5], progress=False)
    tok.fit(x, progress=False)
    with pytest.raises(GenrecError, match="dimension"):
        tok.encode(x[:, :5])
    with pytest.raises(GenrecError, match="codebook sizes"):
        tok.decode(np.full((2, 2), 99))
    with pytest.raises(GenrecError, match="not found"):
        load_tokenizer(tmp_path / "missing")
    with pytest.raises(GenrecError, match="unknown tokenizer method"):
        build_tokenizer("kmeans++")
    with pytest.raises(GenrecError, match="unknown option"):
        build_tokenizer("rkmeans", {"temperature": 0.1})
    with pytest.raises(GenrecError, match="top_k"):
        build_tokenizer("r3vae", {"codebook_size": 4, "top_k": 9})


@pytest.fixture
def tiny_dataset(tmp_path, monkeypatch):
    import genrec.data_prep.embeddings as embeddings_module

    dataset = tmp_path / "tiny"
    dataset.mkdir()
    (dataset / "stats.json").write_text(json.dumps({"num_items": 240}))
    vectors = clustered()

    def fake_embeddings(dataset_dir, encoder=None, **kwargs):
        return embeddings_module.ItemEmbeddings(vectors, encoder or "fake-encoder", dataset / "embeddings")

    monkeypatch.setattr(embeddings_module, "load_or_compute_item_embeddings", fake_embeddings)
    return dataset, vectors


@pytest.mark.parametrize("config_method, flag, expected", [
    (None, None, "r3vae"),  # the default: the paper's method, level with OPQ on fused validation
    ("rkmeans", None, "rkmeans"),  # a config file's method is kept ...
    ("rkmeans", "vqvae", "vqvae"),  # ... unless --method says otherwise
])
def test_train_tokenizer_method_comes_from_flag_then_config_then_default(tmp_path, config_method, flag, expected):
    from genrec.cli import build_parser
    from genrec.commands.tokenizer import tokenizer_config

    argv = ["train-tokenizer", "--dataset", str(tmp_path)]
    if config_method:
        (tmp_path / "tok.json").write_text(json.dumps({"tokenizer": {"method": config_method, "seed": 4}}))
        argv += ["--config", str(tmp_path / "tok.json")]
    if flag:
        argv += ["--method", flag]
    config = tokenizer_config(build_parser().parse_args(argv))
    assert config.method == expected
    from genrec.tokenizer.registry import method_config

    assert config.options == method_config(expected, {"seed": 4} if config_method else {})


def test_train_tokenizer_cli_writes_the_artifact(tiny_dataset, capsys):
    from genrec.cli import main

    dataset, vectors = tiny_dataset
    args = ["train-tokenizer", "--dataset", str(dataset), "--method", "r3vae", "--levels", "2", "--codebook-size", "8",
            "--epochs", "2",
            "--batch-size", "64", "--top-k", "2", "--kmeans-iters", "5", "--seed", "3", "--collaborative-weight", "0",
            "--no-progress"]
    assert main(args) == 0
    out = dataset / "tokenizer"
    sids = load_semantic_ids(out)
    assert sids.codes.shape == (240, 3) and len({tuple(r) for r in sids.codes}) == 240
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "r3vae" and config["codebook_sizes"] == [8, 8] and config["embedding_dim"] == 12
    assert config["suffix_size"] == sids.codes[:, -1].max() + 1 == sids.suffix_size
    assert config["encoder"] == "fake-encoder" and config["method_config"]["seed"] == 3
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("semantic_cohesion", "preference_discrimination", "collision_rate", "gini", "codebook_usage",
                "perplexity", "reconstruction_mse", "largest_bucket", "training_seconds"):
        assert key in metrics
    assert metrics["largest_bucket"] == sids.suffix_size
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "metrics.json", "model.safetensors",
                                                     "semantic_ids.npy", "training_curves.png",
                                                     "training_history.json"]
    assert (out / "training_curves.png").stat().st_size > 1000
    # Same seed through the CLI again -> identical SIDs; the model reloads to the same codes.
    assert main([*args, "--out", str(dataset / "again")]) == 0
    assert np.array_equal(load_semantic_ids(dataset / "again").codes, sids.codes)
    assert np.array_equal(load_tokenizer(out).encode(vectors), sids.codes[:, :2])
    assert main(["sid-metrics", "--tokenizer", str(out)]) == 0
    assert "collision rate" in capsys.readouterr().out
    # No --method: the default quantizer, named in the first line and the artifact.
    assert main(["train-tokenizer", "--dataset", str(dataset), "--levels", "2", "--codebook-size", "8",
                 "--collaborative-weight", "0", "--no-progress", "--out", str(dataset / "default")]) == 0
    assert capsys.readouterr().out.startswith("r3vae: options {")
    assert json.loads((dataset / "default" / "config.json").read_text())["method"] == "r3vae"


def test_train_tokenizer_cli_errors(tiny_dataset, tmp_path, capsys):
    from genrec.cli import main

    dataset, _ = tiny_dataset
    assert main(["train-tokenizer", "--dataset", str(tmp_path / "nope")]) == 2
    assert main(["train-tokenizer", "--dataset", str(dataset), "--method", "rkmeans", "--temperature", "0.1"]) == 2
    assert "unknown option" in capsys.readouterr().err
    bad_config = tmp_path / "bad.json"
    bad_config.write_text("{not json")
    assert main(["train-tokenizer", "--dataset", str(dataset), "--config", str(bad_config)]) == 2
    assert not (dataset / "tokenizer").exists()
