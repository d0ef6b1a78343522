"""Download raw files from the official hosts, or say exactly what to put where when offline.

Official sources:
  * Amazon review data 2014 (McAuley et al.), 5-core reviews and metadata per category:
    https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/{reviews_<Cat>_5,meta_<Cat>}.json.gz
  * MovieLens 1M (GroupLens): https://files.grouplens.org/datasets/movielens/ml-1m.zip
  * HetRec 2011 Last.fm (GroupLens): https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm.auto import tqdm

from genrec.core.errors import GenrecError

AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles/"
ML_1M = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
LASTFM = "https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"


def offline_hint(raw_dir: Path, needed: list[str], source: str) -> str:
    return (f"put {', '.join(needed)} (from {source}) in {raw_dir}, or pass --raw-dir pointing at a folder "
            "that holds them")


def fetch(url: str, dest: Path, hint: str, timeout: float = 30.0) -> Path:
    """Stream ``url`` to ``dest`` (temp file, then rename); a clear GenrecError if the host cannot be reached."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {dest.name}", disable=None) as bar:
                for block in iter(lambda: response.read(1 << 20), b""):
                    out.write(block)
                    bar.update(len(block))
        os.replace(tmp, dest)
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise GenrecError(f"cannot download {url} ({getattr(exc, 'reason', exc)}); offline? {hint}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return dest


def fetch_zip_members(url: str, raw_dir: Path, members: list[str], hint: str) -> None:
    """Download a zip archive and extract the named members (any folder inside) into ``raw_dir``."""
    archive = fetch(url, raw_dir / Path(url).name, hint)
    try:
        with zipfile.ZipFile(archive) as bundle:
            names = {Path(n).name: n for n in bundle.namelist()}
            for member in members:
                if member not in names:
                    raise GenrecError(f"{archive}: has no {member}; {hint}")
                partial = raw_dir / f".{member}.part"  # renamed only when complete
                with bundle.open(names[member]) as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.replace(partial, raw_dir / member)
    except zipfile.BadZipFile:
        raise GenrecError(f"{archive}: not a valid zip archive (interrupted download?); delete it and retry") from None
