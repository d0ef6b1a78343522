"""``genrec train-recommender``, ``genrec evaluate`` and ``genrec recommend``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import fields

from genrec.commands.arguments import add_new_item_arguments, whole_number
from genrec.commands.report import SCORE_NOTE, evaluation_table, print_training_result, recommendation_lines
from genrec.core.errors import GenrecError
from genrec.core.limits import DEFAULT_BEAMS, DEFAULT_EXCLUDE_SEEN, DEFAULT_TOP_K, MAX_BEAMS, MAX_TOP_K
from genrec.recommender.model_config import RecommenderConfig
from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.train_config import SASRecTrainConfig, TrainConfig

FUSION_HELP = ("fused scorers' weights as NAME=W (prior: the item-transition prior, sasrec: the SASRec model "
               "fused at training time); a bare W is the prior's; default: the weights chosen on validation after "
               "training; 0 (or prior=0 sasrec=0) = the model alone")


def parse_fusion(values: list[str] | None) -> dict[str, float] | None:
    """``--fusion-weight`` values (``NAME=W`` or a bare ``W`` for the prior) as {name: weight}."""
    if values is None:
        return None
    weights = {}
    for value in values:
        name, _, number = value.rpartition("=")
        try:
            weight = float(number)
        except ValueError:
            raise GenrecError(f"--fusion-weight {value!r}: expected NAME=W or a number") from None
        if not weight >= 0:
            raise GenrecError(f"--fusion-weight {value!r}: fusion weight must be >= 0")
        weights[name or "prior"] = weight
    return {} if all(weight == 0 for weight in weights.values()) else weights


def parse_grids(values: list[str] | None) -> dict[str, tuple[float, ...]] | None:
    """``--fusion-weights`` values (``NAME=W,W,...`` or bare numbers for the prior) as {name: grid}."""
    if values is None:
        return None
    grids: dict[str, list[float]] = {}
    for value in values:
        name, _, numbers = value.rpartition("=")
        try:
            grids.setdefault(name or "prior", []).extend(float(x) for x in numbers.split(",") if x)
        except ValueError:
            raise GenrecError(f"--fusion-weights {value!r}: expected NAME=W,W,... or numbers") from None
    return {name: tuple(grid) for name, grid in grids.items()}


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
    from genrec.pipeline import RecommenderTrainingConfig, train_recommender
    from genrec.recommender.recipes import recipe_configs

    train, model = recipe_configs(args.recipe, *_options(args, TrainConfig, RecommenderConfig))
    started = time.perf_counter()
    result = train_recommender(RecommenderTrainingConfig(
        dataset=args.dataset, tokenizer=args.tokenizer, out=args.out, train=train, model=model,
        restart=args.restart, progress=not args.no_progress, recipe=args.recipe, sasrec=args.sasrec,
        sasrec_beside=_sasrec_beside(args),
        **({"fusion_grids": parse_grids(args.fusion_weights)} if args.fusion_weights is not None else {})))
    print_training_result(result, time.perf_counter() - started)
    return 0


def _sasrec_beside(args):
    """The SASRec to train beside the T5 (--sasrec-config's options), or None with --t5-only."""
    from genrec.pipeline import SASRecBeside

    if args.t5_only:
        if args.sasrec_config:
            raise GenrecError("--sasrec-config configures the SASRec trained beside the T5; --t5-only trains none")
        return None
    if not args.sasrec_config:
        return SASRecBeside()
    train, model = _options(argparse.Namespace(config=args.sasrec_config), SASRecTrainConfig, SASRecConfig)
    return SASRecBeside.from_options(train, model)


def _evaluate(args) -> int:
    from genrec.pipeline import EvaluateConfig, evaluate

    print(f"evaluating every user on the {args.split} split (beam {args.beams}), then the baselines ...", flush=True)
    result = evaluate(EvaluateConfig(dataset=args.dataset, model=args.model, tokenizer=args.tokenizer,
                                     split=args.split, beams=args.beams, batch_size=args.batch_size,
                                     output=args.output, progress=_show_progress(args),
                                     fusion=parse_fusion(args.fusion_weight), new_item_share=args.new_item_share,
                                     new_item_exposure=args.new_item_exposure, exclude_seen=args.exclude_seen))
    print(f"{args.split}: {result['num_users']:,} users, full catalogue ({result['num_items']:,} items), "
          f"beam {args.beams}, {result['users_per_second']} users/s")
    print(evaluation_table(result))
    print(f"wrote {result['output']}")
    return 0


def _show_progress(args) -> bool:
    """Bars only on a terminal (a log file gets no carriage-return noise), unless --no-progress."""
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


def _recommend(args) -> int:
    from genrec.pipeline import RecommendConfig, recommend
    from genrec.recommender.rules import ItemRule

    rule = ItemRule.parse(args.rule) if args.rule is not None else None
    result = recommend(RecommendConfig(dataset=args.dataset, model=args.model, user=args.user, history=args.history,
                                       rule=rule, influence=args.influence,
                                       top_k=args.top_k, beams=args.beams, exclude_seen=args.exclude_seen,
                                       fusion=parse_fusion(args.fusion_weight),
                                       new_item_share=args.new_item_share,
                                       new_item_exposure=args.new_item_exposure))
    if args.json:
        print(json.dumps({"user": result.user or None, "user_raw_id": result.user_raw_id,
                          "history": result.history, "recommendations": result.items}, indent=2))
        return 0
    print("\n".join(recommendation_lines(result)))
    seen = "items in the history are left out (--include-seen keeps them)" if args.exclude_seen else \
        "items in the history may be recommended again"
    print(f"{SCORE_NOTE}; {seen}")
    return 0


def _recommend_all(args) -> int:
    """``genrec recommend --all --out FILE.parquet``: every user's top-K in one batched run."""
    from genrec.pipeline import RecommendAllConfig, recommend_all
    from genrec.recommender.rules import ItemRule

    if args.user is not None or args.history:
        raise GenrecError("--all recommends for every user; drop --user / --history (or drop --all)")
    if not args.out:
        raise GenrecError("--all needs --out FILE.parquet (or --out FOLDER --partitioned)")
    if args.json:
        raise GenrecError("--json does not apply to --all (the output is the --out parquet file)")
    if args.influence:
        raise GenrecError("--influence is for one user's list (--user / --history), not --all")
    result = recommend_all(RecommendAllConfig(
        out=args.out, dataset=args.dataset, model=args.model, top_k=args.top_k, beams=args.beams,
        exclude_seen=args.exclude_seen, batch_size=args.batch_size, progress=_show_progress(args),
        fusion=parse_fusion(args.fusion_weight), new_item_share=args.new_item_share,
        new_item_exposure=args.new_item_exposure, partitioned=args.partitioned,
        chunk_users=args.chunk_users, prior_successors=args.prior_successors,
        rule=ItemRule.parse(args.rule) if args.rule is not None else None))
    print(f"top {args.top_k} for {result.num_users:,} users in {result.seconds:.1f} s "
          f"({result.num_users / max(result.seconds, 1e-9):,.0f} users/s): {result.num_rows:,} rows -> {result.path}")
    return 0


def _recommend_or_all(args) -> int:
    if args.all:
        return _recommend_all(args)
    if args.out:
        raise GenrecError("--out is for --all (every user to a parquet file); drop it, or add --all")
    if args.partitioned or args.prior_successors is not None:
        raise GenrecError("--partitioned and --prior-successors are for --all; drop them, or add --all")
    return _recommend(args)


def register(subparsers) -> None:
    _register_train(subparsers)
    _register_evaluate(subparsers)
    _register_recommend(subparsers)


def _register_train(subparsers) -> None:
    from genrec.recommender.recipes import CHOICES as RECIPE_CHOICES

    train = subparsers.add_parser("train-recommender", help="train the T5 recommender on a tokenizer's SIDs")
    train.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    train.add_argument("--tokenizer", help="tokenizer artifact (default DATASET/tokenizer)")
    train.add_argument("--out", help="output directory (default DATASET/recommender)")
    train.add_argument("--config", help="JSON with train / model options (flat or under \"train\" and \"model\")")
    train.add_argument("--recipe", choices=RECIPE_CHOICES, default="auto",
                       help="starting options, under --config and flags: tiger = TIGER's size and 20,000 steps; "
                            "cpu = a small T5 (2+2 layers, d128, one encoder position per item) that stops after 45 min; auto (default) = cpu "
                            "when no CUDA device is visible, else tiger")
    train.add_argument("--time-budget", dest="time_budget_minutes", type=float, metavar="MINUTES",
                       help="stop training after this much wall time (earlier attempts included), then validate "
                            "and keep the best checkpoint; the LR cosine follows the budget (0 = off)")
    train.add_argument("--max-steps", dest="max_steps", type=int, help="optimizer steps (default 20000)")
    train.add_argument("--epochs", type=float, help="train this many epochs instead of --max-steps")
    train.add_argument("--batch-size", dest="batch_size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--warmup-steps", dest="warmup_steps", type=int)
    train.add_argument("--eval-every", dest="eval_every", type=int)
    train.add_argument("--eval-users", dest="eval_users", type=int, help="validation users checked during training (0 = all)")
    train.add_argument("--patience", type=int)
    train.add_argument("--micro-batches", dest="micro_batches", type=int,
                       help="each batch sorted by length and cut into at most this many micro-batches with the "
                            "least padding, one optimizer step (same gradient; default 6, 1 = off)")
    train.add_argument("--sort-window", dest="sort_window", type=int,
                       help="length-bucketed batches: this many sorted together (default 1 = plain random batches; "
                            "50 is 7%% faster on Beauty at the same quality)")
    train.add_argument("--seed", type=int)
    train.add_argument("--mixed-precision", dest="mixed_precision", choices=("auto", "no", "bf16", "fp16"))
    train.add_argument("--threads", type=int,
                       help="torch CPU threads (default: one per core; 1 is far faster when other jobs share the cores)")
    train.add_argument("--fast-dropout", dest="fast_dropout", action=argparse.BooleanOptionalAction,
                       help="cheap CPU dropout masks (default on; --no-fast-dropout = torch's dropout)")
    _add_model_arguments(train)
    train.add_argument("--fusion-weights", dest="fusion_weights", nargs="+", metavar="NAME=W,W",
                       help="weights tried on validation users after training for each fused scorer (prior: the "
                            "item-transition prior; sasrec: DATASET/sasrec or --sasrec, when trained); the best "
                            "setting is stored (default prior=0,1,2,4,8 sasrec=0,0.5,1,2,4; bare numbers are the "
                            "prior's; prior=0 alone = the model only)")
    train.add_argument("--sasrec", help="the SASRec to fuse (default DATASET/sasrec); trained beside the T5 unless "
                                        "it is trained already or --t5-only")
    train.add_argument("--t5-only", dest="t5_only", action="store_true",
                       help="train the T5 alone: no SASRec beside it (one already trained is still fused)")
    train.add_argument("--sasrec-config", dest="sasrec_config", metavar="JSON",
                       help="options of the SASRec trained beside the T5, as `train-sasrec --config` takes them "
                            "(e.g. {\"train\": {\"loss\": \"full\"}}); its time budget defaults to the T5's")
    train.add_argument("--restart", action="store_true",
                       help="delete --out (only a genrec training output or an empty folder) and start over")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train, interrupted=(
        "interrupted; rerun the same command to resume from the last checkpoint (one is written at each "
        "validation, every --eval-every steps; none before the first, and --restart discards it)"))


