"""The four commands a newcomer types, timed, then the test evaluation: does the default path give the hour row?

    python -m bench.four_commands --raw-dir /work/shared/datasets/amazon-beauty --work /tmp/four \
        --out bench/results/four-commands-beauty

Runs, each as its own `genrec` process with every option at its default (only where the data is and
where it goes are given): ``prepare amazon-beauty``, ``train-tokenizer``, ``train-recommender``,
``recommend --user 42``; then ``evaluate --split test`` (fused and each part alone) for the report.
A rerun continues: a step whose output is there and whose time is recorded (WORK/seconds.json) is
not run again. Each command runs in WORK, so ``genrec`` is the installed package, not a source
folder in the current directory. The report (NAME.json + NAME.md) gives each command's wall time
and the test rows.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

from bench.common import markdown_table, run_script, script_parser, write_report

ROWS = (("fused (the default)", "fused"), ("SASRec alone", "sasrec"), ("T5 alone", "model"),
        ("transition prior alone", "prior"), ("popularity", "popularity"))


def commands(raw_dir: str, data: Path) -> list[tuple[str, list[str]]]:
    """(name, argv) of each step: the four commands, then the test evaluation."""
    genrec = [sys.executable, "-m", "genrec.cli"]
    where = ["--dataset", str(data)]
    return [
        ("prepare", [*genrec, "prepare", "amazon-beauty", "--raw-dir", raw_dir, "--out", str(data), "--no-download"]),
        ("train-tokenizer", [*genrec, "train-tokenizer", *where, "--no-progress"]),
        ("train-recommender", [*genrec, "train-recommender", *where, "--no-progress"]),
        ("recommend", [*genrec, "recommend", *where, "--user", "42"]),
        ("evaluate", [*genrec, "evaluate", *where, "--split", "test", "--no-progress",
                      "--output", str(data / "eval_test.json")]),
    ]


def finished(name: str, data: Path) -> bool:
    """Whether step ``name``'s output is complete (recommend always runs)."""
    marks = {"prepare": ["stats.json"], "train-tokenizer": ["tokenizer/semantic_ids.npy"],
             "train-recommender": ["recommender/genrec.json", "sasrec/genrec.json"],
             "evaluate": ["eval_test.json"]}.get(name)
    return marks is not None and all((data / mark).is_file() for mark in marks)


def run_steps(steps: list[tuple[str, list[str]]], work: Path, data: Path) -> dict[str, float]:
    """Each step in turn, its output in WORK/NAME.log; wall seconds per step, kept in WORK/seconds.json."""
    record = work / "seconds.json"
    seconds = json.loads(record.read_text()) if record.is_file() else {}
    for name, argv in steps:
        if name in seconds and finished(name, data):
            print(f"[four_commands] {name}: done ({seconds[name]:.0f} s)", flush=True)
            continue
        print(f"[four_commands] {name}: {shlex.join(argv[3:])}", flush=True)
        started = time.perf_counter()
        with open(work / f"{name}.log", "w") as log:
            code = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        if code != 0:
            tail = (work / f"{name}.log").read_text().strip().splitlines()[-1:]
            raise SystemExit(f"{name} failed (exit {code}): {tail[0] if tail else ''}")
        seconds[name] = round(time.perf_counter() - started, 1)
        record.write_text(json.dumps(seconds))
    return seconds


def metrics_rows(evaluation: dict) -> dict[str, dict]:
    """Test Recall@10 / NDCG@10 per decoding: fused, then each part alone."""
    rows = {"fused": evaluation, **evaluation.get("alone", {}), "prior": evaluation["transition_prior"],
            "popularity": evaluation["popularity"]}
    return {key: {"recall@10": rows[key]["recall@10"], "ndcg@10": rows[key]["ndcg@10"]}
            for _, key in ROWS if key in rows}


def run(args, command: str) -> int:
    from genrec.core.hardware import hardware, hardware_line

    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    data = work / "amazon-beauty"
    steps = commands(args.raw_dir, data)
    seconds = run_steps(steps, work, data)
    evaluation = json.loads((data / "eval_test.json").read_text())
    meta = json.loads((data / "recommender" / "genrec.json").read_text())
    report = {"command": command, "hardware": hardware(), "steps": {name: shlex.join(argv[3:]) for name, argv in steps},
              "seconds": seconds, "test": metrics_rows(evaluation), "fusion": meta.get("fusion"),
              "recipe": meta.get("recipe"), "t5_steps": meta.get("steps"), "model_config": meta.get("model_config"),
              "recommend_output": (work / "recommend.log").read_text()[-2000:]}
    pipeline_minutes = sum(seconds[name] for name in ("prepare", "train-tokenizer", "train-recommender")) / 60
    table = [[label, f"{report['test'][key]['recall@10']:.4f} / {report['test'][key]['ndcg@10']:.4f}"]
             for label, key in ROWS if key in report["test"]]
    lines = [f"# The four commands on Amazon Beauty ({hardware_line(report['hardware'])})", "",
             f"Command: `{command}`", "", "Steps (every option at its default):", "",
             *[f"- `genrec {report['steps'][name]}`: {seconds[name]:.0f} s" for name, _ in steps], "",
             f"prepare + train-tokenizer + train-recommender: {pipeline_minutes:.1f} min; T5 recipe "
             f"`{report['recipe']}`, {report['t5_steps']:,} T5 steps; fusion chosen on validation: "
             f"`{json.dumps(report['fusion'].get('weights') if report['fusion'] else None)}`.", "",
             "Test, all users, full catalogue, history left out (Recall@10 / NDCG@10):", "",
             *markdown_table(["decoding", "Recall@10 / NDCG@10"], table), ""]
    write_report(args.out, args.name, report, "\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = script_parser("bench.four_commands", __doc__)
    parser.add_argument("--raw-dir", required=True, help="the raw Amazon Beauty files (offline)")
    parser.add_argument("--work", required=True, help="scratch folder: the dataset and each step's log")
    parser.add_argument("--out", default="bench/results/four-commands-beauty")
    parser.add_argument("--name", default="four-commands-beauty")
    return run_script("bench.four_commands", parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
