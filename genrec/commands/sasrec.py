"""``genrec train-sasrec``: the SASRec sequential recommender, evaluated, served and fused like the T5 model."""

from __future__ import annotations

import argparse
import time

from genrec.commands.recommender import _options, parse_grids
from genrec.commands.report import print_training_result
from genrec.recommender.sasrec_config import SASRecConfig
from genrec.recommender.train_config import LOSS_CHOICES, NEGATIVE_SAMPLERS, SASRecTrainConfig


def _train(args) -> int:
    from genrec.pipeline import SASRecTrainingConfig, train_sasrec

    train, model = _options(args, SASRecTrainConfig, SASRecConfig)
    started = time.perf_counter()
    result = train_sasrec(SASRecTrainingConfig.from_options(
        dataset=args.dataset, out=args.out, train=train, model=model, text=args.text,
        encoder=args.encoder, restart=args.restart, progress=not args.no_progress,
        **({"fusion_grids": parse_grids(args.fusion_weights)} if args.fusion_weights is not None else {})))
    print_training_result(result, time.perf_counter() - started)
    return 0


def register(subparsers) -> None:
    train = subparsers.add_parser(
        "train-sasrec", help="train SASRec (self-attentive next-item model); evaluate / recommend / serve take it "
                             "with --model DATASET/sasrec, and train-recommender fuses it into the T5 beam")
    train.add_argument("--dataset", help="prepared dataset directory or name (default: last prepared)")
    train.add_argument("--out", help="output directory (default DATASET/sasrec)")
    train.add_argument("--config", help="JSON with train / model options (flat or under \"train\" and \"model\")")
    train.add_argument("--loss", choices=LOSS_CHOICES,
                       help="full: softmax over the whole catalogue; sampled: over --negatives shared negatives with "
                            "the logQ correction; auto (default): full up to 20,000 items, sampled above")
    train.add_argument("--negatives", type=int, help="shared negatives per batch for the sampled softmax (default 1024)")
    train.add_argument("--sampler", choices=NEGATIVE_SAMPLERS, help="how negatives are drawn (default popularity)")
    train.add_argument("--text", action=argparse.BooleanOptionalAction, default=True,
                       help="item vectors add a projection of the item's text embedding (default; --no-text: ids only)")
    train.add_argument("--encoder", help="text encoder of the embeddings (default as `genrec embed`)")
    train.add_argument("--time-budget", dest="time_budget_minutes", type=float, metavar="MINUTES",
                       help="stop training after this much wall time, then keep the best checkpoint (0 = off)")
    train.add_argument("--max-steps", dest="max_steps", type=int)
    train.add_argument("--epochs", type=float, help="train this many epochs instead of --max-steps")
    train.add_argument("--batch-size", dest="batch_size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--eval-every", dest="eval_every", type=int)
    train.add_argument("--eval-users", dest="eval_users", type=int, help="validation users checked during training (0 = all)")
    train.add_argument("--patience", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--threads", type=int, help="torch CPU threads (1 when other jobs share the cores)")
    train.add_argument("--max-len", dest="max_len", type=int, help="most recent items read (default 50)")
    train.add_argument("--d-model", dest="d_model", type=int)
    train.add_argument("--layers", dest="num_layers", type=int)
    train.add_argument("--num-heads", dest="num_heads", type=int)
    train.add_argument("--dropout", type=float)
    train.add_argument("--id-dropout", dest="id_dropout", type=float,
                       help="probability that an item's id embedding is dropped per training step (input and "
                            "output alike), so its text alone must rank it too (default 0.5; with --no-text "
                            "there is nothing to drop)")
    train.add_argument("--fusion-weights", dest="fusion_weights", nargs="+", metavar="prior=W,W",
                       help="weights of the item-transition prior fused with SASRec, tried on validation users after "
                            "training (default prior=0,1,2,4,8; prior=0 = SASRec alone)")
    train.add_argument("--restart", action="store_true", help="discard checkpoints in --out and start over")
    train.add_argument("--no-progress", action="store_true")
    train.set_defaults(func=_train, interrupted=(
        "interrupted; rerun the same command to resume from the last checkpoint (one is written at each "
        "validation, every --eval-every steps)"))
