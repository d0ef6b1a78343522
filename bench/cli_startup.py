"""CLI start-up: how long `genrec --help` and a rejected argument take, against `python -c pass`.

    python -m bench.cli_startup [--repeats 10] [--out bench/results/cli-startup] [--name cli-startup]

Each case is a fresh process, run --repeats times after one untimed warm-up (the file cache); the
report has the median and the fastest wall time, and the median's ratio to the baseline measured
in the same run. "old parser imports" times what building the parser used to import (the tokenizer
registry and the item-causal encoder, which pull in torch and transformers): the start-up cost the
lazy imports removed. Target: `genrec --help` and argument errors under 1 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.common import markdown_table, run_script, script_parser, write_report

TARGET_SECONDS = 1.0


def genrec_command() -> list[str]:
    """The installed `genrec` script next to this interpreter, else `python -m genrec.cli`."""
    script = Path(sys.executable).with_name("genrec")
    found = script if script.is_file() else shutil.which("genrec")
    return [str(found)] if found else [sys.executable, "-m", "genrec.cli"]


def cases() -> dict[str, tuple[list[str], int]]:
    """Name -> (command, expected exit code)."""
    genrec = genrec_command()
    return {
        "python -c pass (baseline)": ([sys.executable, "-c", "pass"], 0),
        "genrec --help": ([*genrec, "--help"], 0),
        "genrec recommend --top-k 100000 (error)": ([*genrec, "recommend", "--top-k", "100000"], 2),
        "genrec train-recommender --help": ([*genrec, "train-recommender", "--help"], 0),
        "old parser imports (torch, transformers)": (
            [sys.executable, "-c", "import genrec.tokenizer.registry, genrec.recommender.item_causal"], 0),
    }


def time_case(command: list[str], expected: int, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` runs of ``command`` (after one untimed warm-up run)."""
    times = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != expected:
            raise RuntimeError(f"{command}: exit {done.returncode}, expected {expected}: {done.stderr[-500:]}")
        if attempt:
            times.append(elapsed)
    return times


def _run(args, command: str) -> int:
    from genrec.core.hardware import hardware, hardware_line

    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")
    load = [round(x, 2) for x in os.getloadavg()]
    results = {}
    for name, (case, expected) in cases().items():
        times = time_case(case, expected, args.repeats)
        results[name] = {"command": " ".join(case), "median_s": round(statistics.median(times), 4),
                         "min_s": round(min(times), 4), "runs": len(times)}
        print(f"{name}: median {results[name]['median_s']:.3f} s", flush=True)
    baseline = results["python -c pass (baseline)"]["median_s"]
    for row in results.values():
        row["ratio_to_baseline"] = round(row["median_s"] / baseline, 2)
    info = hardware()
    report = {"command": command, "hardware": info, "load_average_at_start": load, "repeats": args.repeats,
              "target_s": TARGET_SECONDS, "cases": results}
    rows = [[name, f"{row['median_s']:.3f}", f"{row['min_s']:.3f}", f"{row['ratio_to_baseline']:.1f}x",
             "yes" if row["median_s"] < TARGET_SECONDS else "no"] for name, row in results.items()]
    markdown = "\n".join([
        f"# CLI start-up on {hardware_line(info)}", "",
        f"Command: `{command}`", "",
        f"Each case a fresh process, {args.repeats} timed runs after one warm-up; ratio = median / the median of "
        f"`python -c pass` in the same run. Load average at the start (1, 5, 15 min): {load[0]} / {load[1]} / "
        f"{load[2]} (other jobs shared the cores).", "",
        *markdown_table(["case", "median s", "fastest s", "ratio to baseline", f"under {TARGET_SECONDS:g} s"], rows),
        "",
    ])
    write_report(args.out, args.name, report, markdown)
    return 0


def build_parser():
    parser = script_parser("bench.cli_startup", __doc__)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs per case (default 10)")
    parser.add_argument("--out", default="bench/results/cli-startup", help="report folder")
    parser.add_argument("--name", default="cli-startup", help="report file name (NAME.json, NAME.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_script("bench.cli_startup", build_parser(), _run, argv)


if __name__ == "__main__":
    sys.exit(main())
