"""Parsers for the real file formats of each MovieLens release (ratings + movie metadata).

Each `parse_*` takes an extracted release folder and returns (RawRatings, item metadata or None); the metadata
is indexed by raw item id with columns `title` (str), `genres` ("|"-joined str, "" when none) and `year` (Int64).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ncf.data.movielens import Release
from ncf.data.tables import RawRatings, check_scale, read_delimited
from ncf.errors import DataError

ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
NO_GENRES = "(no genres listed)"
_YEAR_IN_TITLE = r"\((?P<year>\d{4})(?:[-–]\d{0,4})?\)\s*$"
_RATING_NAMES = ["user", "item", "rating", "timestamp"]
_ROLES = {r: r for r in _RATING_NAMES}


def parse_release(folder: str | Path, release: Release) -> tuple[RawRatings, pd.DataFrame | None]:
    """Ratings and item metadata of an extracted release folder, in the release's own format."""
    folder = Path(folder)
    parser = {"ml100k": parse_ml100k, "dat": parse_dat, "csv": parse_csv_release, "recbole": parse_recbole}[release.fmt]
    ratings_path = folder / release.ratings_file
    if not ratings_path.is_file():
        raise DataError(f"{ratings_path} does not exist", f"a {release.name} folder needs {release.ratings_file}")
    raw, meta = parser(folder, release)
    if raw.ratings is not None:
        check_scale(raw.ratings, release.rating_scale, release.rating_step, str(ratings_path),
                    first_line=1 if release.fmt in ("csv", "recbole") else 0)
    return raw, meta


# ----------------------------------------------------------------------------------------------- ml-100k
def parse_ml100k(folder: Path, release: Release) -> tuple[RawRatings, pd.DataFrame | None]:
    """u.data (tab: user item rating timestamp, no header) + u.item (`|`, latin-1, 19 genre flags)."""
    raw = read_delimited(folder / "u.data", sep="\t", header=False, names=_RATING_NAMES, columns=_ROLES)
    item_path = folder / "u.item"
    meta = read_u_item(item_path) if item_path.is_file() else None
    return raw, meta


def read_u_item(path: Path) -> pd.DataFrame:
    """u.item: id|title|release date|video release date|IMDb URL|19 genre flags (latin-1)."""
    df = _read_text_table(path, sep="|", encoding="latin-1")
    if df.shape[1] < 2:
        raise DataError(f"{path} has {df.shape[1]} field(s) per line, expected 24 separated by '|'",
                        "check that this is MovieLens 100K's u.item")
    flags = df.iloc[:, 5:5 + len(ML100K_GENRES)]
    names = np.array(ML100K_GENRES[: flags.shape[1]], dtype=object)
    on = (flags.to_numpy(dtype=object) == "1") if flags.shape[1] else np.zeros((len(df), 0), dtype=bool)
    genres = ["|".join(names[row]) for row in on]
    title = df.iloc[:, 1]
    year = _year_from_title(title)
    if df.shape[1] > 2:  # release date "01-Jan-1995" when the title has no year
        from_date = pd.to_numeric(df.iloc[:, 2].str.extract(r"(\d{4})\s*$")[0], errors="coerce").astype("Int64")
        year = year.fillna(from_date)
    return _meta(df.iloc[:, 0], title, pd.Series(genres, dtype=object), year, path)


# ----------------------------------------------------------------------------------------------- `::` files
def parse_dat(folder: Path, release: Release) -> tuple[RawRatings, pd.DataFrame | None]:
    """ratings.dat `user::item::rating::timestamp` + movies.dat `id::title::genres` (ml-1m latin-1)."""
    raw = read_delimited(folder / "ratings.dat", sep="::", header=False, names=_RATING_NAMES, columns=_ROLES)
    movies = folder / "movies.dat"
    meta = read_movies_dat(movies, release.movies_encoding) if movies.is_file() else None
    return raw, meta


