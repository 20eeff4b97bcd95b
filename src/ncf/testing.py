"""Conformance checks every estimator must pass (the idea of implicit's shared test mixin).

Use from a test suite::

    from ncf.testing import CHECKS, fit_for_checks
    est, train = fit_for_checks("bias")
    for check in CHECKS.values():
        check(est, train, tmp_path)

or `check_estimator("bias", tmp_path)` to run them all. Each check raises AssertionError with a message
naming the broken promise.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ncf.data import Interactions
from ncf.errors import NcfError
from ncf.models import REGISTRY, Estimator


def conformance_data(seed: int = 0) -> Interactions:
    """A small rating dataset (60 users x 45 items, ~25% dense, ratings 1..5, timestamps) with structure."""
    rng = np.random.default_rng(seed)
    n_users, n_items, rank = 60, 45, 3
    p, q = rng.normal(size=(n_users, rank)), rng.normal(size=(n_items, rank))
    aff = p @ q.T + rng.normal(scale=0.3, size=(n_users, n_items))
    keep = rng.random((n_users, n_items)) < 0.25
    keep[:, 0] = True  # every user has >= 1 item; item 0 is popular
    keep[0, :] = False
    keep[0, :3] = True  # user 0 has seen exactly items 0..2
    keep[:, n_items - 1] = False
    keep[1, n_items - 1] = True  # the last item has one rating
    u, i = np.nonzero(keep)
    r = np.clip(np.round(3 + aff[u, i] / aff.std()), 1, 5)
    ts = rng.integers(1_000_000, 2_000_000, size=len(u))
    return Interactions.from_raw(u, i, r, ts, name="conformance", rating_scale=(1.0, 5.0))


def make_estimator(name_or_cls: str | type[Estimator]) -> Estimator:
    """A new estimator with its small conformance hyperparameters."""
    cls = REGISTRY[name_or_cls] if isinstance(name_or_cls, str) else name_or_cls
    return cls(**cls.conformance_params())


def fit_for_checks(name_or_cls: str | type[Estimator], data: Interactions | None = None) -> tuple[Estimator, Interactions]:
    """Fit a conformance estimator on the conformance data; asserts that fit returns self."""
    data = data if data is not None else conformance_data()
    est = make_estimator(name_or_cls)
    out = est.fit(data)
    assert out is est, f"{type(est).__name__}.fit must return self"
    return est, data


# --------------------------------------------------------------------------- checks
def check_predict_shapes(est: Estimator, data: Interactions, tmp: Path | None = None) -> None:
    """predict returns a finite float32 vector, one value per pair, also for empty input and a single pair."""
    u, i = data.user_ids[:17], data.item_ids[:17]
    p = est.predict(u, i)
    assert isinstance(p, np.ndarray) and p.shape == (17,), f"predict shape {getattr(p, 'shape', None)} != (17,)"
    assert p.dtype == np.float32, f"predict dtype {p.dtype} != float32"
    assert np.isfinite(p).all(), "predict returned non-finite values"
    one = est.predict(np.array([u[3]]), np.array([i[3]]))
    assert one.shape == (1,) and np.allclose(one[0], p[3], rtol=1e-4, atol=1e-5), "a batch of one pair differs"
    assert est.predict(np.zeros(0, np.int64), np.zeros(0, np.int64)).shape == (0,), "empty predict must give shape (0,)"


def check_score_users_matches_predict(est: Estimator, data: Interactions, tmp: Path | None = None) -> None:
    """score_users(users)[j, i] equals predict(users[j], i) for every item."""
    users = np.array([0, 5, 7], dtype=np.int64)
    s = est.score_users(users)
    assert s.shape == (3, est.n_items_), f"score_users shape {s.shape} != (3, {est.n_items_})"
    assert s.dtype == np.float32, f"score_users dtype {s.dtype} != float32"
    items = np.tile(np.arange(est.n_items_), 3)
    p = est.predict(np.repeat(users, est.n_items_), items).reshape(3, -1)
    assert np.allclose(s, p, rtol=1e-4, atol=1e-4), f"score_users differs from predict by {np.abs(s - p).max():.3g}"
    one = est.score_users(np.array([5]))
    assert one.shape == (1, est.n_items_) and np.allclose(one[0], s[1], rtol=1e-4, atol=1e-5), "batch of one differs"


def check_recommend(est: Estimator, data: Interactions, tmp: Path | None = None) -> None:
    """recommend: shapes, best-first order, exclude_seen really excludes, scores match score_users."""
    users = np.arange(10)
    ids, sc = est.recommend(users, k=5)
    assert ids.shape == (10, 5) and sc.shape == (10, 5), f"recommend shapes {ids.shape}, {sc.shape} != (10, 5)"
    assert (np.diff(sc, axis=1) <= 1e-6).all(), "recommend scores are not best-first"
    seen = est.seen_.toarray() > 0
    valid = ids >= 0
    assert not seen[np.repeat(users[:, None], 5, axis=1)[valid], ids[valid]].any(), "exclude_seen returned a seen item"
    full = est.score_users(users)
    assert np.allclose(np.take_along_axis(full, np.where(valid, ids, 0), axis=1)[valid], sc[valid], rtol=1e-4, atol=1e-5), \
        "recommend scores differ from score_users"
    unseen_max = np.where(seen[users], -np.inf, full).max(axis=1)
    assert np.allclose(sc[:, 0], unseen_max, rtol=1e-4, atol=1e-5), "recommend's first item is not the best unseen item"
    ids_all, _ = est.recommend(users, k=5, exclude_seen=False)
    assert np.allclose(np.sort(full, axis=1)[:, ::-1][:, :5],
                       np.take_along_axis(full, ids_all, axis=1), rtol=1e-4, atol=1e-5), "exclude_seen=False top-k wrong"
    one_ids, _ = est.recommend(np.array([3]), k=5)
    assert one_ids.shape == (1, 5) and np.array_equal(one_ids[0], ids[3]), "recommend for a batch of one user differs"


def check_recommend_filters_and_padding(est: Estimator, data: Interactions, tmp: Path | None = None) -> None:
    """candidates restrict the list; k beyond the eligible items pads with -1 / -inf; exclude masks more."""
    cand = np.array([1, 4, 9, 20, 33])
    ids, sc = est.recommend(np.array([0, 2]), k=3, exclude_seen=False, candidates=cand)
    assert np.isin(ids[ids >= 0], cand).all(), "candidates filter let another item through"
    n = est.n_items_
    ids, sc = est.recommend(np.array([0]), k=n + 5)
    n_seen = int(est.seen_[0].nnz)
    assert ids.shape == (1, n + 5), "k larger than the catalogue must keep shape (users, k)"
    assert (ids[0, :n - n_seen] >= 0).all() and (ids[0, n - n_seen:] == -1).all(), "padding must be id -1"
    assert np.isneginf(sc[0, n - n_seen:]).all(), "padding must score -inf"
    assert len(np.unique(ids[0, :n - n_seen])) == n - n_seen, "recommend repeated an item"
    import scipy.sparse as sp

    first, _ = est.recommend(np.array([0]), k=1)
    extra = sp.csr_matrix((np.ones(1), ([0], [first[0, 0]])), shape=(est.n_users_, n))
    again, _ = est.recommend(np.array([0]), k=3, exclude=extra)
    assert first[0, 0] not in again[0], "exclude= did not remove the item"


def check_save_load_round_trip(est: Estimator, data: Interactions, tmp: Path | None = None) -> None:
    """save -> ncf.load gives the same class, params and identical predictions."""
    import ncf

    assert tmp is not None, "check_save_load_round_trip needs a temporary directory"
    path = est.save(Path(tmp) / f"bundle-{est.name}", train=data)
    back = ncf.load(path)
    assert type(back) is type(est), f"loaded {type(back).__name__}, saved {type(est).__name__}"
    assert back.get_params() == est.get_params(), "params changed in the round trip"
    u, i = data.user_ids[:50], data.item_ids[:50]
    assert np.array_equal(est.predict(u, i), back.predict(u, i)), "predictions changed after save/load"
    a, _ = est.recommend(np.arange(5), k=5)
    b, _ = back.recommend(np.arange(5), k=5)
    assert np.array_equal(a, b), "recommendations changed after save/load"
    assert back.user_map_ == data.user_map and back.item_map_ == data.item_map, "id maps changed after save/load"


def check_unknown_ids_raise_cleanly(est: Estimator, data: Interactions, tmp: Path | None = None) -> None:
    """An inner id outside the id space raises an ncf error (not IndexError or a silent garbage score)."""
    for users, items in (([est.n_users_], [0]), ([0], [est.n_items_]), ([-1], [0])):
        try:
            est.predict(np.array(users), np.array(items))
        except NcfError:
            pass
        else:
            raise AssertionError(f"predict({users}, {items}) outside the id space did not raise an NcfError")
    try:
        est.score_users(np.array([est.n_users_]))
    except NcfError:
        pass
    else:
        raise AssertionError("score_users with an unknown user did not raise an NcfError")


def check_unfitted_raises(est: Estimator, data: Interactions, tmp: Path | None = None) -> None:
    """Calling predict before fit raises an ncf error."""
    fresh = type(est)(**est.get_params())
    try:
        fresh.predict(np.array([0]), np.array([0]))
    except NcfError:
        return
    raise AssertionError("predict before fit did not raise an NcfError")


CHECKS: dict[str, Callable[[Estimator, Interactions, Path | None], None]] = {
    "predict_shapes": check_predict_shapes,
    "score_users_matches_predict": check_score_users_matches_predict,
    "recommend": check_recommend,
    "recommend_filters_and_padding": check_recommend_filters_and_padding,
    "save_load_round_trip": check_save_load_round_trip,
    "unknown_ids_raise_cleanly": check_unknown_ids_raise_cleanly,
    "unfitted_raises": check_unfitted_raises,
}


def check_estimator(name_or_cls: str | type[Estimator], tmp: str | Path) -> list[str]:
    """Run every conformance check on a freshly fitted estimator; returns the names of the checks run."""
    est, data = fit_for_checks(name_or_cls)
    for check in CHECKS.values():
        check(est, data, Path(tmp))
    return list(CHECKS)
