"""The whole study: embeddings once, every run (``runs``), then the report (``report``) in OUT:
compare.json (config, summary, every run), compare.md and the plots."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from genrec import pipeline
from genrec.compare import report
from genrec.compare.config import REFERENCE, StudyConfig
from genrec.compare.runs import PROJECTION_PLOT, archive, check_options, finished_runs, plan, run_all, with_validation
from genrec.core.errors import GenrecError
from genrec.core.io import atomic_write_json, atomic_write_text

PLOTS = ("recall_by_variant.png", "sid_metrics_vs_recall.png", "validation_curves.png", "codebook_usage.png")


def run_study(config: StudyConfig, dataset: Path, out: Path, command_line: str, hardware: str,
              report_only: bool = False, archive_to: Path | None = None) -> dict:
    """Every run, then the report; ``report_only``: no run is started, the report covers the runs
    finished so far (to read a study while it runs, or one split over machines); ``archive_to``: the
    report and each finished run's records (no model) are copied there too (``runs.archive``)."""
    check_options(config)
    for folder, what in ((out, "--out"), (archive_to, "--archive")):
        if folder is not None:
            _check_folder(folder, what)
    # Embeddings once, here, so parallel runs never encode at the same time, and every run reads the
    # same encoder's cache.
    encoder = pipeline.embed(pipeline.EmbedConfig(dataset, encoder=config.encoder, progress=False)).encoder
    planned = plan(config, dataset, out, encoder)
    runs = finished_runs(planned) if report_only else planned
    if not runs:
        raise GenrecError(f"{out}: no finished run to report yet (run the study without --report-only)")
    out.mkdir(parents=True, exist_ok=True)
    results = [with_validation(result, run.folder) for result, run in zip(run_all(runs, config.jobs), runs)]
    summary = report.summarize(results)
    reference = next((r for r in runs if r.variant.method == REFERENCE and not r.variant.options), None)
    projection = report.reference_projection(reference.folder, dataset, out) if reference is not None else None
    if projection is not None:
        summary["reference_projection"] = {"run": reference.folder.name, **projection}
    header = (f"# Tokenizer study on {dataset.name}\n\nCommand: `{command_line}`\n\nHardware: {hardware}\n\n"
              f"Runs: {_runs_line(results, planned, config.seeds)}; recipe "
              f"`{config.recipe}` with train {config.train or '{}'}, model {config.model or '{}'}; embeddings {encoder}. "
              f"Plots: {', '.join(PLOTS)}.")
    full = {"command": command_line, "hardware": hardware, "config": dataclasses.asdict(config), "encoder": encoder,
            **summary, "runs": results}
    atomic_write_json(out / "compare.json", _nan_as_null(full))
    atomic_write_text(out / "compare.md", report.render_markdown(summary, header))
    report.plot_recall(results, out / PLOTS[0])
    report.plot_metric_scatter(results, out / PLOTS[1])
    report.plot_validation_curves(results, out / PLOTS[2])
    first_runs = {}
    for run in runs:
        first_runs.setdefault(run.variant.name, run.folder)
    report.plot_usage_curves(results, first_runs, out / PLOTS[3])
    if archive_to is not None and archive_to.resolve() != out.resolve():
        archive(runs, [out / name for name in ("compare.json", "compare.md", *PLOTS, PROJECTION_PLOT)], archive_to)
    return full


def _check_folder(folder: Path, what: str) -> None:
    """A study or archive folder must be a folder (or not exist yet) under folders, before hours of runs."""
    blocking = next((path for path in (folder, *folder.parents) if path.exists() and not path.is_dir()), None)
    if blocking is not None:
        raise GenrecError(f"{what} {folder}: {blocking} is a file, not a folder")


def _runs_line(results: list[dict], planned: list, seeds: int) -> str:
    if len(results) == len(planned):
        return f"{len(results)} ({len(results) // seeds} variants x {seeds} seeds)"
    return f"{len(results)} of the {len(planned)} planned ({len(planned) // seeds} variants x {seeds} seeds) finished so far"


def _nan_as_null(value):
    """NaN (an undefined correlation or interval) as JSON null: valid JSON for any reader."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _nan_as_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_as_null(item) for item in value]
    return value