def _add_model_arguments(train) -> None:
    """train-recommender's RecommenderConfig flags (over the recipe and --config)."""
    from genrec.recommender.model_config import ENCODER_ATTENTION, ENCODER_INPUTS

    train.add_argument("--d-model", dest="d_model", type=int)
    train.add_argument("--d-ff", dest="d_ff", type=int)
    train.add_argument("--num-heads", dest="num_heads", type=int)
    train.add_argument("--d-kv", dest="d_kv", type=int, help="size of each attention head")
    train.add_argument("--encoder-layers", dest="num_encoder_layers", type=int)
    train.add_argument("--decoder-layers", dest="num_decoder_layers", type=int)
    train.add_argument("--dropout", type=float)
    train.add_argument("--user-buckets", dest="num_user_buckets", type=int, help="hashed user token buckets (0 = off)")
    train.add_argument("--encoder-attention", dest="encoder_attention", choices=ENCODER_ATTENTION,
                       help="item_causal: a history token sees only items up to its own, and training runs the "
                            "encoder once per user sequence for all its targets (default bidirectional, as TIGER)")
    train.add_argument("--encoder-input", dest="encoder_input", choices=ENCODER_INPUTS,
                       help="tokens: one encoder position per SID token (TIGER); items: one position per history "
                            "item, the sum of its SID token embeddings (4x shorter encoder input)")
    train.add_argument("--item-text", dest="item_text", action=argparse.BooleanOptionalAction,
                       help="with --encoder-input items: each position also reads a projection of its item's text "
                            "embedding")
    train.add_argument("--item-ids", dest="item_ids", action=argparse.BooleanOptionalAction,
                       help="with --encoder-input items: each position also reads a learned item-id embedding "
                            "(dropped per item and step with --id-dropout, so unseen items still work)")
    train.add_argument("--id-dropout", dest="id_dropout", type=float, help="chance an item's id embedding is dropped "
                       "in a training step (default 0.5)")
    train.add_argument("--dense-loss", dest="dense_loss", type=float, metavar="W",
                       help="add W x a dense next-item loss on the encoder's pooled state against the item vectors "
                            "(LIGER; needs --item-text or --item-ids; default 0 = off)")
    train.add_argument("--dense-negatives", dest="dense_negatives", type=int, metavar="N",
                       help="the dense loss's softmax: the batch's targets plus N items drawn uniformly (default "
                            "1024; 0 = the whole catalogue)")
    train.add_argument("--label-smoothing", dest="label_smoothing", type=float,
                       help="label smoothing of the Semantic-ID token loss in training (default 0)")
    train.add_argument("--code-init", dest="code_init", choices=("random", "centroids"),
                       help="centroids: each SID code token's embedding starts as its residual centroid over the "
                            "items' text embeddings, projected to d_model (default random, T5's init)")


