"""Tokenizer scale benchmark (issue 5): training + SID assignment time and peak memory on synthetic
embeddings, for residual K-Means and R3-VAE, from thousands to millions of items.

Memory stays bounded by the batch size: K-Means runs mini-batch (``kmeans_batch_size``), R3-VAE
trains on mini-batches, and encoding runs in batches. Each case runs in its own subprocess so its
peak RSS (resource.getrusage) is its own; we report the peak, the RSS right after the synthetic data
was created (the data itself: n x d float32), and their difference (the working memory).

Default run (a few minutes on 2 cores):
    python bench/tokenizer_scale.py
The 1M-item cases (document the hardware when you commit their numbers):
    python bench/tokenizer_scale.py --items 1000000 --codebook-sizes 256,8192 --steps 20
Writes JSON (default results/tokenizers/scale.json) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def synthetic_embeddings(n: int, d: int, seed: int = 0, clusters: int = 2000, chunk: int = 100_000):
    """Unit-norm mixture of Gaussians around random centres (like sentence embeddings), made in chunks."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        block = centres[rng.integers(0, clusters, stop - start)] + 0.6 * rng.normal(size=(stop - start, d))
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def run_case(case: dict) -> dict:
    import torch

    from tokenizer.base import build_tokenizer

    torch.set_num_threads(case["threads"])
    x = synthetic_embeddings(case["items"], case["dim"])
    data_rss = rss_mb()
    method, m, batch = case["method"], case["codebook_size"], case["batch_size"]
    # k-means++ makes M sequential passes over its sample: fine for M = 256, minutes for M = 8192.
    seeding = "kmeans++" if m <= case["kmeanspp_max_codebook"] else "random"
    if method == "rkmeans":
        options = {"codebook_size": m, "kmeans_batch_size": batch, "kmeans_iters": case["kmeans_epochs"],
                   "init": seeding}
    else:
        options = {"codebook_size": m, "kmeans_batch_size": batch, "kmeans_iters": case["kmeans_epochs"],
                   "batch_size": batch, "epochs": 1, "max_steps": case["steps"], "kmeans_seeding": seeding}
    tok = build_tokenizer(method, options)
    started = time.perf_counter()
    history = tok.fit(x, progress=False)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    codes = tok.encode(x)
    encode_seconds = time.perf_counter() - started
    import numpy as np

    usage = [float(len(np.unique(codes[:, level])) / m) for level in range(codes.shape[1])]
    peak = peak_rss_mb()
    return {**case, "seeding": seeding, "fit_seconds": round(fit_seconds, 2),
            "train_seconds": round(history.seconds, 2) if method == "r3vae" else None, "encode_seconds": round(encode_seconds, 2),
            "encode_items_per_s": round(case["items"] / encode_seconds), "usage": usage,
            "data_mb": round(case["items"] * case["dim"] * 4 / 2 ** 20, 1), "rss_after_data_mb": round(data_rss, 1),
            "peak_rss_mb": round(peak, 1), "working_mb": round(peak - data_rss, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", default="12000,100000", help="comma-separated catalogue sizes")
    parser.add_argument("--codebook-sizes", default="256,1024")
    parser.add_argument("--methods", default="rkmeans,r3vae")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=4096, help="K-Means and R3-VAE mini-batch size")
    parser.add_argument("--kmeans-epochs", type=int, default=1, help="mini-batch K-Means passes over the data")
    parser.add_argument("--steps", type=int, default=20, help="R3-VAE optimizer steps timed")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--kmeanspp-max-codebook", type=int, default=1024,
                        help="larger codebooks are seeded with random points instead of k-means++")
    parser.add_argument("--out", default=str(ROOT / "results" / "tokenizers" / "scale.json"))
    parser.add_argument("--case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(json.loads(args.case))))
        return 0
    rows = []
    for n in [int(v) for v in args.items.split(",")]:
        for m in [int(v) for v in args.codebook_sizes.split(",")]:
            for method in args.methods.split(","):
                case = {"method": method, "items": n, "codebook_size": m, "dim": args.dim, "threads": args.threads,
                        "batch_size": args.batch_size, "kmeans_epochs": args.kmeans_epochs, "steps": args.steps,
                        "kmeanspp_max_codebook": args.kmeanspp_max_codebook}
                result = subprocess.run([sys.executable, __file__, "--case", json.dumps(case)], capture_output=True,
                                        text=True, cwd=ROOT)
                (print(result.stderr[-3000:], file=sys.stderr) if result.returncode else None)
                if result.returncode:
                    rows.append({**case, "error": result.stderr.strip().splitlines()[-1:]})
                    continue
                rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
                r = rows[-1]
                print(f"{method:8s} n={n:>9,} M={m:>5}: fit {r['fit_seconds']:7.1f}s  encode {r['encode_seconds']:6.1f}s "
                      f"peak {r['peak_rss_mb']:8.0f} MB (data {r['data_mb']:.0f} MB)", flush=True)
    report = {"command": "python bench/tokenizer_scale.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "hardware": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or 'cpu'}",
              "note": "r3vae fit = K-Means init (mini-batch, kmeans_epochs passes) + `steps` optimizer steps of "
                      "batch_size items; rkmeans fit = mini-batch residual K-Means. encode = SIDs of all items.",
              "rows": rows}
    from genrec.io import atomic_write_json

    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
