"""`load_data`: one entry point for every kind of input (release name, zip, release folder, plain table)."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ncf.data.interactions import Interactions
from ncf.data.movielens import RELEASES, Release, detect_release, get_release, is_release_name
from ncf.data.tables import RawRatings, parse_columns, read_delimited, read_parquet
from ncf.errors import DataError

PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}


def load_data(spec: str | os.PathLike, columns: str | dict | None = None, sep: str | None = None) -> Interactions:
    """Load interactions from a release name (`ml-100k`, fetched if needed), a GroupLens zip, an extracted
    release folder, or a CSV/TSV/Parquet table.

    columns: "user=COL,item=COL[,rating=COL][,timestamp=COL]" for plain tables (default: common names such as
    userId/movieId/rating/timestamp; without a header, positions 0-3). sep: the separator (default: sniffed).
    Rows keep the file's order; duplicate (user, item) pairs keep the latest.
    """
    spec_str = os.fspath(spec)
    path = Path(spec_str).expanduser()
    if not path.exists():
        if is_release_name(spec_str) and not any(c in spec_str for c in "/\\"):
            return load_release(spec_str)
        if not any(c in spec_str for c in "/\\.") and spec_str.strip():
            get_release(spec_str)  # raises: unknown dataset name, with the closest suggested
        raise DataError(f"{spec_str} does not exist",
                        f"pass a dataset name ({', '.join(RELEASES)}), a release zip or folder, or a CSV/Parquet file")
    if path.is_dir():
        return load_folder(path, columns=columns, sep=sep)
    if path.suffix.lower() == ".zip":
        return load_zip(path)
    cols = parse_columns(columns)
    label = str(path)
    if path.suffix.lower() in PARQUET_SUFFIXES:
        raw = read_parquet(path, cols, label=label)
    else:
        if path.stat().st_size > 0 and _is_zip_bytes(path):
            return load_zip(path)
        default_sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else None
        raw = read_delimited(path, sep=sep or default_sep, columns=cols, label=label)
    return build(raw, None, name=path.stem, rating_scale=None)


def load_release(name: str) -> Interactions:
    """A registered release from the cache (fetched first when missing)."""
    from ncf.data.fetch import fetch

    release = get_release(name)
    folder = fetch(release.name)
    return load_folder(folder, name=release.name)


def load_folder(folder: Path, columns: str | dict | None = None, sep: str | None = None,
                name: str | None = None) -> Interactions:
    """An extracted release folder (format detected by its files)."""
    from ncf.data.parsers import parse_release

    folder = Path(folder)
    release = detect_release(folder)
    if release is None:
        inner = [p for p in folder.iterdir() if p.is_dir() and detect_release(p) is not None]
        if len(inner) == 1:  # e.g. the folder that holds ./ml-latest-small/
            return load_folder(inner[0], name=name)
        raise DataError(f"{folder} holds no MovieLens files (u.data, ratings.dat or ratings.csv)",
                        "point at the release folder itself, or at a ratings table with --columns")
    raw, meta = parse_release(folder, release)
    label = name or (release.name if folder.name.lower().startswith(release.name) else folder.name)
    if release.fmt == "recbole":
        label = name or "ml-100k"
    return build(raw, meta, name=label, rating_scale=release.rating_scale)


def load_zip(path: Path) -> Interactions:
    """A GroupLens release zip: extracted once into the cache (keyed by its content), then loaded."""
    from ncf.data.fetch import extract_release, ncf_home

    if not zipfile.is_zipfile(path):
        raise DataError(f"{path} is not a valid zip", "download it again; the file is damaged or incomplete")
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    target = ncf_home() / "extracted" / f"{path.stem}-{key}"
    if not (target / ".ncf-complete").is_file():
        from filelock import FileLock

        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target.parent / f".{target.name}.lock")):
            if not (target / ".ncf-complete").is_file():
                extract_release(path, target, None, {"source": "zip", "path": str(path.resolve())})
    release = detect_release(target)
    if release is None:
        raise DataError(f"{path} holds no MovieLens files (u.data, ratings.dat or ratings.csv)",
                        "is this a GroupLens MovieLens zip?")
    return load_folder(target, name=_zip_name(path.stem, release))


def _zip_name(stem: str, release: Release) -> str:
    return stem if stem in RELEASES else release.name if stem.startswith(release.name) else stem


def _is_zip_bytes(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"PK\x03\x04"


def build(raw: RawRatings, meta: pd.DataFrame | None, name: str,
          rating_scale: tuple[float, float] | None) -> Interactions:
    """Interactions from validated raw columns (+ metadata indexed by raw item id)."""
    if meta is not None:
        item_int = raw.items.dtype.kind in "iu"
        meta_int = meta.index.dtype.kind in "iu"
        if item_int != meta_int:  # string ids in one file, integer ids in the other: compare as text
            meta = meta.copy()
            meta.index = meta.index.astype(str)
            if item_int:
                raw = RawRatings(raw.users, raw.items.astype(str).astype(object), raw.ratings, raw.timestamps,
                                 raw.source)
    if raw.ratings is not None and rating_scale is None:
        rating_scale = (float(np.min(raw.ratings)), float(np.max(raw.ratings)))
    return Interactions.from_raw(raw.users, raw.items, raw.ratings, raw.timestamps, item_meta_raw=meta,
                                 name=name, rating_scale=rating_scale)
