"""Metrics against hand-computed values and independent implementations (sklearn, slow references)."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import ndcg_score, roc_auc_score

from ncf.evaluation import metrics as M


def test_rating_errors_by_hand():
    y, p = np.array([1.0, 3.0, 5.0]), np.array([2.0, 3.0, 3.0])
    assert M.rmse(y, p) == pytest.approx(math.sqrt((1 + 0 + 4) / 3))
    assert M.mae(y, p) == pytest.approx(1.0)


def test_single_relevant_ranks_by_hand():
    ranks = np.array([0, 2, 9, 10, 50])
    assert M.hit_rate(ranks, 10) == pytest.approx(3 / 5)
    assert M.ndcg(ranks, 10) == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(11)) / 5)
    assert M.mrr(ranks) == pytest.approx((1 + 1 / 3 + 1 / 10 + 1 / 11 + 1 / 51) / 5)
    assert M.mrr(ranks, k=10) == pytest.approx((1 + 1 / 3 + 1 / 10) / 5)
    assert M.precision(ranks, 10) == pytest.approx(3 / 50)
    assert M.recall(ranks, 10) == pytest.approx(3 / 5)
    assert M.average_precision(ranks, 10) == pytest.approx((1 + 1 / 3 + 1 / 10) / 5)


def test_multi_relevant_by_hand():
    # user 0: relevant at positions 0 and 2 of 3, 3 relevant in total; user 1: none in list, 1 relevant
    hits = np.array([[1, 0, 1], [0, 0, 0]], dtype=bool)
    n_rel = np.array([3, 1])
    assert M.hit_rate(hits, 3, n_rel) == 0.5
    assert M.precision(hits, 3, n_rel) == pytest.approx((2 / 3) / 2)
    assert M.recall(hits, 3, n_rel) == pytest.approx((2 / 3) / 2)
    dcg = 1 + 1 / math.log2(4)
    idcg = 1 + 1 / math.log2(3) + 1 / math.log2(4)
    assert M.ndcg(hits, 3, n_rel) == pytest.approx(dcg / idcg / 2)
    assert M.average_precision(hits, 3, n_rel) == pytest.approx((1 + 2 / 3) / 3 / 2)
    assert M.mrr(hits) == pytest.approx(0.5)


def test_hits_from_topk_ignores_padding():
    topk = np.array([[3, 1, -1], [0, 2, 4]])
    rel = sp.csr_matrix(np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 1]]))
    assert M.hits_from_topk(topk, rel).tolist() == [[False, True, False], [False, False, True]]


def test_ndcg_matches_sklearn_on_random_cases():
    rng = np.random.default_rng(0)
    for _ in range(20):
        n_users, n_items, k = 7, 30, int(rng.integers(1, 15))
        scores = rng.random((n_users, n_items))
        rel = rng.random((n_users, n_items)) < 0.15
        rel[:, 0] = True  # every user has one relevant item
        order = np.argsort(-scores, axis=1, kind="stable")
        hits = np.take_along_axis(rel, order, axis=1)
        ours = M.ndcg(hits, k, rel.sum(axis=1))
        theirs = ndcg_score(rel.astype(float), scores, k=k)
        assert ours == pytest.approx(theirs, abs=1e-9)


def _slow_reference(order_hits: np.ndarray, n_rel: np.ndarray, k: int) -> dict:
    out = {"hr": [], "prec": [], "rec": [], "ap": [], "rr": []}
    for row, r in zip(order_hits, n_rel):
        top = list(row[:k])
        out["hr"].append(1.0 if any(top) else 0.0)
        out["prec"].append(sum(top) / k)
        out["rec"].append(sum(top) / r)
        s, found = 0.0, 0
        for j, h in enumerate(top):
            if h:
                found += 1
                s += found / (j + 1)
        out["ap"].append(s / min(r, k))
        first = next((j for j, h in enumerate(row) if h), None)
        out["rr"].append(0.0 if first is None else 1.0 / (first + 1))
    return {key: float(np.mean(v)) for key, v in out.items()}


def test_list_metrics_match_slow_reference():
    rng = np.random.default_rng(1)
    for _ in range(20):
        n_users, n_items, k = 9, 25, int(rng.integers(1, 12))
        rel = rng.random((n_users, n_items)) < 0.2
        rel[:, -1] = True
        hits = np.take_along_axis(rel, np.argsort(rng.random((n_users, n_items)), axis=1), axis=1)
        n_rel = rel.sum(axis=1)
        ref = _slow_reference(hits, n_rel, k)
        assert M.hit_rate(hits, k, n_rel) == pytest.approx(ref["hr"], abs=1e-9)
        assert M.precision(hits, k, n_rel) == pytest.approx(ref["prec"], abs=1e-9)
        assert M.recall(hits, k, n_rel) == pytest.approx(ref["rec"], abs=1e-9)
        assert M.average_precision(hits, k, n_rel) == pytest.approx(ref["ap"], abs=1e-9)
        assert M.mrr(hits) == pytest.approx(ref["rr"], abs=1e-9)


def test_auc_matches_sklearn_with_ties_and_exclusions():
    rng = np.random.default_rng(2)
    scores = rng.integers(0, 5, size=(12, 40)).astype(float)  # many ties
    rel = rng.random((12, 40)) < 0.2
    rel[:, 0], rel[:, 1] = True, False
    valid = rng.random((12, 40)) < 0.8
    valid[:, :2] = True
    ref = np.mean([roc_auc_score(rel[u][valid[u]], scores[u][valid[u]]) for u in range(12)])
    assert M.auc(scores, rel, valid) == pytest.approx(ref, abs=1e-9)


def test_auc_from_counts_single_positive():
    # positive scored 0.5 against negatives [0.9, 0.5, 0.1, 0.2]: 1 above, 1 tie -> (4 - 1 - 0.5) / 4
    assert M.auc_from_counts(np.array([1]), np.array([1]), 4) == pytest.approx(0.625)
    assert M.auc_from_counts(np.array([1]), np.array([1]), 4) == pytest.approx(
        roc_auc_score([1, 0, 0, 0, 0], [0.5, 0.9, 0.5, 0.1, 0.2]))


def test_coverage_and_popularity():
    topk = np.array([[0, 1, -1], [1, 2, 3]])
    assert M.coverage(topk, 10) == pytest.approx(0.4)
    pop = np.array([10, 20, 30, 40, 0])
    assert M.mean_popularity(topk, pop) == pytest.approx((10 + 20 + 20 + 30 + 40) / 5)
