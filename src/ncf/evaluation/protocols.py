"""Evaluation protocols: rating (RMSE/MAE), sampled ranking (held-out item vs fixed candidates) and full
ranking (every item the user has not seen in train/valid).

Ties are counted pessimistically in both ranking protocols: an item scored equal to the held-out item
is ranked ABOVE it. A model that scores everything alike therefore gets HR 0, not a lucky 1 (collapsed
outputs, e.g. a dead ReLU, must not look good). AUC alone counts ties as 1/2. NaN scores count as -inf.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ncf.data import Interactions
from ncf.errors import DataError
from ncf.evaluation import metrics as M

PAIRS_PER_BATCH = 1 << 20  # predict() calls of at most this many (user, item) pairs
CELLS_PER_BATCH = 1 << 24  # score matrices of at most this many cells


def _clean(scores: np.ndarray) -> np.ndarray:
    """float32 copy with NaN replaced by -inf."""
    out = np.array(scores, dtype=np.float32, copy=True)
    out[np.isnan(out)] = -np.inf
    return out


def evaluate_rating(model, test: Interactions, clip: tuple[float, float] | None = None) -> dict[str, float]:
    """RMSE and MAE of model.predict on the held-out pairs, clipped to the rating scale."""
    if test.ratings is None:
        raise DataError(f"'{test.name}' has no ratings, so RMSE/MAE cannot be computed", "use --task ranking")
    lo_hi = clip or test.rating_scale
    preds = np.empty(len(test), dtype=np.float64)
    for s in range(0, len(test), PAIRS_PER_BATCH):
        preds[s:s + PAIRS_PER_BATCH] = model.predict(test.user_ids[s:s + PAIRS_PER_BATCH],
                                                     test.item_ids[s:s + PAIRS_PER_BATCH])
    if lo_hi is not None:
        preds = np.clip(preds, lo_hi[0], lo_hi[1])
    return {"rmse": M.rmse(test.ratings, preds), "mae": M.mae(test.ratings, preds)}


def sampled_scores(model, test: Interactions, candidates: np.ndarray) -> np.ndarray:
    """(len(test), 1 + n) scores: column 0 the held-out item, then its saved candidates (model.predict, batched)."""
    candidates = np.asarray(candidates)
    if candidates.ndim != 2 or len(candidates) != len(test):
        raise DataError(f"candidates have shape {candidates.shape} but the test part has {len(test)} rows",
                        "draw them with ncf.sampling.eval_candidates for this very split")
    items = np.concatenate([test.item_ids[:, None].astype(np.int64), candidates.astype(np.int64)], axis=1)
    m, w = items.shape
    out = np.empty((m, w), dtype=np.float32)
    rows = max(1, PAIRS_PER_BATCH // w)
    for s in range(0, m, rows):
        it = items[s:s + rows]
        us = np.repeat(test.user_ids[s:s + rows].astype(np.int64), w)
        out[s:s + rows] = np.asarray(model.predict(us, it.ravel()), dtype=np.float32).reshape(it.shape)
    return _clean(out)


def evaluate_sampled(model, test: Interactions, candidates: np.ndarray, ks: tuple[int, ...] = (10,)) -> dict[str, float]:
    """Rank each held-out item among its n saved candidates: hr@k, ndcg@k per k, mrr and auc.

    Rank = number of candidates scoring >= the held-out item (pessimistic ties).
    """
    scores = sampled_scores(model, test, candidates)
    pos = scores[:, :1]
    neg = scores[:, 1:]
    rank = (neg >= pos).sum(axis=1)
    n_gt = (neg > pos).sum(axis=1)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = M.hit_rate(rank, k)
        out[f"ndcg@{k}"] = M.ndcg(rank, k)
    out["mrr"] = M.mrr(rank)
    out["auc"] = M.auc_from_counts(n_gt, rank - n_gt, neg.shape[1])
    return out


def _rows_mask(csr: sp.csr_matrix, rows: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(row-in-batch, column) coordinates of the non-zeros of csr[rows]."""
    sub = csr[rows]
    return np.repeat(np.arange(len(rows)), np.diff(sub.indptr)), sub.indices


