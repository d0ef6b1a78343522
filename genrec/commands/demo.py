"""``genrec demo``: the whole pipeline on the built-in demo shop, offline, in a few minutes on a CPU.

prepare demo -> embed -> train-tokenizer (the default quantizer) -> train-recommender (a small T5, then the fusion
weight of the item-transition prior) -> evaluate (test split, beside the prior alone and
popularity) -> recommend for a user and for a new history. Each step is one call of
genrec.pipeline; a rerun reuses finished steps (delete data/demo to start over) and makes the demo
the current dataset again.
"""

from __future__ import annotations

import time
from pathlib import Path

from genrec.core.limits import DEFAULT_EXCLUDE_SEEN

# Sized for 2 CPU cores, a few minutes end to end: smaller than the `cpu` recipe of
# train-recommender (sized for an hour on Amazon Beauty). No dropout and 1,200 steps, because with
# dropout 0.1 and 400 steps the model ended below popularity; one encoder position per SID token.
DEMO_MODEL = {"d_model": 64, "d_ff": 256, "num_heads": 4, "d_kv": 64, "num_encoder_layers": 2, "num_decoder_layers": 2,
              "dropout": 0.0, "encoder_input": "tokens", "item_text": False, "item_ids": False}
DEMO_TRAIN = {"batch_size": 128, "lr": 4e-3, "warmup_steps": 30, "max_steps": 1200, "eval_every": 300,
              "eval_users": 400, "patience": 3}
DEMO_METRICS = ["recall@10", "ndcg@10", "mrr"]


def _step(title: str, run):
    print(f"\n=== {title}", flush=True)
    started = time.perf_counter()
    result = run()
    print(f"=== {title} done in {time.perf_counter() - started:.0f} s", flush=True)
    return result


def _prepare(data: Path) -> None:
    """Prepare the demo dataset once; on a rerun make it the current dataset again (another
    `genrec prepare` may have changed that since)."""
    from genrec import pipeline
    from genrec.core.layout import remember_current_dataset

    if (data / "stats.json").is_file():
        remember_current_dataset(data)
        print(f"=== 1/6 prepare: {data} is already prepared; it is the current dataset again", flush=True)
    else:
        _step("1/6 prepare", lambda: pipeline.prepare(pipeline.PrepareConfig("demo", out=data)))


def _run(args) -> int:
    from genrec import pipeline
    from genrec.commands.report import SCORE_NOTE, evaluation_table, fusion_line, recommendation_lines
    from genrec.core.layout import default_dataset_dir

    data = Path(args.out) if args.out else default_dataset_dir("demo")
    started = time.perf_counter()
    progress = bool(args.progress)
    _prepare(data)
    _step("2/6 embed", lambda: pipeline.embed(pipeline.EmbedConfig(data, progress=progress)))
    if not (data / "tokenizer" / "semantic_ids.npy").is_file():
        tokenizer = pipeline.TokenizerTrainingConfig(data, progress=progress)  # the defaults, as train-tokenizer
        _step(f"3/6 train-tokenizer ({tokenizer.method})", lambda: pipeline.train_tokenizer(tokenizer))
    trained = _step("4/6 train-recommender", lambda: pipeline.train_recommender(pipeline.RecommenderTrainingConfig.from_options(
        data, train=DEMO_TRAIN, model=DEMO_MODEL, progress=progress, sasrec_beside=None)))  # minutes, not the hour
    state = trained.state
    print(f"model alone: best valid NDCG@10 {state.best_ndcg:.4f} at step {state.best_step:,} "
          f"({DEMO_TRAIN['eval_users']} sampled validation users)")
    if fusion_line(trained.fusion):
        print(fusion_line(trained.fusion))
    # One history rule for the metrics and the recommendations printed under them: the user's own
    # history left out, the default of recommend, the CLI and the HTTP API.
    result = _step("5/6 evaluate", lambda: pipeline.evaluate(pipeline.EvaluateConfig(
        data, split="test", progress=progress, exclude_seen=DEFAULT_EXCLUDE_SEEN)))
    print(f"test split, {result['num_users']:,} users, full catalogue of {result['num_items']:,} items:")
    print(evaluation_table(result, DEMO_METRICS))
    for_user = _step("6/6 recommend", lambda: pipeline.recommend(pipeline.RecommendConfig(
        data, user="1", top_k=5, exclude_seen=DEFAULT_EXCLUDE_SEEN)))
    for_history = pipeline.recommend(pipeline.RecommendConfig(data, history=["D00001", "D00002"], top_k=5,
                                                              exclude_seen=DEFAULT_EXCLUDE_SEEN))
    print("\n".join(recommendation_lines(for_user) + recommendation_lines(for_history)))
    print(f"{SCORE_NOTE}; items in the history are left out")
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; artifacts in {data}/")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the whole pipeline on the built-in demo dataset", description=__doc__)
    parser.add_argument("--out", help="dataset directory (default data/demo)")
    parser.add_argument("--progress", action="store_true", help="show per-step progress bars")
    parser.set_defaults(func=_run, interrupted=(
        "interrupted; rerun `genrec demo` to continue: finished steps are reused and training resumes from its "
        "last checkpoint (none before the first validation)"))
