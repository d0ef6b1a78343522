"""``genrec bench``: genrec's paths against plain baselines, measured in one run on one machine.

Sections (each case runs in a fresh process, so its peak memory is its own and no case warms
another's caches or allocator):

* decode: users/s of top-``beams`` constrained beam search, plain ``generate`` with a prefix
  function vs ``generate`` with genrec's trie LogitsProcessor vs genrec's fast path
  (recommender.decoding_speed), plus how often the fast path returns exactly the processor path's
  items for the same users;
* train: samples/s of a training step fed by a plain padded DataLoader with torch's dropout vs
  genrec's path, with one row per ingredient (recommender.throughput; genrec.core.allocator);
* tokenizer: fit + SID assignment time and peak memory of R3-VAE and residual K-Means on the
  dataset's item embeddings (target: <= 2 minutes on 12k items), and optionally on synthetic
  catalogues of any size (memory bounded by the batch size).

Speed is reported as ratios against the baseline measured in the same run. Results: NAME.json
(everything) and NAME.md (tables) in the output folder, with the hardware they ran on.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

DECODE_PATHS = ("plain", "processor", "fast")
# name -> (bucketing, fast dropout, keep freed memory); the first is the baseline.
TRAIN_VARIANTS = {
    "plain": (False, False, False),
    "bucketing": (True, False, False),
    "bucketing+fast-dropout": (True, True, False),
    "genrec": (True, True, True),
}
TOKENIZER_METHODS = ("r3vae", "rkmeans")


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


def hardware() -> dict:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch": torch.__version__, "python": platform.python_version()}


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS:"))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _in_child(function, payload: dict, keep_freed_memory: bool) -> dict:
    """Runs in the fresh process: optional allocator tuning, the case, then its memory figures."""
    from genrec.core.allocator import keep_freed_memory as tune

    tuned = tune() if keep_freed_memory else False
    result = function(payload)
    result.update({"peak_rss_mb": round(_peak_rss_mb(), 1), "keep_freed_memory": tuned})
    return result


def run_isolated(function, payload: dict, keep_freed_memory: bool = False) -> dict:
    """``function(payload)`` in a fresh spawned process (its own peak RSS, allocator and caches)."""
    previous = os.environ.get("GENREC_KEEP_FREED_MEMORY")
    os.environ["GENREC_KEEP_FREED_MEMORY"] = "1" if keep_freed_memory else "0"
    try:
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            return pool.submit(_in_child, function, payload, keep_freed_memory).result()
    finally:
        if previous is None:
            os.environ.pop("GENREC_KEEP_FREED_MEMORY", None)
        else:
            os.environ["GENREC_KEEP_FREED_MEMORY"] = previous


# ----- cases (module level so a spawned process can import them) -----

def _load(settings: dict):
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.tokenizer.artifact import load_semantic_ids

    return load_processed_dataset(settings["dataset"]), load_semantic_ids(settings["tokenizer"])


def _recommender(settings: dict, sids):
    """(model, builder, table): the trained model if given, else a fresh one of model_config."""
    import torch

    from genrec.recommender.data import ExampleBuilder
    from genrec.recommender.model import RecommenderConfig, build_model
    from genrec.recommender.vocab import SidVocab

    if settings["model"]:
        from genrec.recommender.artifact import load_recommender

        loaded = load_recommender(settings["model"], tokenizer=settings["tokenizer"])
        model, config, vocab = loaded.model, loaded.config, loaded.vocab
    else:
        config = RecommenderConfig(**settings["model_config"])
        vocab = SidVocab.for_semantic_ids(sids, config.num_user_buckets)
        torch.manual_seed(settings["seed"])
        model = build_model(config, vocab)
    builder = ExampleBuilder(vocab.item_tokens(sids.codes), vocab, config.max_history)
    return model.eval(), builder, vocab.prefix_table(sids.codes)


def decode_case(payload: dict) -> dict:
    from genrec.recommender.decoding_speed import time_decoding

    settings, path = payload["settings"], payload["path"]
    dataset, sids = _load(settings)
    model, builder, table = _recommender(settings, sids)
    rng = np.random.default_rng(settings["seed"])
    users = rng.choice(np.arange(1, dataset.num_users + 1), min(settings["decode_users"], dataset.num_users), replace=False)
    if path != "fast":
        users = users[: settings["plain_users"]]
    histories = [dataset.split(int(u), "test")[0] for u in users]
    batch_size = settings["fast_batch_size"] if path == "fast" else settings["decode_batch_size"]
    rss_before = _rss_mb()
    seconds, rows = time_decoding(path, model, builder, table, sids.codes, histories, settings["beams"], batch_size)
    return {"path": path, "users": len(users), "seconds": seconds, "users_per_second": len(users) / seconds,
            "batch_size": batch_size, "rss_before_mb": round(rss_before, 1),
            "item_rows": rows[: settings["plain_users"]].tolist()}


def train_case(payload: dict) -> dict:
    from genrec.recommender.model import RecommenderConfig
    from genrec.recommender.throughput import training_throughput

    settings, variant = payload["settings"], payload["variant"]
    bucketing, fast_dropout, _ = TRAIN_VARIANTS[variant]
    dataset, sids = _load(settings)
    steps = settings["train_steps"] if bucketing else settings["plain_train_steps"]
    result = training_throughput(dataset, sids, RecommenderConfig(**settings["model_config"]), bucketing=bucketing,
                                 fast_dropout=fast_dropout, batch_size=settings["batch_size"], steps=steps,
                                 warmup=settings["warmup_steps"], seed=settings["seed"])
    return {"variant": variant, **result}


def synthetic_embeddings(n: int, d: int, seed: int = 0, clusters: int = 2000, chunk: int = 100_000) -> np.ndarray:
    """Unit-norm mixture of Gaussians around random centres (like sentence embeddings), made in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = centres[rng.integers(0, clusters, stop - start)] + 0.6 * rng.normal(size=(stop - start, d))
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def tokenizer_case(payload: dict) -> dict:
    """Fit + encode one method on the dataset's embeddings, or on ``items`` synthetic ones."""
    from genrec.tokenizer.base import build_tokenizer

    settings, method = payload["settings"], payload["method"]
    items, size = payload.get("items"), payload.get("codebook_size", 256)
    if items:  # scale case: mini-batch K-Means initialization and mini-batch training
        x = synthetic_embeddings(items, 384, seed=settings["seed"])
        batch = settings["synthetic_batch_size"]
        seeding = "kmeans++" if size <= 1024 else "random"  # k-means++ makes M sequential passes
        if method == "rkmeans":
            options = {"codebook_size": size, "kmeans_batch_size": batch, "kmeans_iters": 1, "init": seeding}
        else:
            options = {"codebook_size": size, "kmeans_batch_size": batch, "kmeans_iters": 1, "batch_size": batch,
                       "epochs": 1, "max_steps": settings["synthetic_steps"], "kmeans_seeding": seeding}
        source = "synthetic"
    else:
        from genrec.data_prep.embeddings import load_or_compute_item_embeddings

        x = load_or_compute_item_embeddings(settings["dataset"], show_progress=False).vectors
        options, source = {"seed": settings["seed"]}, "dataset"
    rss_data = _rss_mb()
    tokenizer = build_tokenizer(method, options)
    started = time.perf_counter()
    tokenizer.fit(x, progress=False)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    codes = tokenizer.encode(x)
    encode_seconds = time.perf_counter() - started
    usage = [float(len(np.unique(codes[:, level])) / size) for level in range(codes.shape[1])]
    return {"method": method, "source": source, "items": int(x.shape[0]), "dim": int(x.shape[1]), "codebook_size": size,
            "fit_seconds": fit_seconds, "encode_seconds": encode_seconds, "usage": usage,
            "data_mb": round(x.nbytes / 2**20, 1), "rss_after_data_mb": round(rss_data, 1), "options": options}


