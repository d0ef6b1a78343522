"""Business rules kept inside the beam against post-filtering an unfiltered list (issue 46).

    python -m bench.rules_beam --dataset DIR --out bench/results/rules-beauty [--users 6000]

The trained recommender of DIR as `genrec evaluate` decodes it (fused, the weights and history rule
chosen on validation), on a sample of test users. Rules: "category = C" for the 5 largest categories
of the dataset's item fields, and "in stock" on a random half of the items (seed 0). For each rule,
over the sampled users whose test item the rule allows: Recall@10 / NDCG@10 with the rule inside the
beam (width 30, as evaluate, and width 100, post-filtering's decoding cost) and with the unfiltered
top 100 (width 100) filtered afterwards, the paired difference inside (width 100) minus post-filter
with its standard error, and how often the filtered list has fewer than 10 items. Speed: users/s of
the beam with and without a rule.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections import Counter

import numpy as np

from bench.common import markdown_table, run_script, script_parser, write_report

TOP_K, BEAMS, POST_BEAMS = 10, 30, 100


def hits(lists: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Recall@10 and NDCG@10 of ranked ``lists`` [n, >= 10] (0 = empty) against one target each."""
    top = lists[:, :TOP_K]
    found = top == targets[:, None]
    rank = np.argmax(found, axis=1)
    hit = found.any(axis=1)
    return float(hit.mean()), float(np.where(hit, 1.0 / np.log2(rank + 2), 0.0).mean())


def post_filtered(lists: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Each row's allowed items in order, cut to 10 (0 pads a shorter list)."""
    out = np.zeros((len(lists), TOP_K), dtype=np.int64)
    for row, items in enumerate(lists):
        kept = [int(i) for i in items if i > 0 and allowed[i]][:TOP_K]
        out[row, :len(kept)] = kept
    return out


def rules_of(fields: dict, num_items: int) -> dict[str, np.ndarray]:
    """name -> allowed items: the 5 largest categories, and a random half of the items "in stock"."""
    rules = {}
    if "category" in fields:
        counts = Counter(v for v in fields["category"][1:] if v is not None)
        for category, _ in counts.most_common(5):
            rules[f"category = {category}"] = np.asarray([v == category for v in fields["category"]], dtype=bool)
    stock = np.random.default_rng(0).random(num_items + 1) < 0.5
    stock[0] = False
    rules["in stock (random 50% of items)"] = stock
    return rules


def run(args, command: str) -> int:
    import torch

    from genrec.core.hardware import hardware, hardware_line
    from genrec.data_prep.item_fields import read_item_fields
    from genrec.pipeline.loading import load_trained
    from genrec.recommender.data import split_examples

    torch.set_num_threads(1)
    recommender, dataset = load_trained(args.dataset, args.model)
    policy = recommender.policy
    examples = split_examples(dataset, "test", None)
    rng = np.random.default_rng(0)
    pick = np.sort(rng.choice(len(examples), min(args.users, len(examples)), replace=False))
    users = [examples[i][0] for i in pick]
    histories = [examples[i][1] for i in pick]
    targets = np.asarray([examples[i][2] for i in pick])
    started = time.perf_counter()
    wide, _ = recommender.recommend(histories, POST_BEAMS, users=users, beams=POST_BEAMS)
    wide_seconds = time.perf_counter() - started
    started = time.perf_counter()
    plain, _ = recommender.recommend(histories, TOP_K, users=users, beams=BEAMS)
    plain_seconds = time.perf_counter() - started
    rows, report_rules = [], {}
    for name, allowed in rules_of(read_item_fields(dataset.path, dataset.num_items), dataset.num_items).items():
        mine = np.nonzero(allowed[targets])[0]
        ruled = recommender.with_policy(dataclasses.replace(policy, allowed=allowed))
        started = time.perf_counter()
        inside, _ = ruled.recommend([histories[i] for i in mine], TOP_K, users=[users[i] for i in mine], beams=BEAMS)
        seconds = time.perf_counter() - started
        inside_wide, _ = ruled.recommend([histories[i] for i in mine], TOP_K, users=[users[i] for i in mine],
                                         beams=POST_BEAMS)
        after = post_filtered(wide[mine], allowed)
        inside_metrics, after_metrics = hits(inside, targets[mine]), hits(after, targets[mine])
        wide_metrics = hits(inside_wide, targets[mine])
        gain = (inside_wide[:, :TOP_K] == targets[mine, None]).any(1).astype(float) - \
            (after == targets[mine, None]).any(1).astype(float)
        gain_se = float(gain.std(ddof=1) / np.sqrt(len(gain))) if len(gain) > 1 else 0.0
        short = float((after == 0).any(axis=1).mean())
        report_rules[name] = {"items": int(allowed.sum()), "users": int(len(mine)),
                              "inside": dict(zip(("recall@10", "ndcg@10"), inside_metrics)),
                              "inside_wide": dict(zip(("recall@10", "ndcg@10"), wide_metrics)),
                              "inside_wide_minus_post_filter_recall@10": float(gain.mean()),
                              "inside_wide_minus_post_filter_recall@10_se": gain_se,
                              "post_filter": dict(zip(("recall@10", "ndcg@10"), after_metrics)),
                              "post_filter_short_share": short, "inside_short_share": float((inside == 0).any(1).mean()),
                              "inside_users_per_second": len(mine) / seconds}
        rows.append([name, f"{allowed.sum():,}", f"{len(mine):,}", "%.4f / %.4f" % inside_metrics,
                     "%.4f / %.4f" % wide_metrics, "%.4f / %.4f" % after_metrics,
                     f"{gain.mean():+.4f} ± {gain_se:.4f}", f"{short:.1%}", f"{len(mine) / seconds:.0f}"])
    info = hardware()
    report = {"command": command, "hardware": info, "users": len(users), "fusion": policy.weights,
              "exclude_seen": policy.exclude_seen, "rules": report_rules,
              "plain_users_per_second": len(users) / plain_seconds, "wide_users_per_second": len(users) / wide_seconds}
    lines = [f"# Rules inside the beam vs post-filtering ({hardware_line(info)})", "", f"Command: `{command}`", "",
             f"{len(users):,} sampled test users, fused decoding {policy.weights} (history left out: "
             f"{policy.exclude_seen}); per rule, the users whose test item it allows. Inside: the rule in the beam "
             f"(width {BEAMS}); post-filter: the unfiltered top {POST_BEAMS} (width {POST_BEAMS}), the allowed items "
             f"kept. Beam without a rule: {len(users) / plain_seconds:.0f} users/s (width {BEAMS}), "
             f"{len(users) / wide_seconds:.0f} users/s (width {POST_BEAMS}); one torch thread.", "",
             *markdown_table(["rule", "items", "users", f"inside (width {BEAMS}): Recall@10 / NDCG@10",
                              f"inside (width {POST_BEAMS})", "post-filter: Recall@10 / NDCG@10",
                              f"inside (width {POST_BEAMS}) minus post-filter, Recall@10 ± s.e.",
                              "post-filter lists short of 10", f"inside users/s (width {BEAMS})"], rows), ""]
    write_report(args.out, args.name, report, "\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.rules_beam", __doc__)
    parser.add_argument("--dataset", required=True, help="a prepared dataset with a trained recommender and item fields")
    parser.add_argument("--model", help="the recommender (default DATASET/recommender)")
    parser.add_argument("--out", default="bench/results/rules-beauty")
    parser.add_argument("--name", default="rules-beauty")
    parser.add_argument("--users", type=int, default=6000, help="test users sampled (seed 0)")
    return run_script("bench.rules_beam", parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
