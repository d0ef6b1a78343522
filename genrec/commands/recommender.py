"""``genrec train-recommender``, ``genrec evaluate`` and ``genrec recommend``."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from genrec.core.errors import GenrecError
from genrec.core.layout import RECOMMENDER_DIR, TOKENIZER_DIR, resolve_dataset_dir


def _options(args, train_cls, model_cls) -> tuple[dict, dict]:
    """Train and model options: --config JSON (flat, or under "train" and "model"), then explicit
    CLI flags on top. Every key must name a field, so a typo is an error, not a silent default."""
    from genrec.core.config import load_config_file

    raw = load_config_file(args.config)
    train_names, model_names = {f.name for f in fields(train_cls)}, {f.name for f in fields(model_cls)}
    if "train" in raw or "model" in raw:
        sections = {"train": raw.get("train", {}), "model": raw.get("model", {})}
        unknown = [f"{key}" for key in raw if key not in sections]
        unknown += [f"train.{key}" for key in sections["train"] if key not in train_names]
        unknown += [f"model.{key}" for key in sections["model"] if key not in model_names]
    else:
        sections = {"train": {k: v for k, v in raw.items() if k in train_names},
                    "model": {k: v for k, v in raw.items() if k in model_names}}
        unknown = [key for key in raw if key not in train_names | model_names]
    if unknown:
        raise GenrecError(f"{args.config}: unknown option(s) {', '.join(sorted(unknown))}; train options: "
                          f"{', '.join(sorted(train_names))}; model options: {', '.join(sorted(model_names))}")
    for names, section in ((train_names, sections["train"]), (model_names, sections["model"])):
        for name in names:
            if getattr(args, name, None) is not None:
                section[name] = getattr(args, name)
    return sections["train"], sections["model"]


def _train(args) -> int:
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.core.config import apply_overrides
    from genrec.core.seeding import seed_everything
    from genrec.recommender.model import RecommenderConfig
    from genrec.recommender.train import CHECKPOINT_DIR, TrainConfig, train_recommender
    from genrec.tokenizer.artifact import load_semantic_ids

    dataset_dir = resolve_dataset_dir(args.dataset)
    tokenizer_dir = Path(args.tokenizer) if args.tokenizer else dataset_dir / TOKENIZER_DIR
    out = Path(args.out) if args.out else dataset_dir / RECOMMENDER_DIR
    train_options, model_options = _options(args, TrainConfig, RecommenderConfig)
    train_config = apply_overrides(TrainConfig(), train_options, "train options")
    model_config = apply_overrides(RecommenderConfig(), model_options, "model options")
    if args.restart:
        import shutil

        shutil.rmtree(out, ignore_errors=True)
    if (out / "genrec.json").is_file() and not (out / CHECKPOINT_DIR).exists():
        raise GenrecError(f"{out} holds a finished recommender; pass --restart to train a new one, or --out elsewhere")
    from genrec.recommender.train import STATE_FILE

    state_file = out / CHECKPOINT_DIR / STATE_FILE
    if state_file.is_file() and json.loads(state_file.read_text()).get("done") and (out / "genrec.json").is_file():
        print(f"{out}: training already finished; pass --restart to train again")
        return 0
    seed_everything(train_config.seed)
    dataset = load_processed_dataset(dataset_dir)
    sids = load_semantic_ids(tokenizer_dir)
    if sids.num_items != dataset.num_items:
        raise GenrecError(f"tokenizer {tokenizer_dir} has SIDs for {sids.num_items} items but {dataset_dir} has {dataset.num_items}")
    started = time.perf_counter()
    state = train_recommender(dataset, sids, out, model_config, train_config, progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":
        return 0  # accelerate launch: only the main process reports
    print(f"trained {state['step']} steps in {time.perf_counter() - started:.0f} s; best valid NDCG@10 "
          f"{state['best_ndcg@10']:.4f} at step {state['best_step']} -> {out}")
    return 0


def _load(args):
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.artifact import load_recommender

    model_dir = Path(args.model) if args.model else None
    if model_dir is None:
        model_dir = resolve_dataset_dir(args.dataset) / RECOMMENDER_DIR
    loaded = load_recommender(model_dir, tokenizer=getattr(args, "tokenizer", None))
    dataset_dir = Path(args.dataset) if args.dataset else Path(loaded.meta["dataset"])
    dataset = load_processed_dataset(resolve_dataset_dir(str(dataset_dir)))
    if dataset.num_items != loaded.sids.num_items:
        raise GenrecError(f"{dataset.path} has {dataset.num_items} items; the recommender was trained on {loaded.sids.num_items}")
    return loaded, dataset


def _builder(loaded):
    from genrec.recommender.data import ExampleBuilder

    return ExampleBuilder(loaded.vocab.item_tokens(loaded.sids.codes), loaded.vocab, loaded.config.max_history)


def _evaluate(args) -> int:
    from genrec.eval.popularity import popularity_metrics
    from genrec.core.io import atomic_write_json
    from genrec.recommender.evaluation import evaluate_users

    if args.beams < 30:
        raise GenrecError("--beams must be at least 30 (the largest K evaluated)")
    loaded, dataset = _load(args)
    started = time.perf_counter()
    users = np.arange(1, dataset.num_users + 1)
    metrics = evaluate_users(loaded.model, _builder(loaded), loaded.vocab.prefix_table(loaded.sids.codes), dataset,
                             args.split, users, args.beams, batch_size=args.batch_size, progress=True)
    seconds = time.perf_counter() - started
    popularity = popularity_metrics(dataset, args.split)
    result = {**metrics, "split": args.split, "num_users": int(len(users)), "beams": args.beams,
              "decode_seconds": round(seconds, 2), "users_per_second": round(len(users) / seconds, 1),
              "popularity": popularity}
    out = Path(args.output) if args.output else loaded.path / f"eval_{args.split}.json"
    atomic_write_json(out, result)
    print(f"{args.split}: {len(users):,} users, full catalog ({dataset.num_items:,} items), beam {args.beams}, "
          f"{result['users_per_second']} users/s")
    print(f"{'metric':<10} {'genrec':>8} {'popularity':>11}")
    for key in [f"{m}@{k}" for m in ("recall", "ndcg") for k in (5, 10, 20, 30)] + ["mrr"]:
        print(f"{key:<10} {metrics[key]:>8.4f} {popularity[key]:>11.4f}")
    print(f"{'invalid':<10} {metrics['invalid_rate']:>8.4f}")
    print(f"wrote {out}")
    return 0


def _recommend(args) -> int:
    from genrec.recommender.decoding import recommend_items

    if args.top_k < 1:
        raise GenrecError("--top-k must be at least 1")
    loaded, dataset = _load(args)
    if args.history:
        history = [dataset.item_id_for(item) for item in args.history]
        user_id = 0
    elif args.user is not None:
        user_id = dataset.user_id_for(args.user)
        history = dataset.sequences[user_id - 1]
    else:
        raise GenrecError("give --user USER or --history ITEM [ITEM ...]")
    beams = max(args.top_k, args.beams)
    items, scores = recommend_items(loaded.model, _builder(loaded), loaded.vocab.prefix_table(loaded.sids.codes),
                                    [history], beams, users=[user_id])
    rows = []
    for rank, (item, score) in enumerate(zip(items[0][: args.top_k], scores[0][: args.top_k]), start=1):
        if item <= 0:
            break
        rows.append({"rank": rank, "item_id": int(item), "raw_id": dataset.item_raw_ids[item - 1],
                     "title": dataset.item_titles[item - 1], "sid": loaded.sids.codes[item - 1].tolist(),
                     "score": float(score)})
    if args.json:
        print(json.dumps({"user": user_id or None, "history": history, "recommendations": rows}, indent=2))
        return 0
    who = f"user {user_id} ({dataset.user_raw_ids[user_id - 1]})" if user_id else "the given history"
    print(f"top {len(rows)} for {who}, history of {len(history)} items; last: {dataset.item_titles[history[-1] - 1][:70]}")
    for row in rows:
        sid = "-".join(map(str, row["sid"]))
        print(f"{row['rank']:>3}. [{row['item_id']:>6} {row['raw_id']}] {row['title'][:60]:<60} sid {sid:<15} {row['score']:.3f}")
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser("train-recommender", help="train the T5 recommender on a tokenizer's SIDs")
    train.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    train.add_argument("--tokenizer", help="tokenizer artifact (default DATASET/tokenizer)")
    train.add_argument("--out", help="output directory (default DATASET/recommender)")
    train.add_argument("--config", help="JSON with train / model options (flat or under \"train\" and \"model\")")
    train.add_argument("--max-steps", dest="max_steps", type=int, help="optimizer steps (default 20000)")
    train.add_argument("--epochs", type=float, help="train this many epochs instead of --max-steps")
    train.add_argument("--batch-size", dest="batch_size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--warmup-steps", dest="warmup_steps", type=int)
    train.add_argument("--eval-every", dest="eval_every", type=int)
    train.add_argument("--eval-users", dest="eval_users", type=int, help="validation users checked during training (0 = all)")
    train.add_argument("--patience", type=int)
    train.add_argument("--sort-window", dest="sort_window", type=int,
                       help="batches sorted together by length for dynamic padding (1 = off; default 50)")
    train.add_argument("--seed", type=int)
    train.add_argument("--mixed-precision", dest="mixed_precision", choices=("auto", "no", "bf16", "fp16"))
    train.add_argument("--fast-dropout", dest="fast_dropout", action=argparse.BooleanOptionalAction,
                       help="cheap CPU dropout masks (default on; --no-fast-dropout = torch's dropout)")
    train.add_argument("--d-model", dest="d_model", type=int)
    train.add_argument("--d-ff", dest="d_ff", type=int)
    train.add_argument("--num-heads", dest="num_heads", type=int)
    train.add_argument("--d-kv", dest="d_kv", type=int, help="size of each attention head")
    train.add_argument("--encoder-layers", dest="num_encoder_layers", type=int)
    train.add_argument("--decoder-layers", dest="num_decoder_layers", type=int)
    train.add_argument("--dropout", type=float)
    train.add_argument("--user-buckets", dest="num_user_buckets", type=int, help="hashed user token buckets (0 = off)")
    train.add_argument("--restart", action="store_true", help="discard checkpoints in --out and start over")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train)

    evaluate = subparsers.add_parser("evaluate", help="Recall/NDCG@K and MRR over all users, full catalog")
    evaluate.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    evaluate.add_argument("--model", help="recommender directory (default DATASET/recommender)")
    evaluate.add_argument("--tokenizer", help="check the model against this tokenizer artifact")
    evaluate.add_argument("--split", choices=("valid", "test"), default="test")
    evaluate.add_argument("--beams", type=int, default=30)
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--output", help="JSON file (default MODEL/eval_SPLIT.json)")
    evaluate.set_defaults(func=_evaluate)

    recommend = subparsers.add_parser("recommend", help="top-K items for a user or a list of items")
    recommend.add_argument("--user", help="dataset user number (1..N) or raw user id")
    recommend.add_argument("--history", nargs="+", metavar="ITEM", help="recommend for a new user with these items")
    recommend.add_argument("--top-k", type=int, default=10)
    recommend.add_argument("--beams", type=int, default=20)
    recommend.add_argument("--json", action="store_true")
    recommend.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    recommend.add_argument("--model", help="recommender directory (default DATASET/recommender)")
    recommend.set_defaults(func=_recommend)
