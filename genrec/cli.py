"""The ``genrec`` command line: one subcommand per stage.

Each stage module exposes ``register(subparsers)``, adding its subcommand(s) with a ``func``
default that takes the parsed arguments. Building the parser imports no torch, transformers or
pandas, so ``--help`` and argument errors answer at once; a command imports what it needs when it
runs. Every user mistake (a bad flag value, or a GenrecError raised while running) is one line,
``genrec CMD: error: ...``, with exit code 2, and so is a full disk (every output is written
atomically, so what was there before is still whole); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys

from genrec.core.errors import GenrecError
from genrec.core.sharding import release_process_group

# Modules that register subcommands, in the order they appear in --help.
STAGE_MODULES = (
    "genrec.commands.prepare",
    "genrec.commands.embed",
    "genrec.commands.tokenizer",
    "genrec.commands.recommender",
    "genrec.commands.sasrec",
    "genrec.commands.catalog",
    "genrec.commands.serve",
    "genrec.commands.compare",
    "genrec.commands.demo",
)

DESCRIPTION = ("Generative recommendation: item text -> Semantic IDs -> a T5 that generates the next item's ID. "
               "One subcommand per stage; `genrec COMMAND --help` lists its options. New here? `genrec demo`.")

# What Ctrl-C leaves behind, unless a command sets its own ``interrupted`` default (resumable ones do).
NOT_RESUMABLE = "interrupted; outputs are written whole or not at all, so nothing half-written was left; rerun to start again"


class CommandParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``genrec CMD: error: ...`` and exit code 2 (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="genrec", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in STAGE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # stage not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def is_full_disk(exc: BaseException) -> bool:
    """A write failed for want of space: ENOSPC / EDQUOT, or a library's own error that says so
    (safetensors' "StorageFull", pyarrow's and others' "No space left on device")."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(words in str(exc) for words in ("No space left on device", "StorageFull", "Disk quota exceeded"))


def _quiet_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush cannot fail on a closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (io.UnsupportedOperation)
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a one-line usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        try:
            result = args.func(args)
        finally:
            release_process_group()  # before interpreter exit, where a DDP wrapper's late free can hang
        sys.stdout.flush()
    except GenrecError as exc:
        print(f"genrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`genrec ... | head`): stop quietly
        _quiet_stdout()
        return 141  # as a program killed by SIGPIPE
    except Exception as exc:
        if not is_full_disk(exc):
            raise
        where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"genrec {args.command}: error: no space left on the device{where}; free some space and rerun "
              "(outputs already written are complete and kept)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genrec {args.command}: {getattr(args, 'interrupted', NOT_RESUMABLE)}", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
