"""Mean and spread over seeds of bench.time_to_quality runs of one config (``--seed S`` repeats).

    python -m bench.seed_summary bench/results/hour-beauty-opq/amazon-beauty-cpu-60min.json \
        bench/results/hour-beauty-opq/amazon-beauty-cpu-60min-seed1.json bench/results/hour-beauty-opq/amazon-beauty-cpu-60min-seed2.json \
        --out bench/results/hour-beauty-opq --name amazon-beauty-cpu-60min-seeds

Per test row (the decoding's kind: "genrec fused", "SASRec alone", ...; each run chose its own
weights on validation, listed per seed) the mean, the sample standard deviation and every seed's
value of Recall@K / NDCG@K / MRR. The runs must share their config apart from the seeds.

``--against A.json ...`` adds a paired comparison with the runs of another config over the same seeds
(e.g. the hour config with another tokenizer): per decoding, B - A with a 95% t-interval
(genrec.eval.paired), on test and on the validation users where each run chose its decoding.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from bench.common import markdown_table, run_script, script_parser, write_report
from bench.time_to_quality import TEST_KEYS
from genrec.core.errors import GenrecError
from genrec.core.io import read_json
from genrec.eval.paired import paired_difference

PAIRED_KEYS = ("recall@10", "ndcg@10")


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
    seeds = [seed_of(r) for r in reports]
    return {"seeds": seeds, "rows": rows, "commands": [r["command"] for r in reports],
            "total_minutes": [round(r["total_seconds"] / 60, 1) for r in reports]}


def seed_of(report: dict) -> int:
    return report["config"].get("train", {}).get("seed", 0)


def chosen_validation(report: dict) -> dict[str, dict]:
    """Validation Recall/NDCG@10 of the fused decoding the run chose (its fusion grid's row with the chosen
    weights and history rule) and of the T5 model alone under the same history rule."""
    fusion = report.get("fusion") or {}
    grid, rule = fusion.get("grid") or [], fusion.get("exclude_seen")

    def row(weights: dict) -> dict | None:
        for candidate in grid:
            names = set(candidate["weights"]) | set(weights)
            if candidate["exclude_seen"] == rule and all(
                    math.isclose(candidate["weights"].get(n, 0.0), weights.get(n, 0.0)) for n in names):
                return candidate
        return None

    rows = {"genrec fused": row(fusion.get("weights", {})), "T5 model alone": row({})}
    return {kind: {key: r[key] for key in PAIRED_KEYS} for kind, r in rows.items() if r is not None}


def paired_against(reports: list[dict], baselines: list[dict], level: float = 0.95) -> dict:
    """Per split and decoding, {key: {"reference", "other", "difference"}}: the baselines' mean, the
    reports' mean and the paired difference reports - baselines over the seeds (which must be the same)."""
    seeds, baseline_seeds = sorted(map(seed_of, reports)), sorted(map(seed_of, baselines))
    if seeds != baseline_seeds or len(set(seeds)) != len(seeds):
        raise GenrecError(f"--against needs one run per seed of the same seeds: {seeds} vs {baseline_seeds}")

    def tables(report: dict) -> dict[str, dict[str, dict]]:
        return {"test": {row_kind(row["decoding"]): row for row in report["test_rows"]},
                "validation": chosen_validation(report)}

    ours = {seed_of(r): tables(r) for r in reports}
    theirs = {seed_of(r): tables(r) for r in baselines}
    result = {}
    for split in ("test", "validation"):
        kinds = [k for k in ours[seeds[0]][split] if all(k in t[split] for t in (*ours.values(), *theirs.values()))]
        result[split] = {}
        for kind in kinds:
            result[split][kind] = {}
            for key in PAIRED_KEYS:
                a = {s: theirs[s][split][kind][key] for s in seeds}
                b = {s: ours[s][split][kind][key] for s in seeds}
                result[split][kind][key] = {"reference": float(np.mean(list(a.values()))),
                                            "other": float(np.mean(list(b.values()))),
                                            "difference": paired_difference(a, b, level).to_dict()}
    return {"level": level, "commands": [r["command"] for r in baselines], **result}


def render_paired(paired: dict) -> list[str]:
    percent = round(100 * paired["level"])

    def cell(c: dict) -> str:
        d = c["difference"]
        mark = " *" if d["beyond_noise"] else ""
        return (f"{c['reference']:.4f} -> {c['other']:.4f}: {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] "
                f"({d['relative']:+.1%}){mark}")

    rows = [[split, kind, *(cell(cells[key]) for key in PAIRED_KEYS)]
            for split in ("validation", "test") for kind, cells in paired[split].items()]
    runs = [f"- `{c}`" for c in paired["commands"]]
    return ["", f"## Paired against the --against runs (same seeds): their mean -> these runs' mean: difference "
            f"[{percent}% t-interval] (relative); * = the interval excludes 0", "",
            "Validation: the users each run chose its decoding on (the fused row is the chosen one). The runs "
            "compared against:", "", *runs, "",
            *markdown_table(["split", "decoding", "Recall@10", "NDCG@10"], rows)]


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
                      "validation users and read test once per row. The runs:", "", *runs, "", *table,
                      *(render_paired(summary["paired"]) if "paired" in summary else []), ""])


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
    if args.against:
        summary["paired"] = paired_against(reports, [read_report(path) for path in args.against])
    write_report(args.out, args.name, summary, render(summary, command))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.seed_summary", __doc__)
    parser.add_argument("reports", nargs="+", help="NAME.json of bench.time_to_quality runs, one per seed")
    parser.add_argument("--against", nargs="+", metavar="REPORT",
                        help="runs of another config, one per seed of the same seeds: paired differences")
    parser.add_argument("--out", required=True, help="report folder")
    parser.add_argument("--name", required=True)
    return run_script("bench.seed_summary", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
