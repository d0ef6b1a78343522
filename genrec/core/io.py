"""Small file helpers shared by every stage: atomic writes, checksums, JSON, fault points.

Fault points (``fault_point``) are the places in these helpers where the fault-injection tests
(tests/test_faults.py) kill a command or make a write fail with a full disk: between the write of a
temporary file or folder and its rename into place, and between the two renames of a folder swap
(where the system cannot exchange two paths atomically).
Outside those tests (no GENREC_FAULT_AT / GENREC_FAULT_LOG in the environment) a fault point costs
one environment lookup.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any, Iterator


FAULT_AT_ENV = "GENREC_FAULT_AT"  # "NAME:COUNT" or "NAME:COUNT:enospc"
FAULT_LOG_ENV = "GENREC_FAULT_LOG"  # a file each fault point passed appends its name to
_fault_passes: dict[str, int] = {}


def fault_point(name: str, path: str | os.PathLike | None = None) -> None:
    """Where a test may inject a fault: with GENREC_FAULT_AT=NAME:COUNT the COUNT-th pass through
    fault point NAME kills this process with SIGKILL (no cleanup runs, as with a power cut or the
    OOM killer); with NAME:COUNT:enospc it raises the OSError of a full disk (for ``path``) instead.
    GENREC_FAULT_LOG=FILE appends NAME to FILE on every pass, so a test can list the points a
    command goes through and choose where to kill it."""
    spec, log = os.environ.get(FAULT_AT_ENV), os.environ.get(FAULT_LOG_ENV)
    if not spec and not log:
        return
    count = _fault_passes[name] = _fault_passes.get(name, 0) + 1
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")
    spec, full_disk = (spec[:-len(":enospc")], True) if (spec or "").endswith(":enospc") else (spec or "", False)
    target, _, at = spec.rpartition(":")  # NAME may hold a colon (a file name), COUNT may not
    if target != name or not at.isdigit() or int(at) != count:
        return
    if full_disk:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path) if path is not None else None)
    os.kill(os.getpid(), signal.SIGKILL)


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _as_umask_allows(path: str | os.PathLike, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600 files and 0700 folders; outputs get the user's usual modes."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees either the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        _as_umask_allows(tmp, directory=False)
        fault_point(f"write {path.name}", path)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_npy(path: str | os.PathLike, array: Any) -> None:
    """``np.save`` of ``array`` to ``path``, atomically."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, array)
    atomic_write_bytes(path, buffer.getvalue())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    # numpy scalars/arrays and Paths show up in metrics and configs.
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_json(path: str | os.PathLike) -> Any:
    from genrec.core.errors import GenrecError

    path = Path(path)
    if not path.is_file():
        raise GenrecError(f"{path}: file not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GenrecError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


@contextlib.contextmanager
def atomic_directory(final: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling directory; move it to ``final`` only if the block succeeds.

    An interrupted or failed stage therefore never leaves a half-written output directory.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".partial"))
    _as_umask_allows(tmp, directory=True)
    try:
        yield tmp
        if final.exists() and not overwrite:
            raise FileExistsError(final)
        swap_directory(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _previous(final: Path) -> Path:
    return final.with_name(f".{final.name}.old")


def _exchange(a: Path, b: Path) -> bool:
    """Swap paths ``a`` and ``b`` in one atomic step (Linux renameat2 with RENAME_EXCHANGE); False
    where the C library or the file system has no such call."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def swap_directory(new: str | os.PathLike, final: str | os.PathLike) -> None:
    """Put the complete folder ``new`` in place of ``final`` (if any) and delete the old one.

    Where the system can exchange two paths atomically a reader sees the old folder or the new one,
    never neither. Elsewhere two renames: ``final`` to ``.NAME.old``, then ``new`` to ``final``; a
    crash between them leaves only ``.NAME.old``, which ``restore_swapped_directory`` puts back."""
    new, final = Path(new), Path(final)
    fault_point(f"dir {final.name}", final)
    old = _previous(final)
    if old.exists():
        shutil.rmtree(old)
    if final.exists() and _exchange(new, final):
        shutil.rmtree(new, ignore_errors=True)  # now the old folder
        return
    if final.exists():
        os.replace(final, old)
        fault_point(f"swap {final.name}", final)
    os.replace(new, final)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold an exclusive ``fcntl.flock`` on ``path`` (created if missing) for the block: one holder
    at a time, released by the system when the holder dies, so a killed run never leaves it taken.
    ``waiting``: printed (stderr) once when another process holds it and this one has to wait."""
    import fcntl
    import sys

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(waiting, file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def link_tree(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """A copy of folder ``source`` at ``target`` whose files are hard links (no data copied; plain
    copies where the file system has no hard links), hidden (temporary) entries left out. Every
    genrec write replaces a file by rename, so changing the copy never changes ``source``."""
    def link(src, dst):
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(source, target, copy_function=link, ignore=shutil.ignore_patterns(".*"))


def restore_swapped_directory(final: str | os.PathLike) -> None:
    """Undo a ``swap_directory`` that a crash cut between its renames (``final`` missing, its
    previous version still at ``.NAME.old``), so a reader finds the last complete folder."""
    final = Path(final)
    if not final.exists() and _previous(final).is_dir():
        os.replace(_previous(final), final)
