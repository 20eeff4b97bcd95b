"""Splits: partition, determinism, the leave-one-out tie rule, temporal order, audit; candidates; negatives."""

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ncf.data import Interactions
from ncf.errors import DataError, UsageError
from ncf.sampling import eval_candidates, positive_keys, sample_negatives
from ncf.split import audit, kfold, split_data
from tests.conftest import make_lowrank


def _rows(part: Interactions, data: Interactions) -> np.ndarray:
    """Keys of a part's rows (pairs are unique in data, so keys identify rows)."""
    return part.user_ids.astype(np.int64) * data.n_items + part.item_ids


def _assert_partition(split, data):
    keys = [_rows(p, data) for p in split.parts()]
    allk = np.concatenate(keys)
    assert len(allk) == len(data) and len(np.unique(allk)) == len(data)
    assert set(allk) == set(data.user_ids.astype(np.int64) * data.n_items + data.item_ids)
    for p in split.parts():
        assert p.n_users == data.n_users and p.n_items == data.n_items


@pytest.mark.parametrize("method", ["random", "loo", "temporal", "kfold"])
def test_split_partitions_and_is_deterministic(method, lowrank):
    a = split_data(lowrank, method, seed=3)
    b = split_data(lowrank, method, seed=3)
    _assert_partition(a, lowrank)
    for pa, pb in zip(a.parts(), b.parts()):
        assert np.array_equal(pa.user_ids, pb.user_ids) and np.array_equal(pa.item_ids, pb.item_ids)
    rep = audit(a)
    assert rep["pairs_train_test"] == rep["pairs_train_valid"] == rep["pairs_valid_test"] == 0


def test_random_split_seed_changes_and_stratified_sizes(lowrank):
    a, b = split_data(lowrank, "random", seed=0), split_data(lowrank, "random", seed=1)
    assert not np.array_equal(a.test.item_ids, b.test.item_ids)
    counts = lowrank.user_counts()
    test_counts = a.test.user_counts()
    expect = np.minimum(np.round(0.2 * counts), np.maximum(counts - 1, 0))
    assert np.array_equal(test_counts, expect)
    assert (a.train.user_counts()[counts > 0] > 0).all()  # every user keeps training data
    g = split_data(lowrank, "random", seed=0, stratify=False, valid_size=0)
    assert g.valid is None and len(g.test) == round(0.2 * len(lowrank))


def _tiny(users, items, ts):
    return Interactions.from_raw(np.array(users), np.array(items), np.ones(len(users)), np.array(ts))


def test_loo_tie_rule_row_order_like_recbole():
    # user 1: items 10 and 30 share the latest timestamp; row order says 10 came later in the file
    data = _tiny([1, 1, 1, 1, 2, 2, 3], [20, 30, 10, 40, 10, 20, 10], [5, 9, 9, 1, 1, 2, 1])
    s = split_data(data, "loo")
    raw = lambda p: sorted(zip(p.user_map.to_raw(p.user_ids).tolist(), p.item_map.to_raw(p.item_ids).tolist()))
    assert raw(s.test) == [(1, 10), (2, 20)]
    assert raw(s.valid) == [(1, 30)]  # next latest under the same rule; user 2 has only 2 rows: no valid
    assert raw(s.train) == [(1, 20), (1, 40), (2, 10), (3, 10)]  # user 3 (one row) stays in train only
    s_item = split_data(data, "loo", tie_break="item")
    assert raw(s_item.test) == [(1, 30), (2, 20)]
    rep = audit(s)
    assert rep["tied_users"] == 1 and rep["test_before_user_train"] == 0 and rep["tie_break"] == "row"


def test_loo_matches_stable_sort_reference(lowrank):
    # ties planted: coarse timestamps; reference: a per-user Python loop over a stable sort
    data = Interactions.from_raw(lowrank.user_ids, lowrank.item_ids, lowrank.ratings, lowrank.timestamps // 10**7)
    s = split_data(data, "loo")
    ref_test = set()
    for u in np.unique(data.user_ids):
        rows = np.flatnonzero(data.user_ids == u)
        rows = rows[np.argsort(data.timestamps[rows], kind="stable")]
        if len(rows) >= 2:
            ref_test.add((u, data.item_ids[rows[-1]]))
    assert set(zip(s.test.user_ids.tolist(), s.test.item_ids.tolist())) == ref_test
    assert audit(s)["tied_users"] > 0


def test_temporal_split_respects_time(lowrank):
    s = split_data(lowrank, "temporal", test_frac=0.2, valid_frac=0.1)
    assert s.train.timestamps.max() < s.valid.timestamps.min() <= s.valid.timestamps.max() < s.test.timestamps.min()
    assert audit(s)["test_older_than_train"] == 0
    assert len(s.test) == pytest.approx(0.2 * len(lowrank), abs=5)


def test_kfold_folds_cover_every_row_once(lowrank):
    tests = [_rows(s.test, lowrank) for s in kfold(lowrank, k=5, seed=0)]
    allk = np.concatenate(tests)
    assert len(allk) == len(lowrank) == len(np.unique(allk))
    assert max(map(len, tests)) - min(map(len, tests)) <= 1


def test_split_errors_are_clean(lowrank):
    with pytest.raises(UsageError, match="did you mean 'loo'"):
        split_data(lowrank, "lo")
    no_ts = Interactions.from_raw(lowrank.user_ids, lowrank.item_ids)
    with pytest.raises(DataError, match="timestamps"):
        split_data(no_ts, "loo")
    with pytest.raises(UsageError):
        split_data(lowrank, "random", test_size=1.5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(1, 30), method=st.sampled_from(["random", "loo", "temporal"]))
def test_candidates_never_positive_never_repeat(seed, n, method):
    data = make_lowrank(n_users=40, n_items=80, density=0.2, seed=seed % 7)
    s = split_data(data, method, seed=seed)
    n = min(n, int(data.n_items - data.user_counts().max() - 1))  # every user must have n negatives
    cand = eval_candidates(s.test, s.all_keys(), n=n, seed=seed)
    assert cand.shape == (len(s.test), n) and cand.dtype == np.int32
    dense = data.csr().toarray() > 0
    assert not dense[s.test.user_ids[:, None], cand].any()
    srt = np.sort(cand, axis=1)
    assert (srt[:, 1:] != srt[:, :-1]).all()
    again = eval_candidates(s.test, s.all_keys(), n=n, seed=seed)
    assert np.array_equal(cand, again)
    s2 = split_data(data, method, seed=seed)
    assert np.array_equal(s.test.item_ids, s2.test.item_ids)


def test_candidates_dense_user_falls_back_exactly():
    # user 0 has interacted with 95 of 100 items: exactly 5 candidates exist
    users = np.r_[np.zeros(95, int), np.ones(3, int)]
    items = np.r_[np.arange(95), [0, 1, 2]]
    test = (np.array([0]), np.array([94]), 100)
    keys = np.sort(users.astype(np.int64) * 100 + items)
    cand = eval_candidates(test, keys, n=5, seed=0)
    assert sorted(cand[0].tolist()) == [95, 96, 97, 98, 99]
    with pytest.raises(DataError, match="fewer than 6"):
        eval_candidates(test, keys, n=6, seed=0)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10**6), k=st.integers(1, 8))
