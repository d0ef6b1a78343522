"""The ``genrec`` command line: one subcommand per stage.

Each stage module exposes ``register(subparsers)``, adding its subcommand(s) with a ``func``
default that takes the parsed arguments. User mistakes raise GenrecError and are printed as one
line with exit code 2, and so is a full disk (every output is written atomically, so what was
there before is still whole); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

from genrec.core.errors import GenrecError

# Modules that register subcommands, in the order they appear in --help.
STAGE_MODULES = (
    "genrec.commands.prepare",
    "genrec.commands.embed",
    "genrec.commands.tokenizer",
    "genrec.commands.recommender",
    "genrec.commands.catalog",
    "genrec.commands.serve",
    "genrec.commands.compare",
    "genrec.commands.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genrec", description=__doc__.splitlines()[0])
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except GenrecError as exc:
        print(f"genrec {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not is_full_disk(exc):
            raise
        where = f" writing {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"genrec {args.command}: error: no space left on the device{where}; free some space and rerun "
              "(outputs already written are complete and kept)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"genrec {args.command}: interrupted (finished work is saved; rerun to continue)", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
