"""``genrec train-tokenizer`` (item embeddings -> Semantic IDs artifact) and ``genrec sid-metrics``."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from genrec.core.errors import GenrecError
from genrec.pipeline import TokenizerTrainingConfig
from genrec.tokenizer.names import METHODS

DEFAULT_TOKENIZER_METHOD = TokenizerTrainingConfig.method

# Flag -> (config key, value); flags a method's config lacks are rejected with the valid options.
_SWITCHES = {
    "no_reference_vector": ("use_reference", False),
    "no_sc": ("use_sc", False),
    "no_pd": ("use_pd", False),
    "no_kmeans_init": ("kmeans_init", False),
    "balanced": ("balanced", True),
}
_VALUES = ("levels:num_levels", "codebook_size", "epochs", "steps:max_steps", "batch_size", "lr", "seed",
           "rating", "metric_weight", "temperature", "top_k", "decoder", "encode_residual", "kmeans_iters")


def _set_threads() -> None:
    """GENREC_THREADS=N caps torch's CPU threads (useful when other jobs share the machine)."""
    import torch

    if os.environ.get("GENREC_THREADS"):
        torch.set_num_threads(max(1, int(os.environ["GENREC_THREADS"])))


def tokenizer_config(args: argparse.Namespace):
    """The TokenizerTrainingConfig: --config file (flat, or its "tokenizer" section), then explicit flags."""
    from genrec.core.config import load_config_file
    from genrec.pipeline import TOKENIZER_INPUT_FIELDS, tokenizer_config_from

    data = load_config_file(args.config)
    section = method_options(args, dict(data.get("tokenizer", data)))
    if args.method:
        section["method"] = args.method
    for name in TOKENIZER_INPUT_FIELDS:
        if getattr(args, name, None) is not None:
            section[name] = getattr(args, name)
    return tokenizer_config_from(section, dataset=args.dataset, out=args.out, encoder=args.encoder,
                                 progress=not args.no_progress)


def method_options(args: argparse.Namespace, options: dict) -> dict:
    """``options`` (the config file's section) with explicit flags on top."""
    options = dict(options)
    for spec in _VALUES:
        flag, _, key = spec.partition(":")
        value = getattr(args, flag)
        if value is not None:
            options[key or flag] = value
    for flag, (key, value) in _SWITCHES.items():
        if getattr(args, flag):
            options[key] = value
    return options


def changed_fields(config) -> dict:
    """The fields of dataclass ``config`` that differ from its class's defaults."""
    default = type(config)()
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(default, f.name)}


