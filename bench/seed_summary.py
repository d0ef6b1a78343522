"""Mean and spread over seeds of bench.time_to_quality runs of one config (``--seed S`` repeats).

    python -m bench.seed_summary bench/results/amazon-beauty-cpu-60min.json \
        bench/results/amazon-beauty-cpu-60min-seed1.json bench/results/amazon-beauty-cpu-60min-seed2.json \
        --out bench/results --name amazon-beauty-cpu-60min-seeds

Per test row (the decoding's kind: "genrec fused", "SASRec alone", ...; each run chose its own
weights on validation, listed per seed) the mean, the sample standard deviation and every seed's
value of Recall@K / NDCG@K / MRR. The runs must share their config apart from the seeds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import markdown_table, run_script, script_parser, write_report
from bench.time_to_quality import TEST_KEYS
from genrec.core.errors import GenrecError
from genrec.core.io import read_json


def row_kind(label: str) -> str:
    """A test row's decoding without the settings chosen on validation: "genrec fused (prior 2)" ->
    "genrec fused"."""
    return label.split(" (")[0]


def without_seeds(config: dict) -> dict:
    """``config`` with every "seed" key removed, to check that runs differ only in their seeds."""
    return {k: without_seeds(v) if isinstance(v, dict) else v for k, v in config.items() if k != "seed"}


def summarise(reports: list[dict]) -> dict:
    """{"rows": [{"decoding", "settings": [per seed], metric: {"mean", "std", "values"}}], "seeds": [...]}."""
    if len(reports) < 2:
        raise GenrecError("need the reports of at least two seeds")
    configs = {repr(without_seeds(r["config"])) for r in reports}
    if len(configs) > 1:
        raise GenrecError("the runs differ in more than their seeds: " + " / ".join(sorted(configs)))
    per_run = [{row_kind(row["decoding"]): row for row in r["test_rows"]} for r in reports]
    kinds = [kind for kind in per_run[0] if all(kind in rows for rows in per_run)]
    rows = []
    for kind in kinds:
        row = {"decoding": kind, "settings": [rows[kind]["decoding"] for rows in per_run]}
        for key in TEST_KEYS:
            values = np.asarray([rows[kind][key] for rows in per_run], dtype=float)
            row[key] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)), "values": values.tolist()}
        rows.append(row)
    seeds = [r["config"].get("train", {}).get("seed", 0) for r in reports]
    return {"seeds": seeds, "rows": rows, "commands": [r["command"] for r in reports],
            "total_minutes": [round(r["total_seconds"] / 60, 1) for r in reports]}


def render(summary: dict, command: str) -> str:
    seeds = ", ".join(map(str, summary["seeds"]))

    def cell(metric: dict) -> str:
        return f"{metric['mean']:.4f} ± {metric['std']:.4f}"

    table = markdown_table(
        ["decoding", "Recall@10", "NDCG@10", "Recall@5", "NDCG@5", "per seed R@10 / NDCG@10", "settings per seed"],
        [[r["decoding"], cell(r["recall@10"]), cell(r["ndcg@10"]), cell(r["recall@5"]), cell(r["ndcg@5"]),
          "; ".join(f"{a:.4f} / {b:.4f}" for a, b in zip(r["recall@10"]["values"], r["ndcg@10"]["values"])),
          "; ".join(r["settings"])] for r in summary["rows"]])
    runs = [f"- seed {s} ({m} min): `{c}`" for s, c, m in
            zip(summary["seeds"], summary["commands"], summary["total_minutes"])]
    return "\n".join([f"# Test metrics over seeds {seeds}", "", f"Command: `{command}`", "",
                      "Mean ± sample standard deviation over the runs; each run chose its own decoding on its "
                      "validation users and read test once per row. The runs:", "", *runs, "", *table, ""])


REPORT_KEYS = ("command", "config", "test_rows", "total_seconds")


def read_report(path: str) -> dict:
    """A bench.time_to_quality NAME.json, or a one-line error naming what it lacks."""
    report = read_json(Path(path))
    missing = [key for key in REPORT_KEYS if not isinstance(report, dict) or key not in report]
    if missing:
        raise GenrecError(f"{path}: not a bench.time_to_quality report (no {', '.join(missing)})")
    return report


def _run(args: argparse.Namespace, command: str) -> int:
    reports = [read_report(path) for path in args.reports]
    summary = {"command": command, **summarise(reports)}
    write_report(args.out, args.name, summary, render(summary, command))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.seed_summary", __doc__)
    parser.add_argument("reports", nargs="+", help="NAME.json of bench.time_to_quality runs, one per seed")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--name", required=True)
    return run_script("bench.seed_summary", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
