"""Metrics as pure functions of arrays (vectorised; they know nothing of models or files).

Ranking metrics take either
- `ranks`: a 1-D int array, the 0-based position of the single relevant item in each user's ranked list
  (leave-one-out style; rank 0 = first), or
- `hits`: a 2-D bool array (users x list positions, best first), True where the item at that position is
  relevant, together with `n_relevant` (relevant items per user; default: hits per row).
Build `hits` from top-K id lists and relevant sets with `hits_from_topk`. Every function returns the mean
over users (rows). Formulas, with hit_j = 1 if position j (0-based) holds a relevant item, R = n_relevant:

    HR@K        = mean_u [ sum_{j<K} hit_j > 0 ]
    Precision@K = mean_u sum_{j<K} hit_j / K
    Recall@K    = mean_u sum_{j<K} hit_j / R
    NDCG@K      = mean_u DCG/IDCG, DCG = sum_{j<K} hit_j / log2(j + 2), IDCG = sum_{j<min(R,K)} 1/log2(j + 2)
                  (one relevant item at rank r: 1/log2(r + 2) if r < K else 0)
    AP@K        = sum_{j<K} hit_j * Precision@(j+1) / min(R, K);  MAP@K = mean_u AP@K
    MRR         = mean_u 1/(r_first + 1) over the given list (0 when no relevant item appears)
    AUC         = mean_u P(score(relevant) > score(irrelevant)), ties count 1/2
    RMSE        = sqrt(mean (y - yhat)^2),  MAE = mean |y - yhat|   (original rating scale)
    coverage@K  = distinct recommended items / catalogue size
    popularity@K = mean training popularity (interaction count) of the recommended items
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


# --------------------------------------------------------------------------- rating
def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    d = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return float(np.sqrt(np.mean(d * d))) if len(d) else float("nan")


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error."""
    d = np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)
    return float(np.mean(np.abs(d))) if len(d) else float("nan")


# --------------------------------------------------------------------------- ranking helpers
def hits_from_ranks(ranks: np.ndarray, k: int) -> np.ndarray:
    """(len(ranks), k) bool: position j is the relevant item (one relevant item per row)."""
    ranks = np.asarray(ranks)
    return ranks[:, None] == np.arange(k)[None, :]