def _register_evaluate(subparsers) -> None:
    evaluate = subparsers.add_parser("evaluate", help="Recall/NDCG@K and MRR over all users, full catalog")
    evaluate.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    evaluate.add_argument("--model", help="recommender directory (default DATASET/recommender)")
    evaluate.add_argument("--tokenizer", help="check the model against this tokenizer artifact")
    evaluate.add_argument("--split", choices=("valid", "test"), default="test")
    evaluate.add_argument("--beams", type=whole_number(30, MAX_BEAMS, " (at least the largest K, 30)"), default=30,
                          help=f"beam width, 30..{MAX_BEAMS} (default 30; Recall@30 needs 30)")
    evaluate.add_argument("--batch-size", type=whole_number(1), default=256)
    evaluate.add_argument("--output", help="JSON file (default MODEL/eval_SPLIT.json)")
    evaluate.add_argument("--fusion-weight", nargs="+", metavar="NAME=W", help=FUSION_HELP)
    add_new_item_arguments(evaluate)
    seen = evaluate.add_mutually_exclusive_group()
    seen.add_argument("--exclude-seen", dest="exclude_seen", action="store_true", default=None,
                      help="never recommend an item of the user's own history (default: as chosen on validation "
                           "after training, see genrec.json \"fusion\")")
    seen.add_argument("--include-seen", dest="exclude_seen", action="store_false",
                      help="history items may be recommended (default: as chosen on validation)")
    evaluate.add_argument("--no-progress", action="store_true", help="no progress bar (none off a terminal either)")
    evaluate.set_defaults(func=_evaluate)


