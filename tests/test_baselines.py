"""Baselines against independent references (loops, sklearn, closed forms) and planted structure."""

import numpy as np
import pytest
from sklearn.metrics.pairwise import cosine_similarity

from ncf.data import Interactions
from ncf.errors import DataError
from ncf.models import REGISTRY
from tests.conftest import make_lowrank


@pytest.fixture(scope="module")
def small():
    return make_lowrank(n_users=40, n_items=30, density=0.3, seed=2)


def test_registry_has_all_baselines():
    assert {"global_mean", "bias", "pop", "itemknn", "ease"} <= set(REGISTRY)


def test_global_mean(small):
    m = REGISTRY["global_mean"]().fit(small)
    assert np.allclose(m.predict(small.user_ids[:3], small.item_ids[:3]), small.ratings.mean())


def test_bias_matches_loop_reference(small):
    m = REGISTRY["bias"](reg_u=15, reg_i=10, n_epochs=4).fit(small)
    mu = small.ratings.mean()
    bu, bi = np.zeros(small.n_users), np.zeros(small.n_items)
    rows = list(zip(small.user_ids, small.item_ids, small.ratings.astype(float)))
    for _ in range(4):  # Surprise's BaselineOnly ALS, written as loops
        num, cnt = np.zeros(small.n_users), np.zeros(small.n_users)
        for u, i, r in rows:
            num[u] += r - mu - bi[i]
            cnt[u] += 1
        bu = num / (15 + cnt)
        num, cnt = np.zeros(small.n_items), np.zeros(small.n_items)
        for u, i, r in rows:
            num[i] += r - mu - bu[u]
            cnt[i] += 1
        bi = num / (10 + cnt)
    assert np.allclose(m.user_bias_, bu, atol=1e-5) and np.allclose(m.item_bias_, bi, atol=1e-5)
    u, i = small.user_ids[:20], small.item_ids[:20]
    assert np.allclose(m.predict(u, i), mu + bu[u] + bi[i], atol=1e-5)


def test_bias_recovers_planted_biases_and_every_param_matters():
    rng = np.random.default_rng(0)
    bu, bi = rng.normal(size=50), rng.normal(size=40)
    u, i = np.divmod(np.arange(50 * 40), 40)
    r = 3 + bu[u] + bi[i]
    data = Interactions.from_raw(u, i, r)
    m = REGISTRY["bias"](reg_u=0, reg_i=0, n_epochs=30).fit(data)
    assert np.abs(m.predict(data.user_ids, data.item_ids) - data.ratings).max() < 1e-3
    sparse = data.subset(np.flatnonzero(rng.random(len(data)) < 0.4))  # incomplete grid: epochs matter too
    base = REGISTRY["bias"]().fit(sparse).predict(data.user_ids, data.item_ids)
    for change in ({"reg_u": 1.0}, {"reg_i": 1.0}, {"n_epochs": 1}):
        other = REGISTRY["bias"](**change).fit(sparse).predict(data.user_ids, data.item_ids)
        assert not np.allclose(base, other), f"{change} had no effect"


def test_pop_scores_are_counts(small):
    m = REGISTRY["pop"]().fit(small)
    assert np.array_equal(m.score_users(np.array([0]))[0], small.item_counts().astype(np.float32))


def test_itemknn_matches_dense_cosine_reference(small):
    k = 5
    m = REGISTRY["itemknn"](k=k).fit(small)
    x = (small.csr().toarray() > 0).astype(float)
    sim = cosine_similarity(x.T)
    np.fill_diagonal(sim, 0)
    w = np.zeros_like(sim)
    for i in range(sim.shape[1]):  # keep the k most similar items of each item (column)
        top = np.argsort(-sim[:, i], kind="stable")[:k]
        w[top, i] = sim[top, i]
    assert np.allclose(m.sim_.toarray(), w, atol=1e-6) or np.allclose(
        np.sort(m.sim_.toarray(), axis=0), np.sort(w, axis=0), atol=1e-6)  # tie order may differ
    users = np.arange(small.n_users)
    ref = x @ m.sim_.toarray()
    assert np.allclose(m.score_users(users), ref, atol=1e-5)
    assert m.sim_.getnnz(axis=0).max() <= k
    assert REGISTRY["itemknn"](k=2).fit(small).sim_.nnz < m.sim_.nnz  # k matters


def test_ease_matches_closed_form(small):
    lam = 7.0
    m = REGISTRY["ease"](l2=lam).fit(small)
    x = (small.csr().toarray() > 0).astype(float)
    n = x.shape[1]
    # reference: minimise ||X - XB||^2 + lam ||B||^2 s.t. diag(B) = 0, column by column via least squares
    b = np.zeros((n, n))
    for j in range(n):
        others = [i for i in range(n) if i != j]
        a = x[:, others]
        b[others, j] = np.linalg.solve(a.T @ a + lam * np.eye(n - 1), a.T @ x[:, j])
    assert np.allclose(m.weights_, b, atol=1e-4)
    assert np.allclose(m.score_users(np.arange(5)), x[:5] @ b, atol=1e-4)


def test_ease_refuses_huge_catalogue(small):
    with pytest.raises(DataError, match="max_items"):
        REGISTRY["ease"](max_items=10).fit(small)


def test_ranking_baselines_beat_popularity_on_planted_data():
    from ncf.evaluation import evaluate_sampled
    from ncf.sampling import eval_candidates
    from ncf.split import split_data

    data = make_lowrank(n_users=300, n_items=400, density=0.05, seed=1)
    s = split_data(data, "loo")
    cand = eval_candidates(s.test, s.all_keys(), n=99, seed=0)
    hr = {n: evaluate_sampled(REGISTRY[n]().fit(s.train_valid()), s.test, cand)["hr@10"] for n in ("pop", "itemknn", "ease")}
    assert hr["ease"] > hr["pop"] and hr["itemknn"] > hr["pop"], hr
