"""The estimator interface every model shares (baselines and neural models alike)."""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from ncf.data import Interactions
from ncf.errors import UsageError

REGISTRY: dict[str, type["Estimator"]] = {}


def register(name: str):
    """Class decorator: make an estimator loadable from a bundle by name (no pickle)."""

    def deco(cls):
        cls.name = name
        REGISTRY[name] = cls
        return cls

    return deco


class Estimator(ABC):
    """scikit-learn-style recommender over inner ids.

    Hyperparameters are constructor arguments stored as attributes of the same name. `fit` learns
    attributes ending in `_`, including `n_users_`, `n_items_` and `seen_` (the training CSR used to
    exclude seen items) and returns self. Scores are higher-is-better; for the rating task `predict`
    returns ratings on the original scale.
    """

    name: ClassVar[str] = "estimator"
    tasks: ClassVar[tuple[str, ...]] = ("rating", "ranking")

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        """Small, fast hyperparameters used by the shared conformance tests (ncf.testing)."""
        return {}

    # ------------------------------------------------------------- params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self" and sig.parameters[p].kind is not inspect.Parameter.VAR_KEYWORD]

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments as a dict."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        """Set constructor arguments."""
        for key, value in params.items():
            if key not in self._param_names():
                raise UsageError(f"{type(self).__name__} has no parameter '{key}'",
                                 f"valid: {', '.join(self._param_names())}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------- learning
    @abstractmethod
    def fit(self, train: Interactions, valid: Interactions | None = None) -> Self:
        """Learn from train (valid may drive early stopping); returns self."""

    def _remember_data(self, train: Interactions) -> None:
        """Record id space and seen items; call at the start of fit."""
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.seen_ = train.csr()
        self.item_popularity_ = train.item_counts().astype(np.float32)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_items_"):
            raise UsageError(f"{type(self).__name__} is not fitted", "call fit(train) first")

    @abstractmethod
    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Scores (or ratings) for pairs of inner ids; float32 array of len(users)."""

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user: float32 array (len(users), n_items_).

        Default: predict() over the full grid; models override with a faster matrix form.
        """
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        uu = np.repeat(users, self.n_items_)
        ii = np.tile(np.arange(self.n_items_, dtype=np.int64), len(users))
        return self.predict(uu, ii).reshape(len(users), self.n_items_).astype(np.float32)

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        exclude_seen: bool = True,
        exclude: sp.csr_matrix | None = None,
        candidates: np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k inner item ids and scores per user: two arrays of shape (len(users), k), best first.

        exclude_seen masks training items; `exclude` (n_users x n_items CSR) masks more; `candidates`
        (inner item ids) restricts the list. Fewer than k eligible items pad with id -1 / score -inf.
        """
        self._check_fitted()
        if k < 1:
            raise UsageError(f"k must be >= 1, got {k}", "pass a positive k")
        users = np.asarray(users, dtype=np.int64)
        allowed = None
        if candidates is not None:
            allowed = np.zeros(self.n_items_, dtype=bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
        out_ids = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        for start in range(0, len(users), batch_size):
            ub = users[start:start + batch_size]
            scores = self.score_users(ub).astype(np.float32, copy=True)
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            for mask in ([self.seen_] if exclude_seen else []) + ([exclude] if exclude is not None else []):
                sub = mask[ub]
                rows = np.repeat(np.arange(len(ub)), np.diff(sub.indptr))
                scores[rows, sub.indices] = -np.inf
            ids, sc = top_k(scores, k)
            out_ids[start:start + len(ub)] = ids
            out_scores[start:start + len(ub)] = sc
        out_ids[~np.isfinite(out_scores)] = -1
        return out_ids, out_scores

    # ------------------------------------------------------------- persistence
    def state_arrays(self) -> dict[str, np.ndarray]:
        """Learned state as named numeric arrays (saved to safetensors). Override and extend."""
        self._check_fitted()
        return {
            "seen_indptr": self.seen_.indptr.astype(np.int64),
            "seen_indices": self.seen_.indices.astype(np.int64),
            "item_popularity_": self.item_popularity_,
        }

    def state_meta(self) -> dict[str, Any]:
        """Learned non-array state (JSON). Override and extend."""
        return {"n_users_": int(self.n_users_), "n_items_": int(self.n_items_)}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Inverse of state_arrays/state_meta. Override, calling super()."""
        self.n_users_ = int(meta["n_users_"])
        self.n_items_ = int(meta["n_items_"])
        indptr, indices = arrays["seen_indptr"], arrays["seen_indices"]
        self.seen_ = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                                   shape=(self.n_users_, self.n_items_))
        self.item_popularity_ = arrays["item_popularity_"]

    def save(self, path: str | Path, train: Interactions | None = None, extra: dict | None = None) -> Path:
        """Write a model bundle (safetensors + JSON). See ncf.bundle."""
        from ncf.bundle import save_bundle

        return save_bundle(self, path, train=train, extra=extra)


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the k largest entries per row, best first (ties: lower index first)."""
    n = scores.shape[1]
    k_eff = min(k, n)
    if k_eff < n:
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    ids = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    if k_eff < k:
        pad = k - k_eff
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=-np.inf)
    return ids.astype(np.int64), vals.astype(np.float32)