def _register_recommend(subparsers) -> None:
    recommend = subparsers.add_parser("recommend", help="top-K items for a user or a list of items")
    recommend.add_argument("--user", help="raw user id, or the dataset number as #N (N alone when no raw id is N; "
                                          "the id rule: docs/serving.md)")
    recommend.add_argument("--history", nargs="+", metavar="ITEM",
                           help="recommend for a new user with these items (raw ids, or #N for item number N)")
    recommend.add_argument("--top-k", type=whole_number(1, MAX_TOP_K, " (the HTTP API's limit too)"),
                           default=DEFAULT_TOP_K, help=f"items per user, 1..{MAX_TOP_K} (default {DEFAULT_TOP_K})")
    recommend.add_argument("--beams", type=whole_number(1, MAX_BEAMS), default=DEFAULT_BEAMS,
                           help=f"beam width, 1..{MAX_BEAMS} (default {DEFAULT_BEAMS}); a width below --top-k is "
                                "raised to it")
    recommend.add_argument("--rule", metavar="JSON",
                           help='only items the rule allows, kept inside the beam, e.g. \'{"where": {"category": '
                                '"Skin Care", "price": {"<=": 20}}, "exclude": ["B0001"]}\' (docs/rules.md)')
    seen = recommend.add_mutually_exclusive_group()
    seen.add_argument("--include-seen", dest="exclude_seen", action="store_false",
                      help="also recommend items already in the history (default: leave them out)")
    seen.add_argument("--exclude-seen", dest="exclude_seen", action="store_true",
                      help=argparse.SUPPRESS)  # the default now; still accepted so older command lines run
    recommend.add_argument("--json", action="store_true")
    recommend.add_argument("--influence", action="store_true",
                           help="also name, per item, the history items without which its score falls most, and "
                                "by how much (one extra scoring per history item; docs/serving.md)")
    recommend.add_argument("--fusion-weight", nargs="+", metavar="NAME=W", help=FUSION_HELP)
    add_new_item_arguments(recommend)
    recommend.add_argument("--dataset", help="dataset (default: the one the model was trained on)")
    recommend.add_argument("--model", help="recommender directory (default DATASET/recommender)")
    recommend.add_argument("--all", action="store_true",
                           help="every user's top-K in one batched run (needs --out); rerun after an interruption, "
                                "it resumes from the chunks already written")
    recommend.add_argument("--out", metavar="FILE.parquet",
                           help="with --all: parquet file, one row per (user, rank): user_id, user_raw_id, "
                                "rank, item_id, item_raw_id, score")
    recommend.add_argument("--batch-size", type=whole_number(1), default=256,
                           help="with --all: histories decoded together")
    recommend.add_argument("--no-progress", action="store_true", help="with --all: no progress bar")
    recommend.add_argument("--partitioned", action="store_true",
                           help="with --all: --out is a folder of part files (part-00000.parquet, ... one per "
                                "--chunk-users users, and _recommendations.json), the form for millions of users")
    recommend.add_argument("--chunk-users", dest="chunk_users", type=whole_number(1), default=16384,
                           help="with --all: users decoded and written at a time (bounds memory; default 16384). "
                                "Under `accelerate launch --multi_gpu --num_processes N` each process takes every "
                                "N-th chunk; the output is the same as one process's")
    recommend.add_argument("--prior-successors", dest="prior_successors", type=whole_number(0),
                           help="with --all: followers the transition prior keeps per item (0 = all, the default)")
    recommend.set_defaults(func=_recommend_or_all, exclude_seen=DEFAULT_EXCLUDE_SEEN, interrupted=(
        "interrupted; rerun the same command: with --all it continues after the users already written "
        "(nothing else was left half-written)"))