def hits_from_topk(topk: np.ndarray, relevant: sp.csr_matrix, rows: np.ndarray | None = None) -> np.ndarray:
    """(len(topk), K) bool: topk[u, j] is in user u's relevant set (row `rows[u]` of a users x items CSR).

    Padding ids (-1) are never relevant.
    """
    topk = np.asarray(topk, dtype=np.int64)
    rel = relevant if rows is None else relevant[np.asarray(rows)]
    rel = sp.csr_matrix(rel)
    n_items = rel.shape[1]
    r = np.repeat(np.arange(rel.shape[0], dtype=np.int64), np.diff(rel.indptr))
    keys = np.sort(r * n_items + rel.indices.astype(np.int64))
    safe = np.where(topk < 0, 0, topk)
    q = np.arange(len(topk), dtype=np.int64)[:, None] * n_items + safe
    if len(keys) == 0:
        return np.zeros(topk.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
    return (keys[pos] == q) & (topk >= 0)


def _as_hits(x: np.ndarray, k: int | None, n_relevant: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Normalise (ranks | hits) to (hits[:, :k], n_relevant)."""
    x = np.asarray(x)
    if x.ndim == 1:
        if k is None:
            raise ValueError("k is required with ranks")
        hits = hits_from_ranks(x, k)
        n_rel = np.ones(len(x), dtype=np.int64) if n_relevant is None else np.asarray(n_relevant)
        return hits, n_rel
    hits = x.astype(bool)
    if k is not None:
        hits = hits[:, :k]
    n_rel = hits.sum(axis=1) if n_relevant is None else np.asarray(n_relevant)
    return hits, n_rel


def _mean(v: np.ndarray) -> float:
    return float(np.mean(v)) if len(v) else float("nan")


# --------------------------------------------------------------------------- ranking metrics
def hit_rate(ranks_or_hits: np.ndarray, k: int | None = None, n_relevant: np.ndarray | None = None) -> float:
    """HR@K: share of users with at least one relevant item in the top K."""
    hits, _ = _as_hits(ranks_or_hits, k, n_relevant)
    return _mean(hits.any(axis=1))


def precision(ranks_or_hits: np.ndarray, k: int | None = None, n_relevant: np.ndarray | None = None) -> float:
    """Precision@K: relevant items in the top K, divided by K."""
    hits, _ = _as_hits(ranks_or_hits, k, n_relevant)
    return _mean(hits.sum(axis=1) / hits.shape[1])


def recall(ranks_or_hits: np.ndarray, k: int | None = None, n_relevant: np.ndarray | None = None) -> float:
    """Recall@K: relevant items in the top K, divided by the user's number of relevant items."""
    hits, n_rel = _as_hits(ranks_or_hits, k, n_relevant)
    return _mean(hits.sum(axis=1) / np.maximum(n_rel, 1))


def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(k, dtype=np.float64) + 2.0)


def ndcg(ranks_or_hits: np.ndarray, k: int | None = None, n_relevant: np.ndarray | None = None) -> float:
    """NDCG@K with binary gains and a log2(position + 2) discount."""
    hits, n_rel = _as_hits(ranks_or_hits, k, n_relevant)
    kk = hits.shape[1]
    disc = _discounts(kk)
    dcg = hits @ disc
    ideal = np.concatenate([[0.0], np.cumsum(disc)])[np.minimum(n_rel, kk)]
    return _mean(np.divide(dcg, ideal, out=np.zeros_like(dcg), where=ideal > 0))


def average_precision(ranks_or_hits: np.ndarray, k: int | None = None, n_relevant: np.ndarray | None = None) -> float:
    """MAP@K: mean over users of sum_j hit_j * precision@(j+1) / min(R, K)."""
    hits, n_rel = _as_hits(ranks_or_hits, k, n_relevant)
    kk = hits.shape[1]
    h = hits.astype(np.float64)
    prec = np.cumsum(h, axis=1) / np.arange(1, kk + 1)
    denom = np.minimum(n_rel, kk).astype(np.float64)
    ap = (prec * h).sum(axis=1)
    return _mean(np.divide(ap, denom, out=np.zeros_like(ap), where=denom > 0))


def mrr(ranks_or_hits: np.ndarray, k: int | None = None) -> float:
    """MRR: mean reciprocal (1-based) rank of the first relevant item; 0 when it is not in the list / top k."""
    x = np.asarray(ranks_or_hits)
    if x.ndim == 1:
        rr = 1.0 / (x.astype(np.float64) + 1.0)
        if k is not None:
            rr[x >= k] = 0.0
        return _mean(rr)
    hits = x.astype(bool) if k is None else x[:, :k].astype(bool)
    first = np.argmax(hits, axis=1)
    rr = np.where(hits.any(axis=1), 1.0 / (first + 1.0), 0.0)
    return _mean(rr)


def auc(scores: np.ndarray, relevant: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean per-row AUC: P(score of a relevant item > score of an irrelevant one), ties 1/2.

    scores, relevant (bool) and optional valid (bool: items that take part) are (users, items) arrays.
    Rows without a relevant or without an irrelevant valid item are skipped.
    """
    s = np.asarray(scores, dtype=np.float64)
    rel = np.asarray(relevant, dtype=bool)
    ok = np.ones_like(rel) if valid is None else np.asarray(valid, dtype=bool)
    neg = ok & ~rel
    pos = ok & rel
    from scipy.stats import rankdata

    big = np.where(ok, s, -np.inf)
    rk = rankdata(big, axis=1)  # average ranks: ties count 1/2
    n_excl = (~ok).sum(axis=1)
    rk = rk - n_excl[:, None]  # excluded items sit at the bottom with -inf
    n_pos, n_neg = pos.sum(axis=1), neg.sum(axis=1)
    rank_sum = np.where(pos, rk, 0.0).sum(axis=1)
    use = (n_pos > 0) & (n_neg > 0)
    a = (rank_sum[use] - n_pos[use] * (n_pos[use] + 1) / 2.0) / (n_pos[use] * n_neg[use])
    return _mean(a)


def auc_from_counts(n_greater: np.ndarray, n_equal: np.ndarray, n_negatives: np.ndarray | int) -> float:
    """AUC of one relevant item per row from the number of negatives scored above / equal to it."""
    n_neg = np.asarray(n_negatives, dtype=np.float64)
    a = (n_neg - np.asarray(n_greater) - 0.5 * np.asarray(n_equal)) / n_neg
    return _mean(a)


# --------------------------------------------------------------------------- beyond accuracy
def coverage(topk: np.ndarray, n_items: int) -> float:
    """Catalogue coverage: distinct recommended items (ignoring -1 padding) / n_items."""
    ids = np.asarray(topk).ravel()
    ids = ids[ids >= 0]
    return float(len(np.unique(ids)) / n_items) if n_items else float("nan")


def mean_popularity(topk: np.ndarray, popularity: np.ndarray) -> float:
    """Mean popularity (e.g. training interaction counts) of the recommended items (ignoring -1 padding)."""
    ids = np.asarray(topk).ravel()
    ids = ids[ids >= 0]
    return float(np.mean(np.asarray(popularity, dtype=np.float64)[ids])) if len(ids) else float("nan")
