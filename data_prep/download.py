"""Download raw files from the official hosts, or say exactly what to put where when offline."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from genrec.errors import GenrecError
from genrec.io import atomic_write_bytes

AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
ML_1M = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
LASTFM = "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"


def fetch(url: str, dest: Path, timeout: float = 30.0) -> Path:
    """Download ``url`` to ``dest`` atomically; a clear GenrecError if the host cannot be reached."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise GenrecError(
            f"cannot download {url} ({getattr(exc, 'reason', exc)}). Offline? Download it elsewhere and put it at "
            f"{dest}, or pass --raw-dir pointing at a folder that holds it."
        ) from None
    atomic_write_bytes(dest, data)
    return dest


def fetch_zip_members(url: str, raw_dir: Path, members: list[str]) -> None:
    """Download a zip archive and extract the named members (any folder inside) into ``raw_dir``."""
    archive = fetch(url, raw_dir / Path(url).name)
    with zipfile.ZipFile(archive) as bundle:
        names = {Path(n).name: n for n in bundle.namelist()}
        for member in members:
            if member not in names:
                raise GenrecError(f"{archive}: has no {member}")
            with bundle.open(names[member]) as src, open(raw_dir / member, "wb") as dst:
                shutil.copyfileobj(src, dst)
