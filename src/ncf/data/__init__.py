"""Data layer: Interactions + IdMap, MovieLens registry, fetching and parsing."""

from ncf.data.idmap import IdMap
from ncf.data.interactions import Interactions

__all__ = ["IdMap", "Interactions"]