# ----- the run -----

def run_bench(settings: BenchSettings, sections: tuple[str, ...], log=print) -> dict:
    payload = asdict(settings)
    report = {"settings": payload, "hardware": hardware(), "sections": list(sections)}
    if "decode" in sections:
        runs = {}
        for path in DECODE_PATHS:
            runs[path] = run_isolated(decode_case, {"settings": payload, "path": path}, keep_freed_memory=False)
            log(f"decode {path:<10} {runs[path]['users_per_second']:8.1f} users/s  peak {runs[path]['peak_rss_mb']:.0f} MB")
        reference, fast = np.asarray(runs["processor"].pop("item_rows")), np.asarray(runs["fast"].pop("item_rows"))
        runs["plain"].pop("item_rows")
        report["decode"] = {
            "runs": runs,
            "speedup_vs_plain": {p: runs[p]["users_per_second"] / runs["plain"]["users_per_second"] for p in DECODE_PATHS},
            "fast_equals_processor": float((fast[: len(reference)] == reference).all(axis=1).mean()),
            "fast_same_top10_set": float(np.mean([set(a[:10]) == set(b[:10]) for a, b in zip(fast, reference)])),
        }
    if "train" in sections:
        runs = {}
        for variant, (_, _, keep) in TRAIN_VARIANTS.items():
            runs[variant] = run_isolated(train_case, {"settings": payload, "variant": variant}, keep_freed_memory=keep)
            log(f"train  {variant:<24} {runs[variant]['samples_per_second']:7.1f} samples/s  "
                f"width {runs[variant]['mean_input_width']:.1f}  peak {runs[variant]['peak_rss_mb']:.0f} MB")
        base = runs["plain"]["samples_per_second"]
        report["train"] = {"runs": runs, "speedup_vs_plain": {v: r["samples_per_second"] / base for v, r in runs.items()}}
    if "tokenizer" in sections:
        cases = [{"method": m} for m in settings.tokenizer_methods]
        cases += [{"method": m, "items": n, "codebook_size": size} for n in settings.synthetic_items
                  for size in settings.synthetic_codebook_sizes for m in settings.tokenizer_methods]
        rows = []
        for case in cases:
            rows.append(run_isolated(tokenizer_case, {"settings": payload, **case}))
            r = rows[-1]
            log(f"tokenizer {r['method']:<8} {r['source']:<9} n={r['items']:>9,} M={r['codebook_size']:>5}: fit "
                f"{r['fit_seconds']:7.1f} s  encode {r['encode_seconds']:6.1f} s  peak {r['peak_rss_mb']:.0f} MB")
        report["tokenizer"] = rows
    return report


