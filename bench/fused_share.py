"""The T5's share of the fusion on validation: T5 variants fused with the same SASRec and prior.

Each T5 model (trained with `--t5-only`) is copied into --work, its fusion with SASRec and the
transition prior chosen on 5,000 sampled validation users exactly as `train-recommender` does
(`genrec.pipeline.choices.choose_fusion`, the default grids), and then every validation user is
decoded fused (beam 30). SASRec + prior (SASRec's own chosen prior weight) is decoded over the same
users, so each fused row has its paired share over SASRec + prior, and each later T5 its paired
difference with the first. Test is not read. Resumable: a decoded row is kept in --work.

    python -m bench.fused_share --dataset data/amazon-beauty --sasrec data/amazon-beauty/sasrec \
        --models base=runs/base dropout01=runs/dropout01 --work runs/share \
        --out bench/results/t5-defaults-beauty --name fused-share
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from bench.common import report_page, run_script, script_parser, write_report
from bench.t5_options import paired_cell, per_user, summary


def _decoded(path: Path, model: Path, dataset: str) -> dict[str, np.ndarray]:
    if not path.is_file():
        arrays = per_user(model, dataset, "valid", policy="chosen")
        tmp = path.with_name(f".{path.stem}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    return dict(np.load(path))


def _fused(work: Path, name: str, source: Path, dataset: str, sasrec: str, seed: int) -> tuple[dict, dict]:
    """The T5 ``source`` fused with ``sasrec`` + prior (weights chosen on validation), per validation user."""
    from genrec.core.io import read_json
    from genrec.pipeline.choices import choose_fusion
    from genrec.pipeline.common import FUSION_GRIDS

    model = work / name
    if not (model / "genrec.json").is_file() or "fusion" not in read_json(model / "genrec.json") \
            or not read_json(model / "genrec.json")["fusion"]:
        shutil.rmtree(model, ignore_errors=True)
        shutil.copytree(source, model)
        fusion = choose_fusion(model, Path(dataset), dict(FUSION_GRIDS), 5000, seed, sasrec)
        if not fusion:
            from genrec.core.errors import GenrecError

            raise GenrecError(f"{source}: no fusion was chosen (is {sasrec} a trained SASRec?)")
    fusion = read_json(model / "genrec.json")["fusion"]
    return _decoded(work / f"{name}.fused.valid.npz", model, dataset), fusion


def _run(args, command: str) -> int:
    from genrec.core.errors import GenrecError
    from genrec.core.hardware import hardware_line
    from genrec.core.io import read_json

    models = {}
    for spec in args.models:
        name, sep, path = spec.partition("=")
        if not sep or not name or not Path(path, "genrec.json").is_file():
            raise GenrecError(f"--models takes NAME=TRAINED_T5_DIR, got {spec!r}")
        models[name] = Path(path)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    sasrec = _decoded(work / "sasrec_prior.valid.npz", Path(args.sasrec), args.dataset)
    sasrec_fusion = read_json(Path(args.sasrec) / "genrec.json").get("fusion", {})
    report = {"command": command, "hardware": hardware_line(), "sasrec": args.sasrec,
              "sasrec_prior": {"fusion": sasrec_fusion, "valid": summary(sasrec, None)}, "models": {}}
    both = f"{sasrec['hit@10'].mean():.4f} / {sasrec['ndcg@10'].mean():.4f}"
    rows = [["SASRec + prior", str(sasrec_fusion.get("weights")), both, f"{sasrec['hit@20'].mean():.4f}", "", ""]]
    first = None
    for name, source in models.items():
        fused, fusion = _fused(work, name, source, args.dataset, args.sasrec, args.seed)
        share = summary(fused, sasrec)
        against_first = summary(fused, first) if first is not None else None
        report["models"][name] = {"source": str(source), "fusion": {k: fusion[k] for k in ("weights", "exclude_seen")},
                                  "steps": read_json(source / "genrec.json").get("steps"),
                                  "valid_vs_sasrec_prior": share, "valid_vs_first": against_first}
        rows.append([f"{name} fused", str(fusion["weights"]),
                     f"{share['hit@10']:.4f} / {share['ndcg@10']:.4f}", f"{share['hit@20']:.4f}",
                     paired_cell(share), "" if against_first is None else paired_cell(against_first)])
        first = fused if first is None else first
    n = len(sasrec["hit@10"])
    markdown = report_page(
        f"The T5's share of the fusion, validation: {args.dataset}", command, f"{hardware_line()}.",
        f"Every validation user ({n:,}), full catalogue, beam 30, policy (weights, history rule) chosen on "
        "5,000 sampled validation users as `train-recommender` chooses it. Share: fused minus SASRec + prior, "
        "paired over the same users ± its standard error.",
        ["row", "weights", "Recall@10 / NDCG@10", "Recall@20", "share over SASRec + prior",
         f"paired vs {next(iter(models))} fused"], rows)
    write_report(args.out, args.name, report, markdown)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.fused_share", __doc__)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--sasrec", required=True, help="a trained SASRec dir (with its chosen prior weight)")
    parser.add_argument("--models", nargs="+", required=True, metavar="NAME=DIR",
                        help="T5 models trained with --t5-only; the first is the one the others are compared with")
    parser.add_argument("--seed", type=int, default=0, help="which validation users choose the fusion")
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--name", default="fused-share")
    return run_script("bench.fused_share", parser, _run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
