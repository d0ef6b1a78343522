"""Encoder layouts under the same wall-clock budget, recipe and tokenizer: which gives better test metrics?

    python -m bench.one_pass --dataset data/amazon-beauty --config bench/configs/amazon-beauty-cpu-60min.json \
        --minutes 12 --work /tmp/one-pass [--variants every_prefix,items] [--out bench/results --name X]

Variants (``VARIANTS``): every_prefix (bidirectional encoder over one position per SID token, TIGER),
one_pass (item-causal encoder, one pass per user sequence), items (bidirectional, one position per
item: recommender.encoder_input) and items_one_pass (both). Each trains with
``genrec.pipeline.train_recommender`` on the cpu recipe with the config's "model"/"train" options on
top, plus ``time_budget_minutes`` and the variant's two fields, in its own process; the variants run
at the same time, one torch thread each, so they share the machine's conditions (run at most two
on 2 cores). Then ``genrec.pipeline.evaluate`` scores the best checkpoint on the whole test split.
A finished variant is reused on a rerun. The report goes to --work unless --out is given.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from bench.common import markdown_table, run_script, script_parser, write_report

SIDS_ONLY = {"item_text": False, "item_ids": False}  # the layouts over Semantic IDs alone
VARIANTS = {
    "every_prefix": {"encoder_attention": "bidirectional", "encoder_input": "tokens", **SIDS_ONLY},
    "one_pass": {"encoder_attention": "item_causal", "encoder_input": "tokens", **SIDS_ONLY},
    "items": {"encoder_attention": "bidirectional", "encoder_input": "items", **SIDS_ONLY},
    "items_one_pass": {"encoder_attention": "item_causal", "encoder_input": "items", **SIDS_ONLY},
}
KEYS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "mrr")


def train_variant(payload: dict) -> dict:
    import torch

    from genrec import pipeline as gp

    torch.set_num_threads(1)
    out = Path(payload["out"])
    result = gp.train_recommender(gp.RecommenderTrainingConfig.from_options(
        payload["dataset"], tokenizer=payload["tokenizer"], out=out, train=payload["train"], model=payload["model"],
        progress=False, recipe="cpu", sasrec_beside=None))
    test = gp.evaluate(gp.EvaluateConfig(payload["dataset"], model=out, split="test", progress=False))
    meta = json.loads((out / "genrec.json").read_text())
    return {"steps": meta["steps"], "epochs": meta["epochs"], "best_step": meta["best_step"],
            "train_seconds": meta["train_seconds"], "examples": meta.get("examples"),
            "already_done": result.already_done, "test": {key: test[key] for key in KEYS},
            "test_se": {key: test.get(f"{key}_se") for key in ("recall@10", "ndcg@10")}}


def _run(args, command: str) -> int:
    import multiprocessing

    from genrec.core.config import load_config_file
    from genrec.core.errors import GenrecError
    from genrec.core.hardware import hardware_line

    config = load_config_file(args.config)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    if set(variants) - set(VARIANTS) or args.minutes <= 0:
        raise GenrecError(f"--variants from {', '.join(VARIANTS)}; --minutes > 0")
    work = Path(args.work)
    payloads = {name: {"dataset": args.dataset, "tokenizer": args.tokenizer, "out": str(work / name),
                       "train": {**config.get("train", {}), "time_budget_minutes": args.minutes},
                       "model": {**config.get("model", {}), **VARIANTS[name]}}
                for name in variants}
    with ProcessPoolExecutor(len(variants), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(train_variant, payload) for name, payload in payloads.items()}
        runs = {name: future.result() for name, future in futures.items()}
    report = {"command": command, "hardware": hardware_line(), "minutes": args.minutes, "config": config, "runs": runs}
    rows = []
    for name, run in runs.items():
        rate = run["steps"] * config.get("train", {}).get("batch_size", 256) / max(run["train_seconds"], 1e-9)
        rows.append([name, run["steps"], run["epochs"], run["best_step"], f"{rate:.0f}",
                     *[f"{run['test'][key]:.4f}" for key in KEYS]])
    markdown = "\n".join([
        "# Encoder layouts at one training budget", "", f"Command: `{command}`", "",
        f"Hardware: {report['hardware']}; both variants at once, one torch thread each, {args.minutes:g}-minute "
        "training budget each; test = all users, full catalogue, beam 30.", "",
        *markdown_table(["variant", "steps", "epochs", "best step", "targets/s", *KEYS], rows), ""])
    write_report(Path(args.out) if args.out else work, args.name, report, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.one_pass", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--tokenizer", help="tokenizer artifact (default DATASET/tokenizer)")
    parser.add_argument("--config", required=True, help="JSON with model / train options")
    parser.add_argument("--minutes", type=float, required=True, help="training budget per variant")
    parser.add_argument("--work", required=True)
    parser.add_argument("--variants", default="every_prefix,items", help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--out")
    parser.add_argument("--name", default="one-pass")
    return run_script("bench.one_pass", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
