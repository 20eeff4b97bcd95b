"""ncf: Neural Collaborative Filtering recommenders, evaluated properly, diagnosed, and served."""

from __future__ import annotations

__version__ = "0.1.0"

from ncf.data import IdMap, Interactions
from ncf.errors import NcfError


def load(path):
    """Load a saved model bundle (a run directory or its model/ folder) as a fitted estimator."""
    from ncf.bundle import load_bundle

    return load_bundle(path)


__all__ = ["IdMap", "Interactions", "NcfError", "load", "__version__"]
