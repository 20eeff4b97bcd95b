"""Splitters (random, leave-one-out, temporal, k-fold) and a leakage audit.

Every splitter is deterministic given `seed`, vectorised (lexsort + group boundaries, no per-user loop),
and returns parts built with `Interactions.subset`, so train/valid/test share one id space.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ncf.data import Interactions
from ncf.errors import DataError, UsageError, closest

METHODS = ("random", "loo", "temporal", "kfold")
TIE_BREAKS = ("row", "item", "first_seen")


@dataclass(eq=False)
class Split:
    """Train / validation / test parts of one dataset over the same id space."""

    train: Interactions
    valid: Interactions | None
    test: Interactions
    method: str
    seed: int
    params: dict[str, Any] = field(default_factory=dict)

    def parts(self) -> list[Interactions]:
        """The non-empty parts, train first."""
        return [p for p in (self.train, self.valid, self.test) if p is not None]

    def all_keys(self) -> np.ndarray:
        """Sorted int64 keys user * n_items + item of every interaction in any part (for eval_candidates)."""
        n_items = np.int64(self.train.n_items)
        keys = np.concatenate([p.user_ids.astype(np.int64) * n_items + p.item_ids for p in self.parts()])
        return np.unique(keys)

    def train_valid(self) -> Interactions:
        """Train and validation together (e.g. to refit before the final test)."""
        return self.train if self.valid is None or len(self.valid) == 0 else self.train.concat(self.valid)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": 0 if self.valid is None else len(self.valid), "test": len(self.test)}


# --------------------------------------------------------------------------- helpers
def _group_rank(users: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows sorted by `order` (grouped by user), each row's 0-based position within its user and user size.

    Returns (pos, count) aligned with the ORIGINAL row indices.
    """
    n = len(order)
    u_sorted = users[order]
    starts = np.ones(n, dtype=bool)
    if n > 1:
        starts[1:] = u_sorted[1:] != u_sorted[:-1]
    start_idx = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1
    sizes = np.diff(np.append(start_idx, n))
    pos_sorted = np.arange(n) - start_idx[group]
    pos = np.empty(n, dtype=np.int64)
    count = np.empty(n, dtype=np.int64)
    pos[order] = pos_sorted
    count[order] = sizes[group]
    return pos, count


def _parts(data: Interactions, part: np.ndarray, method: str, seed: int, params: dict, with_valid: bool) -> Split:
    """Build a Split from a per-row label array: 0 train, 1 valid, 2 test (rows keep file order)."""
    train = data.subset(np.flatnonzero(part == 0), name=f"{data.name}:train")
    valid = data.subset(np.flatnonzero(part == 1), name=f"{data.name}:valid") if with_valid else None
    test = data.subset(np.flatnonzero(part == 2), name=f"{data.name}:test")
    if len(test) == 0:
        raise DataError(f"the {method} split left the test part empty ({len(data)} interactions)",
                        "use more data or a larger test fraction")
    return Split(train, valid, test, method, seed, params)


