"""Paths, names and checks every pipeline stage shares."""

from __future__ import annotations

import os
from pathlib import Path

from genrec.core.errors import GenrecError


def as_path(value: str | os.PathLike | None) -> Path | None:
    return None if value is None else Path(value)


def as_str(value) -> str | None:
    return None if value is None else str(value)


FUSION_GRIDS = {"prior": (0.0, 1.0, 2.0, 4.0, 8.0), "sasrec": (0.0, 0.5, 1.0, 2.0, 4.0)}


EXCLUDE_SEEN_CHOICES = (False, True)  # tried on validation: leave the user's own history items out or not


SASREC_DIR = "sasrec"


def check_grids(grids: dict[str, tuple[float, ...]]) -> None:
    for name, grid in grids.items():
        if name not in FUSION_GRIDS:
            raise GenrecError(f"unknown scorer {name!r} in fusion weights; choose from {', '.join(FUSION_GRIDS)}")
        if not grid or any(not weight >= 0 for weight in grid):
            raise GenrecError(f"fusion weights of {name} must be >= 0 (0 = not fused), got {list(grid)}")


def relative_path(path: Path, base: Path) -> str:
    """``path`` relative to ``base`` (so a copied folder pair keeps working), absolute if on another drive."""
    try:
        return os.path.relpath(Path(path).resolve(), Path(base).resolve())
    except ValueError:
        return str(Path(path).resolve())


PRIOR_FIT = {"train": "training parts (all but each user's last two items)", "all": "every interaction"}


def check_output_file(out: Path, suffix: str) -> None:
    """An output file must go into a folder that exists (none is created silently) and end in ``suffix``."""
    if out.is_dir():
        raise GenrecError(f"output {out} is a directory; give a file path such as {out / ('out' + suffix)}")
    if out.suffix != suffix:
        raise GenrecError(f"output {out}: expected a file name ending in {suffix}")
    blocking = next((parent for parent in out.parents if parent.exists() and not parent.is_dir()), None)
    if blocking is not None:
        raise GenrecError(f"output {out}: {blocking} is a file, not a directory")
    if not out.parent.is_dir():
        raise GenrecError(f"output {out}: folder {out.parent} does not exist; create it first")
