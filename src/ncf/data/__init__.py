"""Data layer: Interactions + IdMap, MovieLens registry, fetching and parsing."""

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions
from ncf.data.load import load_data
from ncf.data.movielens import RELEASES, get_release
from ncf.data.tables import parse_columns

__all__ = ["IdMap", "Interactions", "RELEASES", "fetch_dataset", "get_release", "load_data", "parse_columns", "summarize"]


def fetch_dataset(name: str, **kwargs):
    """Download (or find in the cache) a MovieLens release; returns its folder. See `ncf.data.fetch.fetch`."""
    from ncf.data.fetch import fetch as _fetch

    return _fetch(name, **kwargs)


def summarize(data: Interactions) -> dict:
    """A JSON-ready summary of a dataset. See `ncf.data.info.summarize`."""
    from ncf.data.info import summarize as _summarize

    return _summarize(data)