def evaluate_full(model, test: Interactions, exclude_csr: sp.csr_matrix | None, ks: tuple[int, ...] = (10,),
                  batch_users: int | None = None, popularity: np.ndarray | None = None) -> dict[str, float]:
    """Rank every item for each test user (model.score_users, in user batches).

    The user's held-out items (all test rows of that user) are the relevant set; items in `exclude_csr`
    (train + valid positives, users x items) are removed from the ranking. Relevant items are placed
    after every non-relevant item with an equal score (pessimistic ties), so the metrics are exact
    given the scores. Returns hr/ndcg/recall/precision/map/coverage/popularity @k, mrr and auc.
    `popularity` (per item, default the model's training counts) feeds popularity@k.
    """
    n_items = test.n_items
    rel_csr = test.csr()
    users = np.flatnonzero(np.diff(rel_csr.indptr) > 0)
    if len(users) == 0:
        raise DataError("the test part is empty", "check the split")
    if exclude_csr is None:
        exclude_csr = sp.csr_matrix((test.n_users, n_items), dtype=np.float32)
    exclude_csr = sp.csr_matrix(exclude_csr)
    if popularity is None:
        popularity = getattr(model, "item_popularity_", None)
    kmax = max(ks)
    bs = batch_users or max(1, CELLS_PER_BATCH // max(n_items, 1))
    hits_all = np.zeros((len(users), kmax), dtype=bool)
    topk_all = np.full((len(users), kmax), -1, dtype=np.int64)
    n_rel_all = np.zeros(len(users), dtype=np.int64)
    first_all = np.full(len(users), np.inf)
    auc_all = np.full(len(users), np.nan)
    for s in range(0, len(users), bs):
        ub = users[s:s + bs]
        b = len(ub)
        sc = _clean(model.score_users(ub))
        if sc.shape != (b, n_items):
            raise DataError(f"score_users returned shape {sc.shape}, expected {(b, n_items)}",
                            "the model and the data have different id spaces")
        er, ec = _rows_mask(exclude_csr, ub, sc.shape)
        rr, rc = _rows_mask(rel_csr, ub, sc.shape)
        sc_rel = sc[rr, rc].copy()  # a held-out item also in train/valid stays relevant (the audit reports it)
        sc[er, ec] = np.nan  # excluded items take no part
        ids, _ = _topk_masked(sc, rr, rc, sc_rel, kmax)
        topk_all[s:s + b] = ids
        nonrel = sc.copy()
        nonrel[rr, rc] = np.nan
        # counts of non-relevant eligible items scored >= / > each relevant item (chunked over pairs)
        ge = np.empty(len(rr), dtype=np.int64)
        gt = np.empty(len(rr), dtype=np.int64)
        chunk = max(1, CELLS_PER_BATCH // max(n_items, 1))
        for c in range(0, len(rr), chunk):
            rows = nonrel[rr[c:c + chunk]]
            v = sc_rel[c:c + chunk, None]
            ge[c:c + chunk] = (rows >= v).sum(axis=1)
            gt[c:c + chunk] = (rows > v).sum(axis=1)
        n_neg = (~np.isnan(nonrel)).sum(axis=1)
        # position among relevant items of the same user: order by (-score, item)
        order = np.lexsort((rc, -sc_rel, rr))
        grp_start = np.searchsorted(rr[order], rr[order], side="left")
        within = np.empty(len(rr), dtype=np.int64)
        within[order] = np.arange(len(rr)) - grp_start
        position = ge + within
        inside = position < kmax
        hits_all[s + rr[inside], position[inside]] = True
        n_rel_all[s:s + b] = np.bincount(rr, minlength=b)
        np.minimum.at(first_all, s + rr, position.astype(np.float64))
        nn = n_neg[rr].astype(np.float64)
        pair_auc = np.divide(nn - gt - 0.5 * (ge - gt), nn, out=np.full(len(rr), np.nan), where=nn > 0)
        sums = np.bincount(rr, weights=np.nan_to_num(pair_auc), minlength=b)
        cnt = np.bincount(rr, weights=(~np.isnan(pair_auc)).astype(np.float64), minlength=b)
        auc_all[s:s + b] = np.divide(sums, cnt, out=np.full(b, np.nan), where=cnt > 0)
    out: dict[str, float] = {}
    for k in ks:
        h = hits_all[:, :k]
        out[f"hr@{k}"] = M.hit_rate(h, k, n_rel_all)
        out[f"ndcg@{k}"] = M.ndcg(h, k, n_rel_all)
        out[f"recall@{k}"] = M.recall(h, k, n_rel_all)
        out[f"precision@{k}"] = M.precision(h, k, n_rel_all)
        out[f"map@{k}"] = M.average_precision(h, k, n_rel_all)
        out[f"coverage@{k}"] = M.coverage(topk_all[:, :k], n_items)
        if popularity is not None:
            out[f"popularity@{k}"] = M.mean_popularity(topk_all[:, :k], popularity)
    out["mrr"] = float(np.mean(1.0 / (first_all + 1.0)))
    out["auc"] = float(np.nanmean(auc_all)) if np.isfinite(auc_all).any() else float("nan")
    return out


def _topk_masked(sc: np.ndarray, rr: np.ndarray, rc: np.ndarray, sc_rel: np.ndarray, k: int):
    """Top-k recommended ids per row of a score matrix with excluded cells NaN (relevant cells restored).

    Used for coverage/popularity only (ties in arbitrary order); torch.topk is several times faster than
    numpy's argpartition on large matrices.
    """
    import torch

    full = np.where(np.isnan(sc), -np.inf, sc)
    full[rr, rc] = sc_rel
    kk = min(k, full.shape[1])
    vals, ids = torch.from_numpy(full).topk(kk, dim=1)
    ids, vals = ids.numpy().astype(np.int64), vals.numpy()
    if kk < k:
        ids = np.pad(ids, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    ids[~np.isfinite(vals)] = -1
    return ids, vals


def _make_model(name: str, task: str, seed: int, params: dict | None):
    from ncf.models import REGISTRY

    cls = REGISTRY[name]
    names = cls._param_names()
    args = dict(params or {})
    if "task" in names:
        args.setdefault("task", task)
    if "seed" in names:
        args["seed"] = seed
    return cls(**args)


def check_models(names: list[str], task: str) -> None:
    """UsageError unless every name is a registered estimator that supports `task`."""
    from ncf.errors import UsageError, closest
    from ncf.models import REGISTRY

    if task not in ("rating", "ranking"):
        raise UsageError(f"unknown task '{task}'", "use rating or ranking")
    if not names:
        raise UsageError("no models given", f"pass e.g. --models {','.join(n for n in REGISTRY if task in REGISTRY[n].tasks)}")
    for name in names:
        if name not in REGISTRY:
            guess = closest(name, sorted(REGISTRY))
            raise UsageError(f"unknown model '{name}'",
                             f"did you mean '{guess}'?" if guess else f"known: {', '.join(sorted(REGISTRY))}")
        if task not in REGISTRY[name].tasks:
            ok = [n for n in sorted(REGISTRY) if task in REGISTRY[n].tasks]
            raise UsageError(f"model '{name}' does not support the {task} task", f"models for {task}: {', '.join(ok)}")


def evaluate_models(data: Interactions, models: list[str], task: str = "ranking", split: str = "loo",
                    seeds: int | list[int] = 1, ks: tuple[int, ...] = (10,), n_candidates: int = 99,
                    valid_in_train: bool = True, params: dict[str, dict] | None = None,
                    split_params: dict | None = None, progress=None) -> list[dict]:
    """Fit and evaluate models on one split per seed (k-fold: every fold, averaged).

    Rating task: the `rating` protocol. Ranking task: `sampled` (n_candidates fixed candidates per test row,
    drawn per seed) and `full` (train + valid positives excluded). With `valid_in_train` the model is fit
    on train + valid (the usual final protocol); else fit(train, valid).
    Returns one result table {model: {protocol: {metric: value}}} per seed.
    """
    from ncf.evaluation.tables import aggregate
    from ncf.sampling import eval_candidates
    from ncf.split import kfold, split_data

    check_models(models, task)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    out = []
    for seed in seed_list:
        if split == "kfold":
            k = int((split_params or {}).get("k", 5))
            splits = list(kfold(data, k=k, seed=seed))
        else:
            splits = [split_data(data, split, seed=seed, **(split_params or {}))]
        per_fold = []
        for sp_ in splits:
            train = sp_.train_valid() if valid_in_train else sp_.train
            valid = None if valid_in_train else sp_.valid
            cand = exclude = None
            if task == "ranking":
                cand = eval_candidates(sp_.test, sp_.all_keys(), n=n_candidates, seed=seed)
                exclude = sp_.train_valid().csr()
            res: dict[str, dict[str, dict[str, float]]] = {}
            for name in models:
                if progress:
                    progress(f"seed {seed}: fitting {name} on {len(train):,} interactions")
                model = _make_model(name, task, seed, (params or {}).get(name)).fit(train, valid)
                if task == "rating":
                    res[name] = {"rating": evaluate_rating(model, sp_.test)}
                else:
                    res[name] = {"sampled": evaluate_sampled(model, sp_.test, cand, ks),
                                 "full": evaluate_full(model, sp_.test, exclude, ks)}
            per_fold.append(res)
        out.append(aggregate(per_fold)[0] if len(per_fold) > 1 else per_fold[0])
    return out
