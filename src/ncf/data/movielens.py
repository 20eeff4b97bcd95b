"""Registry of the GroupLens MovieLens releases: where each lives, how to verify it, what is inside."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ncf.errors import DataError, closest

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class Release:
    """One MovieLens release.

    `fmt` names the parser: "ml100k" (u.data + u.item), "dat" (ratings.dat + movies.dat with `::`),
    "csv" (ratings.csv + movies.csv with a header) or "recbole" (the ml-100k mirror's atomic files).
    `md5` is pinned where the published value is known; otherwise the `<url>.md5` file is read at fetch time.
    """

    name: str
    fmt: str
    ratings_file: str
    movies_file: str
    rating_scale: tuple[float, float]
    rating_step: float
    md5: str | None = None
    n_ratings: int | None = None  # published size, for the user's information
    movies_encoding: str = "utf-8"
    description: str = ""

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"

    def url(self, base: str | None = None) -> str:
        """The download URL (base overridable with $NCF_GROUPLENS_URL, e.g. for a local mirror)."""
        base = (base or os.environ.get("NCF_GROUPLENS_URL") or GROUPLENS_URL).rstrip("/")
        return f"{base}/{self.zip_name}"

    def md5_url(self, base: str | None = None) -> str:
        """Where GroupLens publishes the md5 of the zip."""
        return self.url(base) + ".md5"


RELEASES: dict[str, Release] = {
    r.name: r
    for r in (
        Release("ml-latest-small", "csv", "ratings.csv", "movies.csv", (0.5, 5.0), 0.5,
                description="100k ratings, 600 users, 9.7k movies; updated over time (md5 read at fetch)"),
        Release("ml-latest", "csv", "ratings.csv", "movies.csv", (0.5, 5.0), 0.5,
                description="the full latest release, 30M+ ratings; updated over time (md5 read at fetch)"),
        Release("ml-100k", "ml100k", "u.data", "u.item", (1.0, 5.0), 1.0,
                md5="0e33842e24a9c977be4e0107933c0723", n_ratings=100_000, movies_encoding="latin-1",
                description="100,000 ratings, 943 users, 1,682 movies (1998)"),
        Release("ml-1m", "dat", "ratings.dat", "movies.dat", (1.0, 5.0), 1.0,
                md5="c4d9eecfca2ab87c1945afe126590906", n_ratings=1_000_209, movies_encoding="latin-1",
                description="1M ratings, 6,040 users, 3,706 movies (2003)"),
        Release("ml-10m", "dat", "ratings.dat", "movies.dat", (0.5, 5.0), 0.5,
                md5="ce571fd55effeba0271552578f2648bd", n_ratings=10_000_054,
                description="10M ratings with half stars, 69,878 users, 10,677 movies (2009)"),
        Release("ml-20m", "csv", "ratings.csv", "movies.csv", (0.5, 5.0), 0.5,
                md5="cd245b17a1ae2cc31bb14903e1204af3", n_ratings=20_000_263,
                description="20M ratings, 138,493 users, 27,278 movies (2015)"),
        Release("ml-25m", "csv", "ratings.csv", "movies.csv", (0.5, 5.0), 0.5,
                md5="6b51fb2759a8657d3bfcbfc42b592ada", n_ratings=25_000_095,
                description="25M ratings, 162,541 users, 62,423 movies (2019)"),
        Release("ml-32m", "csv", "ratings.csv", "movies.csv", (0.5, 5.0), 0.5, n_ratings=32_000_204,
                description="32M ratings, 200,948 users, 87,585 movies (2024; md5 read at fetch)"),
    )
}

# The ml-100k mirror (RecBole's atomic files, shipped inside its wheel on the Python package index).
MIRROR_PACKAGE = "recbole==1.2.1"
MIRROR_WHEEL = "recbole-1.2.1-py3-none-any.whl"
MIRROR_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MIRROR_MEMBERS = {
    "ml-100k.inter": "recbole/dataset_example/ml-100k/ml-100k.inter",
    "ml-100k.item": "recbole/dataset_example/ml-100k/ml-100k.item",
    "ml-100k.user": "recbole/dataset_example/ml-100k/ml-100k.user",
}
RECBOLE_RELEASE = Release("ml-100k", "recbole", "ml-100k.inter", "ml-100k.item", (1.0, 5.0), 1.0,
                          n_ratings=100_000, description="ml-100k as RecBole's atomic files (mirror)")


def names() -> list[str]:
    """Registered release names."""
    return list(RELEASES)


def get_release(name: str) -> Release:
    """The release called `name`; a misspelling gets the closest name suggested."""
    key = name.strip().lower()
    if key in RELEASES:
        return RELEASES[key]
    if f"ml-{key}" in RELEASES:  # "100k", "25m"
        return RELEASES[f"ml-{key}"]
    near = closest(key, names())
    hint = f"did you mean '{near}'?" if near else f"known names: {', '.join(names())}"
    raise DataError(f"unknown dataset '{name}'", hint)


def is_release_name(spec: str) -> bool:
    """True when spec names (or nearly names) a release rather than a path."""
    s = spec.strip().lower()
    return s in RELEASES or f"ml-{s}" in RELEASES


def detect_release(folder: Path) -> Release | None:
    """The release format of an extracted folder, judged by the files it holds (None when none fits).

    The registered release with the same folder name wins (it knows the exact rating scale);
    otherwise the format alone decides.
    """
    folder = Path(folder)
    if (folder / "ml-100k.inter").is_file():
        return RECBOLE_RELEASE
    if (folder / "u.data").is_file():
        return RELEASES["ml-100k"]
    by_name = RELEASES.get(folder.name.lower())
    if (folder / "ratings.dat").is_file():
        if by_name is not None and by_name.fmt == "dat":
            return by_name
        return _sniff_dat(folder)
    if (folder / "ratings.csv").is_file():
        if by_name is not None and by_name.fmt == "csv":
            return by_name
        return RELEASES["ml-latest-small"]
    return None


def _sniff_dat(folder: Path) -> Release:
    """ml-1m and ml-10m share the `::` format; ml-10m has half stars and UTF-8 titles."""
    if folder.name.lower().startswith("ml-10m") or (folder / "tags.dat").is_file():
        return RELEASES["ml-10m"]
    return RELEASES["ml-1m"]
