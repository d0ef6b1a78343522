"""Beam search's own error against the model's, for trained T5 recommenders (recommender.search_error).

For each model and beam width: the share of validation users whose target is in the top 10 (hit),
pruned by the beam although the model scores it above the 10th returned item (search error), or
scored below it by the model itself (model error). Model alone, history not masked.

    python -m bench.search_error --dataset data/amazon-beauty --models base=runs/a text_ids=runs/b \
        --beams 10,30,100 --users 5000 --out bench/results/search-error-beauty --name search-error
"""

from __future__ import annotations

import numpy as np

from bench.common import markdown_table, run_script, script_parser, write_report


def _run(args, command: str) -> int:
    from genrec.core.errors import GenrecError
    from genrec.core.hardware import hardware_line
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.recommender.recommender import Recommender
    from genrec.recommender.search_error import search_errors

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    dataset = load_processed_dataset(args.dataset)
    users = None
    if args.users and args.users < dataset.num_users:
        users = np.sort(np.random.default_rng(args.seed).choice(np.arange(1, dataset.num_users + 1), args.users,
                                                                replace=False))
    rows, results = [], []
    for spec in args.models:
        name, sep, path = spec.partition("=")
        if not sep:
            raise GenrecError(f"--models takes NAME=PATH, got {spec!r}")
        recommender = Recommender.load(path)
        for found in search_errors(recommender, dataset, args.split, users, args.k, tuple(args.beams)):
            beams, result = found["beams"], {"model": name, "path": path, **found}
            results.append(result)
            rows.append([name, beams, f"{result['hit']:.4f}", f"{result['search_error']:.4f}",
                         f"{result['model_error']:.4f}"])
            print(f"{name} beams {beams}: hit {result['hit']:.4f} search error {result['search_error']:.4f}", flush=True)
    n = results[0]["users"] if results else 0
    markdown = "\n".join([
        f"# Beam search error at {args.k}: {args.split} users of {dataset.path}", "",
        f"Command: `{command}`", "", f"Hardware: {hardware_line()}", "",
        f"{n:,} {args.split} users; model alone, history not masked. Search error: the target is not in the "
        f"top {args.k} but the model's own log-probability of its Semantic ID is above the {args.k}th returned "
        "item's score (a wider or exact search would rank it in).", "",
        *markdown_table(["model", "beams", f"hit@{args.k}", "search error", "model error"], rows), ""])
    write_report(args.out, args.name, {"command": command, "hardware": hardware_line(), "results": results}, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.search_error", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME=PATH")
    parser.add_argument("--beams", type=lambda s: [int(v) for v in s.split(",")], default=[10, 30, 100])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    parser.add_argument("--users", type=int, default=5000, help="sampled users (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="search-error")
    return run_script("bench.search_error", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
