"""Train every tokenizer method on one dataset and tabulate their SID metrics (NAME.md + NAME.json).

Run from the repository root:

    python -m bench.tokenizer_methods --dataset data/amazon-beauty --name beauty --out bench/results/tokenizers

Each variant is ``genrec.pipeline.train_tokenizer`` with its method and options (the table's
VARIANTS, plus --seed and --options for every variant), in this process, writing its artifact to
SCRATCH/NAME/VARIANT. A variant whose artifact is there already is not trained again (--rerun
retrains it). Training time is the tokenizer's own fit time. The report goes to --out, which
defaults to SCRATCH/NAME: pass ``--out bench/results/tokenizers`` to update the committed tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.common import markdown_table, run_script, script_parser, write_report
from genrec.core.errors import GenrecError

# variant -> (method, options)
VARIANTS = {
    "r3vae": ("r3vae", {}),
    "rqvae": ("rqvae", {}),
    "rqvae-no-kmeans-init": ("rqvae", {"kmeans_init": False}),
    "vqvae": ("vqvae", {}),
    "rkmeans": ("rkmeans", {}),
    "rkmeans-balanced": ("rkmeans", {"balanced": True}),
    "opq": ("opq", {}),
    "r3vae-no-ref": ("r3vae", {"use_reference": False}),
    "r3vae-ste": ("r3vae", {"rating": "ste"}),
    "r3vae-no-sc-pd": ("r3vae", {"use_sc": False, "use_pd": False}),
}


def main(argv: list[str] | None = None) -> int:
    return run_script("bench.tokenizer_methods", build_parser(), _run, argv)


def fmt(values, spec=".3f"):
    return "/".join(format(v, spec) for v in values)


def markdown(rows: list[dict], header: str) -> str:
    columns = ["variant", "collision rate", "largest bucket", "usage per level", "perplexity per level", "SC", "PD",
               "PD (input centroids)", "Gini", "recon ‖x−x̂‖²", "train s"]
    table = []
    for r in rows:
        m = r["metrics"]
        table.append([r["variant"], f"{m['collision_rate']:.3f}", m["largest_bucket"], fmt(m["codebook_usage"], ".2f"),
                      fmt(m["perplexity"], ".0f"), f"{m['semantic_cohesion']:.3f}",
                      f"{m['preference_discrimination']:.3f}", f"{m['preference_discrimination_input']:.3f}",
                      f"{m['gini']:.3f}", f"{m['reconstruction_mse']:.3f}", f"{m['training_seconds']:.1f}"])
    return "\n".join([header, "", *markdown_table(columns, table)]) + "\n"


def variant_options(variant: str, seed: int, extra: dict) -> tuple[str, dict]:
    if variant not in VARIANTS:
        raise GenrecError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    method, options = VARIANTS[variant]
    return method, {**options, "seed": seed, **extra}


def build_parser():
    parser = script_parser("bench.tokenizer_methods", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--name", required=True, help="report file stem (NAME.md / NAME.json)")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scratch", default="/tmp/genrec_tokenizer_runs", help="artifacts go to SCRATCH/NAME/VARIANT")
    parser.add_argument("--options", default="{}", help="JSON of extra method options for every variant")
    parser.add_argument("--out", help="report folder (default SCRATCH/NAME; bench/results/tokenizers = the repo's)")
    parser.add_argument("--rerun", action="store_true", help="retrain variants that already have metrics.json")
    return parser


def _run(args: argparse.Namespace, command: str) -> int:
    """Train (or find) every variant, then write the table."""
    from genrec import pipeline as gp
    from genrec.core.hardware import hardware, hardware_line
    from genrec.tokenizer.registry import method_config

    try:
        extra = json.loads(args.options)
    except json.JSONDecodeError as exc:
        raise GenrecError(f"--options: not JSON ({exc})") from None
    if not isinstance(extra, dict):
        raise GenrecError("--options: expected a JSON object of method options")
    plan = [(v, *variant_options(v, args.seed, extra)) for v in args.variants.split(",") if v.strip()]
    scratch = Path(args.scratch) / args.name
    rows = []
    for variant, method, options in plan:
        out = scratch / variant
        config = gp.TokenizerTrainingConfig(args.dataset, method=method, options=method_config(method, options),
                                            out=str(out), progress=False,
                                            collaborative_weight=0.0)  # this study: text only
        if (out / "metrics.json").is_file() and not args.rerun:  # resumable: finished variants are kept
            print(f"[{variant}] done already: {out}", flush=True)
        else:
            print(f"[{variant}] train_tokenizer({config!r})", flush=True)
            gp.train_tokenizer(config)
        rows.append({"variant": variant, "method": method, "options": options,
                     "metrics": json.loads((out / "metrics.json").read_text()),
                     "history": json.loads((out / "training_history.json").read_text())})
    info = hardware()
    report = {"dataset": args.dataset, "hardware": info, "script": command, "runs": rows}
    header = (f"# Tokenizers on {args.name}\n\nMade by `{command}` on {hardware_line(info)}.\n"
              f"Per-variant options are in {args.name}.json. Metric definitions: eval/sid_metrics.py.")
    write_report(Path(args.out) if args.out else scratch, args.name, report, markdown(rows, header))
    return 0


if __name__ == "__main__":
    sys.exit(main())
