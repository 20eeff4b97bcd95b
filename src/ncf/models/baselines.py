"""Non-neural baselines: global mean, user+item biases, popularity, item-kNN (cosine) and EASE.

All share the `Estimator` API over inner ids. Ranking baselines work on the binary user x item matrix.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import scipy.sparse as sp

from ncf.data import Interactions
from ncf.errors import DataError, UsageError
from ncf.models.base import Estimator, register


def check_inner_ids(est: Estimator, users: np.ndarray, items: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Inner id arrays as int64, or a UsageError naming the first id outside the model's id space."""
    est._check_fitted()
    u = np.asarray(users, dtype=np.int64).reshape(-1)
    for name, arr, n in (("user", u, est.n_users_), ("item", None if items is None else np.asarray(items, dtype=np.int64).reshape(-1), est.n_items_)):
        if arr is None or len(arr) == 0:
            continue
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            raise UsageError(f"inner {name} id {int(arr[bad][0])} is outside 0..{n - 1}",
                             f"map raw ids with the model's {name}_map_ (unknown {name}s have no inner id)")
    it = None if items is None else np.asarray(items, dtype=np.int64).reshape(-1)
    if it is not None and len(it) != len(u):
        raise UsageError(f"users and items differ in length ({len(u)} vs {len(it)})", "pass one item per user")
    return u, it


def _binary(train: Interactions) -> sp.csr_matrix:
    return train.csr()


@register("global_mean")
class GlobalMean(Estimator):
    """Predicts the mean training rating for every pair (the floor any rating model must beat)."""

    tasks = ("rating",)

    def __init__(self) -> None:
        pass

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Self:
        self._remember_data(train)
        self.mean_ = float(np.mean(train.ratings)) if train.ratings is not None and len(train) else 1.0
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u, _ = check_inner_ids(self, users, items)
        return np.full(len(u), self.mean_, dtype=np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        u, _ = check_inner_ids(self, users)
        return np.full((len(u), self.n_items_), self.mean_, dtype=np.float32)

    def state_meta(self) -> dict[str, Any]:
        return {**super().state_meta(), "mean_": self.mean_}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_state(arrays, meta)
        self.mean_ = float(meta["mean_"])


@register("bias")
class BiasModel(Estimator):
    """r(u, i) = mu + b_u + b_i, regularised, fit by alternating least squares (Surprise's BaselineOnly).

    Each epoch: b_u = sum_i (r - mu - b_i) / (reg_u + n_u), then b_i = sum_u (r - mu - b_u) / (reg_i + n_i).
    For ranking, scores order items by b_i (the user term does not change a user's ranking).
    Without ratings every interaction counts as rating 1 (all biases 0: use `pop` instead).
    """

    def __init__(self, reg_u: float = 15.0, reg_i: float = 10.0, n_epochs: int = 10) -> None:
        self.reg_u = reg_u
        self.reg_i = reg_i
        self.n_epochs = n_epochs

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"n_epochs": 3}

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Self:
        if self.reg_u < 0 or self.reg_i < 0 or self.n_epochs < 0:
            raise UsageError("bias model needs reg_u, reg_i, n_epochs >= 0", "pass non-negative values")
        self._remember_data(train)
        r = train.ratings.astype(np.float64) if train.ratings is not None else np.ones(len(train))
        u, i = train.user_ids, train.item_ids
        self.mean_ = float(r.mean()) if len(r) else 0.0
        n_u = np.bincount(u, minlength=train.n_users).astype(np.float64)
        n_i = np.bincount(i, minlength=train.n_items).astype(np.float64)
        bu = np.zeros(train.n_users)
        bi = np.zeros(train.n_items)
        res = r - self.mean_
        for _ in range(self.n_epochs):
            bu = np.bincount(u, weights=res - bi[i], minlength=train.n_users) / (self.reg_u + n_u + 1e-12)
            bi = np.bincount(i, weights=res - bu[u], minlength=train.n_items) / (self.reg_i + n_i + 1e-12)
        self.user_bias_ = bu.astype(np.float32)
        self.item_bias_ = bi.astype(np.float32)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u, i = check_inner_ids(self, users, items)
        return (self.mean_ + self.user_bias_[u] + self.item_bias_[i]).astype(np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        u, _ = check_inner_ids(self, users)
        return (self.mean_ + self.user_bias_[u][:, None] + self.item_bias_[None, :]).astype(np.float32)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**super().state_arrays(), "user_bias_": self.user_bias_, "item_bias_": self.item_bias_}

    def state_meta(self) -> dict[str, Any]:
        return {**super().state_meta(), "mean_": self.mean_}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_state(arrays, meta)
        self.mean_ = float(meta["mean_"])
        self.user_bias_ = np.asarray(arrays["user_bias_"], dtype=np.float32)
        self.item_bias_ = np.asarray(arrays["item_bias_"], dtype=np.float32)


