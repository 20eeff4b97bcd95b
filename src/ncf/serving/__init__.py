"""Serving: `Recommender` (Python API over a saved model, raw ids in and out) and the HTTP app."""

from __future__ import annotations

from typing import Any

from ncf.serving.recommender import Recommender

__all__ = ["Recommender", "create_app", "serve"]


def __getattr__(name: str) -> Any:  # FastAPI is imported only when the HTTP API is used
    if name in ("create_app", "serve"):
        from ncf.serving import app

        return getattr(app, name)
    raise AttributeError(name)