def _check_frac(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise UsageError(f"{name} must be in [0, 1), got {value}", f"pass e.g. {name}=0.2")
    return value


def _need_timestamps(data: Interactions, method: str) -> np.ndarray:
    if data.timestamps is None:
        raise DataError(f"the {method} split needs timestamps but '{data.name}' has none",
                        "load a timestamp column or use --split random")
    return data.timestamps


# --------------------------------------------------------------------------- splitters
def random_split(data: Interactions, test_size: float = 0.2, valid_size: float = 0.1, stratify: bool = True,
                 seed: int = 0) -> Split:
    """Random holdout. `stratify=True`: each user contributes round(test_size * n_u) test rows (always keeping
    one in train), like sklearn's train_test_split(stratify=user); else a global random sample.
    `valid_size` is the fraction carved from the remaining train rows, by the same rule."""
    test_size, valid_size = _check_frac("test_size", test_size), _check_frac("valid_size", valid_size)
    rng = np.random.default_rng(seed)
    n = len(data)
    part = np.zeros(n, dtype=np.int8)
    if stratify:
        noise = rng.random(n)
        order = np.lexsort((noise, data.user_ids))
        pos, count = _group_rank(data.user_ids, order)
        n_test = np.minimum(np.round(test_size * count).astype(np.int64), count - 1)
        n_valid = np.minimum(np.round(valid_size * (count - n_test)).astype(np.int64), count - n_test - 1)
        n_valid = np.maximum(n_valid, 0)
        part[pos < n_test] = 2
        part[(pos >= n_test) & (pos < n_test + n_valid)] = 1
    else:
        perm = rng.permutation(n)
        n_test = int(round(test_size * n))
        n_valid = int(round(valid_size * (n - n_test)))
        part[perm[:n_test]] = 2
        part[perm[n_test:n_test + n_valid]] = 1
    params = {"test_size": test_size, "valid_size": valid_size, "stratify": bool(stratify)}
    return _parts(data, part, "random", seed, params, with_valid=valid_size > 0)


def loo_split(data: Interactions, valid: bool = True, tie_break: str = "row", seed: int = 0) -> Split:
    """Leave-one-out by time: each user's latest interaction is test, the next latest validation.

    Timestamp ties: `tie_break="row"` (default, RecBole's stable sort) counts the later row in the file as
    later; `"item"` counts the larger inner item id (sorted raw ids) as later; `"first_seen"` counts the item
    whose first row in the file comes later as later (the order of RecBole's remapped item ids). Every user keeps at least one training row:
    a user with 2 interactions gets no validation row, a user with 1 stays in train only.
    """
    ts = _need_timestamps(data, "leave-one-out")
    if tie_break not in TIE_BREAKS:
        raise UsageError(f"unknown tie_break '{tie_break}'", f"use one of {', '.join(TIE_BREAKS)}")
    if tie_break == "row":
        second = np.arange(len(data))
    elif tie_break == "item":
        second = data.item_ids
    else:  # first_seen: items ordered by their first row in the file (RecBole's remapped item ids)
        first = np.full(data.n_items, len(data), dtype=np.int64)
        np.minimum.at(first, data.item_ids, np.arange(len(data)))
        second = first[data.item_ids]
    order = np.lexsort((second, ts, data.user_ids))
    pos, count = _group_rank(data.user_ids, order)
    from_end = count - 1 - pos
    part = np.zeros(len(data), dtype=np.int8)
    part[(from_end == 0) & (count >= 2)] = 2
    if valid:
        part[(from_end == 1) & (count >= 3)] = 1
    params = {"valid": bool(valid), "tie_break": tie_break, "tied_users": tied_latest_users(data)}
    return _parts(data, part, "loo", seed, params, with_valid=valid)


def temporal_split(data: Interactions, test_frac: float = 0.2, valid_frac: float = 0.1,
                   test_time: int | None = None, valid_time: int | None = None, seed: int = 0) -> Split:
    """Global time cutoffs: rows at or after `test_time` are test, rows in [valid_time, test_time) validation.

    Without explicit times the cutoffs are the timestamps at the (1 - test_frac) and
    (1 - test_frac - valid_frac) quantiles of the rows; ties at a cutoff go to the later part.
    """
    ts = _need_timestamps(data, "temporal")
    n = len(data)
    srt = np.sort(ts)
    if test_time is None:
        test_frac = _check_frac("test_frac", test_frac)
        test_time = int(srt[min(n - 1, int(np.floor(n * (1 - test_frac))))])
    if valid_time is None:
        valid_frac = _check_frac("valid_frac", valid_frac)
        valid_time = int(srt[min(n - 1, int(np.floor(n * (1 - test_frac - valid_frac))))]) if valid_frac > 0 else test_time
    if valid_time > test_time:
        raise UsageError(f"valid_time {valid_time} is after test_time {test_time}", "the validation cutoff must come first")
    part = np.zeros(n, dtype=np.int8)
    part[ts >= valid_time] = 1
    part[ts >= test_time] = 2
    params = {"test_time": int(test_time), "valid_time": int(valid_time), "test_frac": test_frac, "valid_frac": valid_frac}
    return _parts(data, part, "temporal", seed, params, with_valid=valid_time < test_time)


def kfold(data: Interactions, k: int = 5, seed: int = 0) -> Iterator[Split]:
    """k folds over interactions (shuffled with `seed`); yields k Splits with valid=None."""
    for fold in range(k):
        yield kfold_split(data, k=k, fold=fold, seed=seed)


def kfold_split(data: Interactions, k: int = 5, fold: int = 0, seed: int = 0) -> Split:
    """Fold `fold` of a shuffled k-fold partition of the interactions as a Split (valid=None)."""
    if k < 2:
        raise UsageError(f"k-fold needs k >= 2, got {k}", "pass k=5")
    if not 0 <= fold < k:
        raise UsageError(f"fold must be in 0..{k - 1}, got {fold}", "pick a fold index below k")
    perm = np.random.default_rng(seed).permutation(len(data))
    fold_of = np.empty(len(data), dtype=np.int64)
    fold_of[perm] = np.arange(len(data)) * k // max(len(data), 1)  # contiguous chunks of the permutation
    part = np.where(fold_of == fold, 2, 0).astype(np.int8)
    return _parts(data, part, "kfold", seed, {"k": k, "fold": fold}, with_valid=False)


def split_data(data: Interactions, method: str = "loo", seed: int = 0, **params: Any) -> Split:
    """Split by method name: "loo", "random", "temporal" or "kfold" (params go to the splitter)."""
    funcs = {"random": random_split, "loo": loo_split, "temporal": temporal_split, "kfold": kfold_split}
    if method not in funcs:
        guess = closest(method, list(funcs))
        raise UsageError(f"unknown split method '{method}'", f"did you mean '{guess}'?" if guess else f"use one of {', '.join(funcs)}")
    try:
        return funcs[method](data, seed=seed, **params)
    except TypeError as exc:
        raise UsageError(f"bad parameter for the {method} split: {exc}", "check the split parameters") from None


# --------------------------------------------------------------------------- audit
def tied_latest_users(data: Interactions) -> int:
    """Number of users whose latest timestamp is shared by two or more of their interactions."""
    if data.timestamps is None or len(data) == 0:
        return 0
    order = np.lexsort((data.timestamps, data.user_ids))
    u, t = data.user_ids[order], data.timestamps[order]
    last = np.ones(len(u), dtype=bool)
    last[:-1] = u[1:] != u[:-1]
    li = np.flatnonzero(last)
    prev_same = np.zeros(len(li), dtype=bool)
    ok = li > 0
    prev_same[ok] = (u[li[ok] - 1] == u[li[ok]]) & (t[li[ok] - 1] == t[li[ok]])
    return int(prev_same.sum())


def _keys(p: Interactions) -> np.ndarray:
    return np.unique(p.user_ids.astype(np.int64) * np.int64(p.n_items) + p.item_ids)


def audit(split: Split) -> dict[str, Any]:
    """Leakage audit: shared (user, item) pairs between parts, cold users/items, time order, ties.

    Keys: sizes, pairs_train_valid / pairs_train_test / pairs_valid_test (should be 0),
    cold_users_valid / cold_items_valid / cold_users_test / cold_items_test (ids absent from train),
    test_older_than_train (temporal: test rows older than the newest train row; should be 0),
    test_before_user_train (test rows older than the same user's newest train row; 0 under loo),
    tied_users (users with tied latest timestamps; loo only).
    """
    tr, va, te = split.train, split.valid, split.test
    out: dict[str, Any] = {"method": split.method, "seed": split.seed, **split.sizes(),
                           "users_test": int(len(np.unique(te.user_ids)))}
    kt, kv, ke = _keys(tr), _keys(va) if va is not None else np.zeros(0, np.int64), _keys(te)
    out["pairs_train_valid"] = int(len(np.intersect1d(kt, kv, assume_unique=True)))
    out["pairs_train_test"] = int(len(np.intersect1d(kt, ke, assume_unique=True)))
    out["pairs_valid_test"] = int(len(np.intersect1d(kv, ke, assume_unique=True)))
    tr_users = tr.user_counts() > 0
    tr_items = tr.item_counts() > 0
    for name, p in (("valid", va), ("test", te)):
        if p is None:
            continue
        out[f"cold_users_{name}"] = int(len(np.setdiff1d(np.unique(p.user_ids), np.flatnonzero(tr_users))))
        out[f"cold_items_{name}"] = int(len(np.setdiff1d(np.unique(p.item_ids), np.flatnonzero(tr_items))))
    if tr.timestamps is not None and te.timestamps is not None:
        if split.method == "temporal":
            out["test_older_than_train"] = int((te.timestamps < tr.timestamps.max()).sum()) if len(tr) else 0
        newest = np.full(tr.n_users, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(newest, tr.user_ids, tr.timestamps)
        out["test_before_user_train"] = int((te.timestamps < newest[te.user_ids]).sum())
    if split.method == "loo":
        out["tie_break"] = split.params.get("tie_break")
        out["tied_users"] = int(split.params.get("tied_users", 0))
    return out