def read_movies_dat(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    """movies.dat: `id::title::genres`; titles may hold ':' (split at the first and last '::')."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):  # a BOM means the file was re-saved as UTF-8
        data, encoding = data[3:], "utf-8"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    lines = pd.Series([ln for ln in text.lstrip("\ufeff").replace("\r\n", "\n").split("\n") if ln.strip()],
                      dtype=object)
    if lines.empty:
        raise DataError(f"{path} is empty", "check the file")
    head = lines.str.split("::", n=1, regex=False)
    ids = head.str[0]
    rest = head.str[1]
    if rest.isna().any():
        row = int(np.flatnonzero(rest.isna().to_numpy())[0])
        raise DataError(f"{path} line {row + 1} has no '::' separator", "expected id::title::genres on each line")
    tail = rest.str.rsplit("::", n=1)
    title = tail.str[0]
    genres = tail.str[1].fillna("")
    return _meta(ids, title, genres, _year_from_title(title), path)


# ----------------------------------------------------------------------------------------------- CSV releases
def parse_csv_release(folder: Path, release: Release) -> tuple[RawRatings, pd.DataFrame | None]:
    """ratings.csv `userId,movieId,rating,timestamp` + movies.csv `movieId,title,genres` (quoted titles)."""
    raw = read_delimited(folder / "ratings.csv", sep=",", header=True)  # userId,movieId,rating,timestamp by name
    movies = folder / "movies.csv"
    meta = read_movies_csv(movies) if movies.is_file() else None
    return raw, meta


def read_movies_csv(path: Path) -> pd.DataFrame:
    """movies.csv with a header; titles with commas are quoted; "(no genres listed)" becomes ""."""
    df = _read_text_table(path, sep=",", encoding="utf-8", header=True, quoting=csv.QUOTE_MINIMAL)
    cols = {c.strip().lower().lstrip("\ufeff"): c for c in df.columns}
    missing = [c for c in ("movieid", "title") if c not in cols]
    if missing:
        shown = ", ".join(repr(str(c)) for c in df.columns[:8])
        raise DataError(f"{path} has no {' or '.join(missing)} column; columns present: {shown}",
                        "expected movieId,title,genres")
    title = df[cols["title"]]
    genres = df[cols["genres"]] if "genres" in cols else pd.Series([""] * len(df), dtype=object)
    return _meta(df[cols["movieid"]], title, genres, _year_from_title(title), path)


# ----------------------------------------------------------------------------------------------- RecBole mirror
def parse_recbole(folder: Path, release: Release) -> tuple[RawRatings, pd.DataFrame | None]:
    """RecBole atomic files: ml-100k.inter (`user_id:token` ... header, tab) + ml-100k.item.

    RecBole strips the year from titles; it is put back as "Title (1995)" so titles read as in u.item.
    """
    raw = read_delimited(folder / "ml-100k.inter", sep="\t", header=True,
                         columns={"user": "user_id:token", "item": "item_id:token", "rating": "rating:float",
                                  "timestamp": "timestamp:float"})
    item_path = folder / "ml-100k.item"
    meta = read_recbole_item(item_path) if item_path.is_file() else None
    return raw, meta


def read_recbole_item(path: Path) -> pd.DataFrame:
    """ml-100k.item: item_id, movie_title, release_year, class (space-separated genres)."""
    df = _read_text_table(path, sep="\t", encoding="utf-8", header=True)
    cols = {str(c).split(":", 1)[0].strip().lower().lstrip("\ufeff"): c for c in df.columns}
    if "item_id" not in cols or "movie_title" not in cols:
        shown = ", ".join(repr(str(c)) for c in df.columns[:8])
        raise DataError(f"{path} has no item_id or movie_title column; columns present: {shown}",
                        "expected RecBole's ml-100k.item")
    title = df[cols["movie_title"]].replace({"unkonwn": "unknown"})  # RecBole's spelling of item 267
    year = pd.to_numeric(df[cols["release_year"]], errors="coerce").astype("Int64") if "release_year" in cols \
        else pd.Series(pd.NA, index=df.index, dtype="Int64")
    year = year.where((year >= 1800) & (year <= 2100))
    title = title.where(year.isna(), title + " (" + year.astype(str) + ")")
    genres = df[cols["class"]].str.split().str.join("|") if "class" in cols else pd.Series([""] * len(df))
    return _meta(df[cols["item_id"]], title, genres, year, path)


# ----------------------------------------------------------------------------------------------- helpers
def _read_text_table(path: Path, sep: str, encoding: str, header: bool = False,
                     quoting: int = csv.QUOTE_NONE) -> pd.DataFrame:
    """A small metadata table as strings (pandas C engine); parse errors become DataErrors."""
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty", "check the file")
    with open(path, "rb") as fh:
        if fh.read(3) == b"\xef\xbb\xbf":  # a BOM means the file was re-saved as UTF-8
            encoding = "utf-8-sig"
    try:
        df = pd.read_csv(path, sep=sep, header=0 if header else None, dtype=str, encoding=encoding,
                         encoding_errors="replace", keep_default_na=False, quoting=quoting, engine="c",
                         skip_blank_lines=True, on_bad_lines="error")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty", "check the file") from None
    except (pd.errors.ParserError, ValueError, csv.Error) as exc:
        msg = " ".join(str(exc).split())[:200]
        raise DataError(f"{path} could not be parsed: {msg}", "check that the file is unmodified") from None
    if df.empty:
        raise DataError(f"{path} has no rows", "check the file")
    return df


def _strings(col: pd.Series) -> pa.Array:
    return pa.array(col.to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def _year_from_title(title: pd.Series) -> pd.Series:
    """The year in a title's trailing "(1995)" (or "(2006-2007)"), else NA (vectorised: Arrow RE2)."""
    found = pc.struct_field(pc.extract_regex(_strings(title), _YEAR_IN_TITLE), [0])
    return pd.Series(pc.cast(found, pa.int64()).to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get),
                     dtype="Int64")


def _meta(ids: pd.Series, title: pd.Series, genres: pd.Series, year: pd.Series, path: Path) -> pd.DataFrame:
    """The metadata frame, indexed by raw item id (int64 when every id is an integer, else str)."""
    id_arr = pc.utf8_trim_whitespace(_strings(ids))
    empty = pc.fill_null(pc.equal(pc.utf8_length(id_arr), 0), True).to_numpy(zero_copy_only=False)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(f"{path} line {row + 1}: empty movie id", "fill or drop that line")
    if pc.all(pc.match_substring_regex(id_arr, r"^-?[0-9]{1,18}$")).as_py():
        index = pc.cast(id_arr, pa.int64()).to_numpy()
    else:
        index = id_arr.to_numpy(zero_copy_only=False).astype(object)
    g = pc.utf8_trim_whitespace(pc.fill_null(_strings(genres), ""))
    g = pc.if_else(pc.equal(g, NO_GENRES), "", g)
    meta = pd.DataFrame({
        "title": pc.utf8_trim_whitespace(pc.fill_null(_strings(title), "")).to_numpy(zero_copy_only=False),
        "genres": g.to_numpy(zero_copy_only=False),
        "year": pd.array(year.to_numpy(), dtype="Int64"),
    }, index=pd.Index(index, name="item"))
    meta["title"] = meta["title"].astype(object)
    meta["genres"] = meta["genres"].astype(object)
    return meta[~meta.index.duplicated(keep="first")]