def render_markdown(report: dict, command: str) -> str:
    hw = report["hardware"]
    lines = [f"# genrec bench: {Path(report['settings']['dataset']).name}", "",
             f"Command: `{command}`", "",
             f"Hardware: {hw['cpu']}, {hw['cores']} cores ({hw['torch_threads']} torch threads), {hw['memory_gb']} GB, "
             f"GPU {hw['gpu'] or 'none'}; torch {hw['torch']}, Python {hw['python']}.", ""]
    model = report["settings"]["model"] or f"fresh model, config {report['settings']['model_config'] or 'TIGER defaults'}"
    if "decode" in report:
        d = report["decode"]
        lines += [f"## Decoding (beam {report['settings']['beams']}, {model})", "",
                  "| path | users | users/s | vs plain | peak RSS MB |", "|---|---|---|---|---|"]
        for path, run in d["runs"].items():
            lines.append(f"| {path} | {run['users']} | {run['users_per_second']:.1f} | {d['speedup_vs_plain'][path]:.2f}x "
                         f"| {run['peak_rss_mb']:.0f} |")
        lines += ["", f"Fast path returns exactly the processor path's ranked items for {d['fast_equals_processor']:.1%} "
                  f"of the users both decoded (same top-10 set: {d['fast_same_top10_set']:.1%}).", ""]
    if "train" in report:
        t = report["train"]
        lines += [f"## Training step (batch {report['settings']['batch_size']})", "",
                  "| variant | steps timed | mean width | samples/s | vs plain | peak RSS MB |", "|---|---|---|---|---|---|"]
        for variant, run in t["runs"].items():
            lines.append(f"| {variant} | {run['steps']} | {run['mean_input_width']:.1f} | {run['samples_per_second']:.1f} "
                         f"| {t['speedup_vs_plain'][variant]:.2f}x | {run['peak_rss_mb']:.0f} |")
        lines += ["", f"Epoch mean width with bucketing: {t['runs']['genrec']['epoch_mean_input_width']:.1f} tokens "
                  f"({t['runs']['genrec']['examples_per_epoch']:,} examples per epoch).", ""]
    if "tokenizer" in report:
        lines += ["## Tokenizers", "", "| method | data | items | M | fit s | encode s | usage per level | peak RSS MB | data MB |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in report["tokenizer"]:
            usage = "/".join(f"{u:.2f}" for u in r["usage"])
            lines.append(f"| {r['method']} | {r['source']} | {r['items']:,} | {r['codebook_size']} | {r['fit_seconds']:.1f} "
                         f"| {r['encode_seconds']:.1f} | {usage} | {r['peak_rss_mb']:.0f} | {r['data_mb']:.0f} |")
        lines.append("")
    return "\n".join(lines)
