"""The speed suite (``python -m bench``): genrec's paths against plain baselines, measured in one
run on one machine.

Sections (each case runs in a fresh process, so its peak memory is its own and no case warms
another's caches or allocator):

* decode: users/s of top-``beams`` constrained beam search, plain ``generate`` with a prefix
  function vs ``generate`` with genrec's trie LogitsProcessor vs genrec's fast path
  (bench.decoding_speed), plus how often the fast path returns exactly the processor path's
  items for the same users;
* train: samples/s of a training step fed by a plain padded DataLoader with torch's dropout vs
  genrec's path, with one row per ingredient (bench.training_speed; genrec.core.allocator);
* tokenizer: fit + SID assignment time and peak memory of R3-VAE and residual K-Means on the
  dataset's item embeddings, and optionally on synthetic catalogues of any size
  (bench.tokenizer_speed).

Speed is reported as ratios against the baseline measured in the same run. Results: NAME.json
(everything) and NAME.md (tables), with the hardware they ran on (genrec.core.hardware).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from bench.common import markdown_table, run_isolated
from bench.decoding_speed import DECODE_PATHS, decode_case
from bench.tokenizer_speed import TOKENIZER_METHODS, tokenizer_case
from bench.training_speed import TRAIN_VARIANTS, train_case

SECTIONS = ("decode", "train", "tokenizer")


@dataclass
class BenchSettings:
    dataset: str
    tokenizer: str
    model: str | None = None  # a trained recommender to decode with (default: a fresh one of model_config)
    model_config: dict = field(default_factory=dict)  # RecommenderConfig fields (default: TIGER's size)
    beams: int = 20
    decode_users: int = 2048
    plain_users: int = 128
    decode_batch_size: int = 64  # generate paths
    fast_batch_size: int = 256
    batch_size: int = 256
    train_steps: int = 30
    plain_train_steps: int = 8  # the plain loop pads every batch to the same width: few steps suffice
    warmup_steps: int = 3
    tokenizer_methods: tuple[str, ...] = TOKENIZER_METHODS
    synthetic_items: tuple[int, ...] = ()
    synthetic_codebook_sizes: tuple[int, ...] = (256,)
    synthetic_batch_size: int = 4096
    synthetic_steps: int = 20
    seed: int = 0


def _decode_section(payload: dict, log) -> dict:
    runs = {}
    for path in DECODE_PATHS:
        runs[path] = run_isolated(decode_case, {"settings": payload, "path": path}, keep_freed_memory=False)
        log(f"decode {path:<10} {runs[path]['users_per_second']:8.1f} users/s  peak {runs[path]['peak_rss_mb']:.0f} MB")
    reference, fast = np.asarray(runs["processor"].pop("items")), np.asarray(runs["fast"].pop("items"))
    runs["plain"].pop("items")
    return {
        "runs": runs,
        "speedup_vs_plain": {p: runs[p]["users_per_second"] / runs["plain"]["users_per_second"] for p in DECODE_PATHS},
        "fast_equals_processor": float((fast[: len(reference)] == reference).all(axis=1).mean()),
        "fast_same_top10_set": float(np.mean([set(a[:10]) == set(b[:10]) for a, b in zip(fast, reference)])),
    }


def _train_section(payload: dict, log) -> dict:
    runs = {}
    for variant, (_, _, keep) in TRAIN_VARIANTS.items():
        runs[variant] = run_isolated(train_case, {"settings": payload, "variant": variant}, keep_freed_memory=keep)
        log(f"train  {variant:<24} {runs[variant]['samples_per_second']:7.1f} samples/s  "
            f"width {runs[variant]['mean_input_width']:.1f}  peak {runs[variant]['peak_rss_mb']:.0f} MB")
    base = runs["plain"]["samples_per_second"]
    return {"runs": runs, "speedup_vs_plain": {v: r["samples_per_second"] / base for v, r in runs.items()}}


def _tokenizer_section(settings: BenchSettings, payload: dict, log) -> list[dict]:
    cases = [{"method": m} for m in settings.tokenizer_methods]
    cases += [{"method": m, "items": n, "codebook_size": size} for n in settings.synthetic_items
              for size in settings.synthetic_codebook_sizes for m in settings.tokenizer_methods]
    rows = []
    for case in cases:
        rows.append(run_isolated(tokenizer_case, {"settings": payload, **case}))
        r = rows[-1]
        log(f"tokenizer {r['method']:<8} {r['source']:<9} n={r['items']:>9,} M={r['codebook_size']:>5}: fit "
            f"{r['fit_seconds']:7.1f} s  encode {r['encode_seconds']:6.1f} s  peak {r['peak_rss_mb']:.0f} MB")
    return rows


def run_bench(settings: BenchSettings, sections: tuple[str, ...], log=print) -> dict:
    from genrec.core.hardware import hardware

    payload = asdict(settings)
    report = {"settings": payload, "hardware": hardware(), "sections": list(sections)}
    if "decode" in sections:
        report["decode"] = _decode_section(payload, log)
    if "train" in sections:
        report["train"] = _train_section(payload, log)
    if "tokenizer" in sections:
        report["tokenizer"] = _tokenizer_section(settings, payload, log)
    return report


def render_markdown(report: dict, command: str) -> str:
    from genrec.core.hardware import hardware_line

    settings = report["settings"]
    lines = [f"# genrec bench: {Path(settings['dataset']).name}", "", f"Command: `{command}`", "",
             f"Hardware: {hardware_line(report['hardware'])}, {report['hardware']['memory_gb']} GB, "
             f"Python {report['hardware']['python']}.", ""]
    model = settings["model"] or f"fresh model, config {settings['model_config'] or 'TIGER defaults'}"
    if "decode" in report:
        d = report["decode"]
        lines += [f"## Decoding (beam {settings['beams']}, {model})", ""]
        lines += markdown_table(["path", "users", "users/s", "vs plain", "peak RSS MB"], [
            [path, run["users"], f"{run['users_per_second']:.1f}", f"{d['speedup_vs_plain'][path]:.2f}x",
             f"{run['peak_rss_mb']:.0f}"] for path, run in d["runs"].items()])
        lines += ["", f"Fast path returns exactly the processor path's ranked items for {d['fast_equals_processor']:.1%} "
                  f"of the users both decoded (same top-10 set: {d['fast_same_top10_set']:.1%}).", ""]
    if "train" in report:
        t = report["train"]
        lines += [f"## Training step (batch {settings['batch_size']})", ""]
        lines += markdown_table(["variant", "steps timed", "mean width", "samples/s", "vs plain", "peak RSS MB"], [
            [variant, run["steps"], f"{run['mean_input_width']:.1f}", f"{run['samples_per_second']:.1f}",
             f"{t['speedup_vs_plain'][variant]:.2f}x", f"{run['peak_rss_mb']:.0f}"] for variant, run in t["runs"].items()])
        lines += ["", f"Epoch mean width with bucketing: {t['runs']['genrec']['epoch_mean_input_width']:.1f} tokens "
                  f"({t['runs']['genrec']['examples_per_epoch']:,} examples per epoch).", ""]
    if "tokenizer" in report:
        lines += ["## Tokenizers", ""]
        lines += markdown_table(
            ["method", "data", "items", "M", "fit s", "encode s", "usage per level", "peak RSS MB", "data MB"],
            [[r["method"], r["source"], f"{r['items']:,}", r["codebook_size"], f"{r['fit_seconds']:.1f}",
              f"{r['encode_seconds']:.1f}", "/".join(f"{u:.2f}" for u in r["usage"]), f"{r['peak_rss_mb']:.0f}",
              f"{r['data_mb']:.0f}"] for r in report["tokenizer"]])
        lines.append("")
    return "\n".join(lines)