def _train(args: argparse.Namespace) -> int:
    from genrec.eval.sid_metrics import format_metrics_table
    from genrec.pipeline import train_tokenizer

    _set_threads()
    config = tokenizer_config(args)
    inputs = (f"; text + collaborative vectors (weight {config.collaborative_weight:g}, {config.collaborative_dim} dims, "
              f"window {config.collaborative_window})") \
        if config.collaborative_weight > 0 else ""
    print(f"{config.method}: options {changed_fields(config.options) or 'default'}{inputs}", flush=True)
    result = train_tokenizer(config)
    print(format_metrics_table(result.metrics))
    print(f"wrote {result.path} (semantic_ids.npy, config.json, model.safetensors, metrics.json, training_curves.png)")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    from genrec.data_prep.collaborative import artifact_input
    from genrec.data_prep.embeddings import load_or_compute_item_embeddings
    from genrec.eval.sid_metrics import format_metrics_table
    from genrec.core.io import read_json
    from genrec.core.layout import TOKENIZER_DIR, recorded_path, resolve_dataset_dir
    from genrec.tokenizer.artifact import load_semantic_ids
    from genrec.tokenizer.registry import load_tokenizer
    from genrec.pipeline import sid_metrics_for

    if args.tokenizer:
        folder = Path(args.tokenizer)
        load_semantic_ids(folder)  # clear error if it is not an artifact
        info = read_json(folder / "config.json")
        recorded = recorded_path(info.get("dataset"), folder)  # relative to the tokenizer folder
        dataset = resolve_dataset_dir(args.dataset or (str(recorded) if recorded else None))
    else:
        dataset = resolve_dataset_dir(args.dataset)
        folder = dataset / TOKENIZER_DIR
    sids = load_semantic_ids(folder)
    tok = load_tokenizer(folder)
    vectors = load_or_compute_item_embeddings(dataset, encoder=read_json(folder / "config.json").get("encoder")).vectors
    vectors = artifact_input(vectors, folder)  # text, or text + the collaborative vectors it was trained with
    if len(vectors) != sids.num_items:
        raise GenrecError(f"{folder} has {sids.num_items} items but {dataset} has {len(vectors)}: wrong --dataset?")
    print(format_metrics_table(sid_metrics_for(tok, vectors, sids.codes[:, :-1])))
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("train-tokenizer", help="train an item tokenizer and write Semantic IDs",
                                   description=__doc__)
    parser.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    parser.add_argument("--method", choices=METHODS,
                        help=f"the quantizer (default: the --config file's, else {DEFAULT_TOKENIZER_METHOD}, the "
                             "paper's method; opq lifts the T5 alone, level fused: docs/recipes.md)")
    parser.add_argument("--levels", type=int, help="number of SID levels L (default 3)")
    parser.add_argument("--codebook-size", type=int, help="codewords per level M (default 256)")
    parser.add_argument("--epochs", type=int, help="training epochs (gradient methods)")
    parser.add_argument("--steps", type=int, help="stop after this many optimizer steps (gradient methods)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--kmeans-iters", type=int)
    parser.add_argument("--out", help="artifact directory (default DATASET/tokenizer)")
    parser.add_argument("--config", help="JSON file of method options (flat, or under a \"tokenizer\" key)")
    parser.add_argument("--encoder", help="embedding model (default: the dataset's cached / default encoder)")
    parser.add_argument("--collaborative-weight", type=float, metavar="W",
                        help="also read collaborative item vectors (co-occurrence in the training sequences), "
                             "weighted W against the unit text embeddings (default 1; 0 = text only)")
    parser.add_argument("--collaborative-dim", type=int, help="size of the collaborative vectors (default 64)")
    parser.add_argument("--collaborative-window", type=int,
                        help="items within this many steps of each other co-occur (default 3)")
    parser.add_argument("--no-progress", action="store_true")
    r3 = parser.add_argument_group("r3vae options (ablations: paper Tables 8-9)")
    r3.add_argument("--no-reference-vector", action="store_true", help="e0 = x (no reference vector)")
    r3.add_argument("--rating", choices=("softmax", "ste"), help="ste: replace rating by a straight-through estimator")
    r3.add_argument("--no-sc", action="store_true", help="drop the -SC regularizer")
    r3.add_argument("--no-pd", action="store_true", help="drop the +PD regularizer")
    r3.add_argument("--metric-weight", type=float, help="lambda of eq 13 (default 0.01)")
    r3.add_argument("--temperature", type=float, help="softmax temperature over cosine ratings")
    r3.add_argument("--top-k", type=int, help="codewords summed in eq 5")
    r3.add_argument("--decoder", choices=("identity", "linear", "mlp"))
    r3.add_argument("--encode-residual", choices=("soft", "hard"))
    other = parser.add_argument_group("baseline options")
    other.add_argument("--no-kmeans-init", action="store_true", help="rqvae/vqvae/r3vae: random codebook init")
    other.add_argument("--balanced", action="store_true", help="rkmeans: balanced K-Means")
    parser.set_defaults(func=_train)

    metrics = subparsers.add_parser("sid-metrics", help="recompute and print SID quality metrics of a tokenizer")
    metrics.add_argument("--tokenizer", help="artifact directory (default DATASET/tokenizer)")
    metrics.add_argument("--dataset", help="prepared dataset (default: the one the tokenizer was trained on)")
    metrics.set_defaults(func=_metrics)