def test_training_negatives_never_positive(seed, k):
    data = make_lowrank(n_users=30, n_items=50, density=0.3, seed=seed % 5)
    keys = positive_keys(data.csr())
    neg = sample_negatives(data.user_ids, data.n_items, keys, k, np.random.default_rng(seed))
    assert neg.shape == (len(data), k)
    assert not (data.csr().toarray() > 0)[np.repeat(data.user_ids, k), neg.ravel()].any()


@pytest.mark.slow
def test_ml1m_sized_sampling_speed():
    rng = np.random.default_rng(0)
    n_users, n_items = 6040, 3706
    keys = np.unique(rng.integers(0, n_users, 1_000_000).astype(np.int64) * n_items + rng.integers(0, n_items, 1_000_000))
    users = (keys // n_items).astype(np.int32)
    sample_negatives(users[:1000], n_items, keys, 4, rng)  # warm up
    t = time.perf_counter()
    neg = sample_negatives(users, n_items, keys, 4, rng)
    dt = time.perf_counter() - t
    t = time.perf_counter()
    cand = eval_candidates((np.arange(n_users), rng.integers(0, n_items, n_users), n_items), keys, n=99, seed=0)
    dt2 = time.perf_counter() - t
    print(f"\nML-1M-sized: 4 training negatives x {len(users):,} positives in {dt:.3f} s; "
          f"99 eval candidates x {n_users} users in {dt2:.3f} s")
    assert neg.shape == (len(users), 4) and cand.shape == (n_users, 99)


def test_loo_first_seen_tie_rule():
    # user 1 ties items 30 and 10 at t=9; item 30 first appears in row 0, item 10 in row 2 -> 10 is "later"
    data = _tiny([2, 1, 1, 1], [30, 20, 10, 30], [0, 5, 9, 9])
    raw = lambda p: sorted(zip(p.user_map.to_raw(p.user_ids).tolist(), p.item_map.to_raw(p.item_ids).tolist()))
    assert raw(split_data(data, "loo", tie_break="first_seen").test) == [(1, 10)]
    assert raw(split_data(data, "loo", tie_break="row").test) == [(1, 30)]
    assert raw(split_data(data, "loo", tie_break="item").test) == [(1, 30)]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10**6), n_users=st.integers(1, 15), n_items=st.integers(2, 12),
       method=st.sampled_from(["random", "loo", "temporal", "kfold"]), data_seed=st.integers(0, 10**6))
def test_any_split_partitions_random_data(seed, n_users, n_items, method, data_seed):
    rng = np.random.default_rng(data_seed)
    n = int(rng.integers(n_users, n_users * n_items + 1))
    flat = rng.choice(n_users * n_items, size=n, replace=False)
    u, i = np.divmod(flat, n_items)
    ts = rng.integers(0, 5, size=n)  # coarse: many ties
    data = Interactions.from_raw(u, i, rng.integers(1, 6, n).astype(float), ts)
    try:
        s = split_data(data, method, seed=seed)
    except DataError:  # e.g. every user has a single row: loo leaves the test part empty
        return
    _assert_partition(s, data)
    rep = audit(s)
    assert rep["pairs_train_test"] == rep["pairs_train_valid"] == rep["pairs_valid_test"] == 0
    if method == "loo":
        assert rep["test_before_user_train"] == 0
        assert (s.test.user_counts() <= 1).all()
    if method == "temporal":
        assert rep["test_older_than_train"] == 0


def test_candidates_save_load_round_trip(tmp_path, lowrank):
    from ncf.sampling import load_candidates, save_candidates

    s = split_data(lowrank, "loo")
    cand = eval_candidates(s.test, s.all_keys(), n=10, seed=0)
    save_candidates(tmp_path / "candidates.npy", cand)
    assert np.array_equal(load_candidates(tmp_path / "candidates.npy", len(s.test)), cand)
    with pytest.raises(DataError, match="another split"):
        load_candidates(tmp_path / "candidates.npy", len(s.test) + 1)
