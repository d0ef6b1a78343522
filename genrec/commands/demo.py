"""``genrec demo``: the whole pipeline on the built-in demo shop, offline, in a few minutes on a CPU.

prepare demo -> embed -> train-tokenizer (R3-VAE) -> train-recommender (a small T5) -> evaluate
(test split, with the popularity baseline) -> recommend for two users. Each step is the same
command a user would run; rerunning the demo reuses finished steps (delete data/demo to start over).
"""

from __future__ import annotations

import time
from pathlib import Path

from genrec.core.errors import GenrecError
from genrec.core.layout import default_dataset_dir

# Sized for 2 CPU cores: a few minutes end to end. The Beauty recipes are in the README.
DEMO_TOKENIZER = ["--method", "r3vae", "--epochs", "30"]
DEMO_RECOMMENDER = ["--d-model", "64", "--d-ff", "256", "--num-heads", "4", "--encoder-layers", "2",
                    "--decoder-layers", "2", "--dropout", "0.1", "--batch-size", "128", "--lr", "4e-3",
                    "--warmup-steps", "30", "--max-steps", "400", "--eval-every", "100", "--eval-users", "400",
                    "--patience", "3"]


def _step(title: str, argv: list[str]) -> None:
    from genrec.cli import main

    print(f"\n=== {title}: genrec {' '.join(argv)}", flush=True)
    started = time.perf_counter()
    code = main(argv)
    if code:
        raise GenrecError(f"demo step `genrec {' '.join(argv)}` failed (exit code {code})")
    print(f"=== {title} done in {time.perf_counter() - started:.0f} s", flush=True)


def _run(args) -> int:
    data = Path(args.out) if args.out else default_dataset_dir("demo")
    started = time.perf_counter()
    progress = [] if args.progress else ["--no-progress"]
    if not (data / "stats.json").is_file():
        _step("1/6 prepare", ["prepare", "demo", "--out", str(data)])
    _step("2/6 embed", ["embed", "--dataset", str(data)])
    if not (data / "tokenizer" / "semantic_ids.npy").is_file():
        _step("3/6 train-tokenizer", ["train-tokenizer", "--dataset", str(data), *DEMO_TOKENIZER, *progress])
    _step("4/6 train-recommender", ["train-recommender", "--dataset", str(data), *DEMO_RECOMMENDER, *progress])
    _step("5/6 evaluate", ["evaluate", "--dataset", str(data), "--split", "test"])
    _step("6/6 recommend", ["recommend", "--dataset", str(data), "--user", "1", "--top-k", "5"])
    _step("6/6 recommend (new user)", ["recommend", "--dataset", str(data), "--history", "D00001", "D00002", "--top-k", "5"])
    print(f"\ndemo finished in {time.perf_counter() - started:.0f} s; artifacts in {data}/")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("demo", help="run the whole pipeline on the built-in demo dataset", description=__doc__)
    parser.add_argument("--out", help="dataset directory (default data/demo)")
    parser.add_argument("--progress", action="store_true", help="show per-step progress bars")
    parser.set_defaults(func=_run)
