"""What every benchmark shares: a case in a fresh process, memory figures, markdown tables, and
writing a report (NAME.json + NAME.md) that says how it was made and on what hardware."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path


def script_parser(module: str, doc: str) -> argparse.ArgumentParser:
    """The parser of ``python -m MODULE``: the docstring's first line, the rest of it as the epilog."""
    first, _, rest = doc.partition("\n")
    return argparse.ArgumentParser(prog=f"python -m {module}", description=first, epilog=rest,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def command_line(module: str, argv: list[str] | None = None) -> str:
    """How a ``python -m MODULE`` run was started, for its report."""
    return f"python -m {module} " + shlex.join(sys.argv[1:] if argv is None else argv)


def run_script(module: str, parser: argparse.ArgumentParser, run, argv: list[str] | None = None) -> int:
    """``run(args, command)`` on the parsed ``argv`` (default sys.argv[1:]); ``command`` is how the
    run was started, for the report. A GenrecError is one error line and exit code 2; an interrupt
    exits with 130 (what finished is kept: rerun to continue)."""
    from genrec.core.errors import GenrecError

    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv)
    try:
        return run(args, command_line(module, argv))
    except (GenrecError, KeyboardInterrupt) as exc:  # the exit codes of genrec.cli
        stopped = isinstance(exc, KeyboardInterrupt)
        print(f"python -m {module}: " + ("interrupted (finished work is kept; rerun to continue)" if stopped
                                         else f"error: {exc}"), file=sys.stderr)
        return 130 if stopped else 2


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS:"))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _in_child(function, payload: dict, keep_freed_memory: bool) -> dict:
    """Runs in the fresh process: optional allocator tuning, the case, then its memory figures."""
    from genrec.core.allocator import keep_freed_memory as tune

    tuned = tune() if keep_freed_memory else False
    result = function(payload)
    result.update({"peak_rss_mb": round(peak_rss_mb(), 1), "keep_freed_memory": tuned})
    return result


def run_isolated(function, payload: dict, keep_freed_memory: bool = False) -> dict:
    """``function(payload)`` (a module-level function returning a dict) in a fresh spawned process:
    its own peak RSS, allocator setting (process-wide and permanent, hence the process) and caches."""
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


def markdown_table(columns: list[str], rows: list[list]) -> list[str]:
    """Lines of a markdown table; each cell is written with ``str``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def report_page(title: str, command: str, hardware: str, setup: str, columns: list[str], rows: list[list]) -> str:
    """A study's markdown page: title, the command that made it, the hardware, what was measured, the table."""
    return "\n".join([f"# {title}", "", f"Command: `{command}`", "", f"Hardware: {hardware}", "", setup, "",
                      *markdown_table(columns, rows), ""])


def write_report(out: str | Path, name: str, report: dict, markdown: str) -> None:
    """OUT/NAME.json and OUT/NAME.md (written atomically), and the markdown on stdout."""
    from genrec.core.io import atomic_write_json, atomic_write_text

    out = Path(out)
    atomic_write_json(out / f"{name}.json", report)
    atomic_write_text(out / f"{name}.md", markdown)
    print(markdown)
    print(f"wrote {out / name}.json and {out / name}.md")


def load_inputs(settings: dict):
    """(ProcessedDataset, SemanticIds) named by a case's settings (``dataset``, ``tokenizer``)."""
    from genrec.data_prep.dataset import load_processed_dataset
    from genrec.tokenizer.artifact import load_semantic_ids

    return load_processed_dataset(settings["dataset"]), load_semantic_ids(settings["tokenizer"])


def stop_process(process, timeout: float = 15.0) -> None:
    """Terminate a server or worker subprocess, killing it if it does not exit within ``timeout``."""
    import subprocess

    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