@register("pop")
class Popularity(Estimator):
    """Scores every item by its number of training interactions (the same list for everyone)."""

    tasks = ("ranking",)

    def __init__(self) -> None:
        pass

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Self:
        self._remember_data(train)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        _, i = check_inner_ids(self, users, items)
        return self.item_popularity_[i].astype(np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        u, _ = check_inner_ids(self, users)
        return np.broadcast_to(self.item_popularity_.astype(np.float32), (len(u), self.n_items_)).copy()


class _ItemItem(Estimator):
    """Shared scoring for item x item models: score(u, .) = x_u @ W, x_u the binary training row."""

    tasks = ("ranking",)

    def _row_scores(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score_users(self, users: np.ndarray) -> np.ndarray:
        u, _ = check_inner_ids(self, users)
        return np.asarray(self._row_scores(u), dtype=np.float32)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        u, i = check_inner_ids(self, users, items)
        if len(u) == 0:
            return np.zeros(0, dtype=np.float32)
        uniq, inv = np.unique(u, return_inverse=True)
        out = np.empty(len(u), dtype=np.float32)
        step = max(1, (1 << 24) // max(self.n_items_, 1))
        for s in range(0, len(uniq), step):  # score each distinct user once, in blocks
            block = self._row_scores(uniq[s:s + step])
            sel = (inv >= s) & (inv < s + step)
            out[sel] = block[inv[sel] - s, i[sel]]
        return out


@register("itemknn")
class ItemKNN(_ItemItem):
    """Item-based kNN: cosine similarity of item columns of the binary matrix, k neighbours per item.

    score(u, i) = sum over the user's training items j of sim(j, i), where each item i keeps only its
    k most similar items j (`shrink` damps similarities of rarely co-rated pairs).
    """

    def __init__(self, k: int = 50, shrink: float = 0.0) -> None:
        self.k = k
        self.shrink = shrink

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"k": 10}

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Self:
        if self.k < 1:
            raise UsageError(f"itemknn needs k >= 1, got {self.k}", "pass k=50")
        self._remember_data(train)
        x = _binary(train)
        xt = x.T.tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        n = train.n_items
        k = min(self.k, max(n - 1, 1))
        rows, cols, vals = [], [], []
        step = max(1, (1 << 24) // max(n, 1))
        for s in range(0, n, step):  # columns block: co-occurrence counts, cosine, keep top k per column
            block = np.asarray((xt @ x[:, s:s + step]).todense(), dtype=np.float64)  # (n, b)
            denom = norms[:, None] * norms[None, s:s + step] + self.shrink
            sim = np.divide(block, denom, out=np.zeros_like(block), where=denom > 0)
            b = sim.shape[1]
            sim[s + np.arange(b), np.arange(b)] = 0.0  # no self-similarity
            top = np.argpartition(-sim, k - 1, axis=0)[:k] if k < n else np.broadcast_to(np.arange(n)[:, None], (n, b))
            v = np.take_along_axis(sim, top, axis=0)
            keep = v > 0
            rows.append(top[keep])
            cols.append(np.broadcast_to(s + np.arange(b), top.shape)[keep])
            vals.append(v[keep])
        self.sim_ = sp.csr_matrix((np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cols))),
                                  shape=(n, n))
        return self

    def _row_scores(self, u: np.ndarray) -> np.ndarray:
        return np.asarray((self.seen_[u] @ self.sim_).todense())

    def state_arrays(self) -> dict[str, np.ndarray]:
        w = self.sim_.tocsr()
        return {**super().state_arrays(), "sim_indptr": w.indptr.astype(np.int64),
                "sim_indices": w.indices.astype(np.int64), "sim_data": w.data.astype(np.float32)}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_state(arrays, meta)
        n = self.n_items_
        self.sim_ = sp.csr_matrix((arrays["sim_data"], arrays["sim_indices"], arrays["sim_indptr"]), shape=(n, n))


@register("ease")
class EASE(_ItemItem):
    """EASE (Steck 2019): B = I - P / diag(P), P = (X^T X + lambda I)^-1, zero diagonal; scores X @ B.

    Needs a dense items x items inverse, so it refuses catalogues above `max_items`.
    """

    def __init__(self, l2: float = 500.0, max_items: int = 30_000) -> None:
        self.l2 = l2
        self.max_items = max_items

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"l2": 50.0}

    def fit(self, train: Interactions, valid: Interactions | None = None) -> Self:
        n = train.n_items
        if n > self.max_items:
            raise DataError(f"EASE needs a dense {n} x {n} matrix inverse ({n * n * 8 / 2**30:.1f} GiB); "
                            f"this catalogue has more than max_items={self.max_items} items",
                            "filter rare items first or use itemknn")
        if self.l2 <= 0:
            raise UsageError(f"EASE needs l2 > 0, got {self.l2}", "pass l2=500")
        self._remember_data(train)
        x = _binary(train)
        g = np.asarray((x.T @ x).todense(), dtype=np.float64)
        g[np.diag_indices(n)] += self.l2
        p = np.linalg.inv(g)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices(n)] = 0.0
        self.weights_ = b.astype(np.float32)
        return self

    def _row_scores(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.seen_[u] @ self.weights_)

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**super().state_arrays(), "weights_": self.weights_}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_state(arrays, meta)
        self.weights_ = np.asarray(arrays["weights_"], dtype=np.float32)
