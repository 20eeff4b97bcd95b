"""Vectorised negative sampling: training negatives (redrawn per epoch) and fixed evaluation candidates."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ncf.errors import DataError


_BITMAP_MAX = 1 << 26  # entries (bytes) of the dense user x item bitmap used by is_positive
_CHECK_CHUNK = 1 << 23  # sampled negatives checked against the positives per chunk (sample_negatives)
_FILTER_BITS = 1 << 29  # bits (64 MB) of the key filter sample_negatives uses when the bitmap does not fit
_FILTER_MIN_QUERIES = 1 << 22  # ... and it draws at least this many negatives


class _RowUsers:
    """flat_users[j] = users[j // k] without materialising np.repeat(users, k)."""

    def __init__(self, users: np.ndarray, k: int) -> None:
        self.users, self.k = users, k

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        return self.users[idx // self.k]


def positive_keys(csr: sp.csr_matrix) -> np.ndarray:
    """Sorted int64 keys user * n_items + item of the non-zeros of a user x item CSR matrix."""
    n_items = np.int64(csr.shape[1])
    rows = np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))
    keys = rows * n_items + csr.indices.astype(np.int64)
    if len(keys) > 1 and not (keys[1:] >= keys[:-1]).all():
        keys.sort()
    return keys


def is_positive(keys: np.ndarray, users: np.ndarray, items: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean mask: is (users[j], items[j]) among the sorted positive keys."""
    q = users.astype(np.int64) * np.int64(n_items) + items.astype(np.int64)
    if len(keys) == 0:
        return np.zeros(len(q), dtype=bool)
    if len(q) >= 100_000:  # many queries: a dense bitmap beats binary search ~20x when it fits in memory
        space = int(max(keys[-1], q.max())) + 1
        if space <= _BITMAP_MAX:
            bitmap = np.zeros(space, dtype=bool)
            bitmap[keys] = True
            return bitmap[q]
    pos = np.searchsorted(keys, q)
    pos[pos == len(keys)] = len(keys) - 1
    return keys[pos] == q


class _KeyFilter:
    """Exact membership in sorted positive keys for many queries when the dense bitmap does not fit.

    A bit set over the low 29 bits of each key (64 MB) answers "certainly not a positive" for ~95% of the
    queries at ML-25M size; only the rest are binary-searched. Same answers as `is_positive`, ~4x faster
    (the binary search over 25M keys misses the cache on every probe)."""

    def __init__(self, keys: np.ndarray, n_items: int) -> None:
        self.keys, self.n_items, self.mask = keys, np.int64(n_items), np.int64(_FILTER_BITS - 1)
        low = keys & self.mask
        self.bits = np.zeros(_FILTER_BITS // 8, dtype=np.uint8)
        np.bitwise_or.at(self.bits, low >> 3, np.left_shift(1, low & 7).astype(np.uint8))

    def __call__(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        q = users.astype(np.int64) * self.n_items + items.astype(np.int64)
        low = q & self.mask
        maybe = np.flatnonzero((self.bits[low >> 3] >> (low & 7).astype(np.uint8)) & 1)
        out = np.zeros(len(q), dtype=bool)
        if len(maybe) and len(self.keys):
            qm = q[maybe]
            pos = np.searchsorted(self.keys, qm)
            pos[pos == len(self.keys)] = len(self.keys) - 1
            out[maybe] = self.keys[pos] == qm
        return out


def sample_negatives(
    users: np.ndarray,
    n_items: int,
    keys: np.ndarray,
    k: int,
    rng: np.random.Generator,
    max_rounds: int = 100,
) -> np.ndarray:
    """k uniform negative items per entry of `users`, none among that user's positives (`keys`).

    Returns an int32 array of shape (len(users), k). Draws are redrawn in vectorised rounds until no
    positive remains; a user who has interacted with every item raises DataError.
    """
    users = np.asarray(users)
    out = rng.integers(0, n_items, size=(len(users), k), dtype=np.int64)
    u64 = users.astype(np.int64)
    flat = out.reshape(-1)
    # positives checked in chunks of rows (same result; bounded temporaries: ML-25M x 4 negatives would
    # otherwise hold ~4 GB of int64 query/position arrays at once)
    rows = max(1, _CHECK_CHUNK // max(k, 1))
    big = len(flat) >= _FILTER_MIN_QUERIES and len(keys) and int(keys[-1]) + 1 > _BITMAP_MAX
    check = _KeyFilter(keys, n_items) if big else (lambda uu, ii: is_positive(keys, uu, ii, n_items))
    bad = np.concatenate([np.flatnonzero(check(np.repeat(u64[r:r + rows], k), flat[r * k:(r + rows) * k])) + r * k
                          for r in range(0, len(users), rows)] or [np.zeros(0, dtype=np.int64)])
    flat_users = _RowUsers(u64, k)
    rounds = 0
    while len(bad):
        rounds += 1
        if rounds > max_rounds:
            raise DataError("could not draw negatives: some user has interacted with (almost) every item",
                            "remove such users or lower the number of negatives")
        flat[bad] = rng.integers(0, n_items, size=len(bad), dtype=np.int64)
        still = check(flat_users[bad], flat[bad])
        bad = bad[still]
    return out.astype(np.int32)


def eval_candidates(test, keys_all: np.ndarray, n: int = 99, seed: int = 0) -> np.ndarray:
    """n fixed negative candidates per test row: (len(test), n) int32.

    `test` is an Interactions (or a (users, items, n_items) tuple); `keys_all` the sorted positive keys of
    ALL parts (train, valid, test: e.g. `Split.all_keys()`). No candidate is a positive of that user in any
    part, none repeats within a row. Draws extra items in vectorised rounds, rejects positives and
    in-row duplicates (first occurrence wins, so draw order stays random) and redraws only the short rows;
    rows that stay short (users with few negatives left) get an exact draw from their complement.
    """
    if isinstance(test, tuple):
        users, items = (np.asarray(a, dtype=np.int64) for a in test[:2])
        n_items = int(test[2])
    else:
        users, items = test.user_ids.astype(np.int64), test.item_ids.astype(np.int64)
        n_items = test.n_items
    return _eval_candidates(users, items, n_items, np.asarray(keys_all, dtype=np.int64), n, seed)


def _eval_candidates(users: np.ndarray, items: np.ndarray, n_items: int, keys: np.ndarray, n: int,
                     seed: int) -> np.ndarray:
    m = len(users)
    if n < 1:
        raise DataError(f"number of evaluation candidates must be >= 1, got {n}", "pass n=99")
    if m == 0:
        return np.zeros((0, n), dtype=np.int32)
    # feasibility: every test user needs n items outside their positives
    n_pos = np.bincount((keys // n_items).astype(np.int64), minlength=int(users.max()) + 1)
    short = n_items - n_pos[users] - (~is_positive(keys, users, items, n_items)).astype(np.int64) < n
    if short.any():
        raise DataError(f"{int(short.sum())} test rows' users have fewer than {n} items they never interacted with",
                        f"use fewer candidates than {int((n_items - n_pos[users]).min())} or full ranking")
    rng = np.random.default_rng(seed)
    out = np.empty((m, n), dtype=np.int64)
    todo = np.arange(m)
    extra = max(8, n // 4)
    for _ in range(4):
        if len(todo) == 0:
            break
        w = n + extra
        draw = rng.integers(0, n_items, size=(len(todo), w), dtype=np.int64)
        uu = np.repeat(users[todo], w)
        bad = is_positive(keys, uu, draw.ravel(), n_items).reshape(draw.shape)
        bad |= draw == items[todo, None]
        # duplicates within a row: stable sort, mark every repeat after the first occurrence
        order = np.argsort(draw, axis=1, kind="stable")
        srt = np.take_along_axis(draw, order, axis=1)
        rep = np.zeros_like(bad)
        rep[:, 1:] = srt[:, 1:] == srt[:, :-1]
        dup = np.zeros_like(bad)
        np.put_along_axis(dup, order, rep, axis=1)
        good = ~(bad | dup)
        ok = good.sum(axis=1) >= n
        rows = np.flatnonzero(ok)
        if len(rows):
            g = good[rows]
            take = g & (np.cumsum(g, axis=1) <= n)
            out[todo[rows]] = draw[rows][take].reshape(len(rows), n)
        todo = todo[~ok]
        extra *= 2
    if len(todo):  # dense users: exact draw from each row's complement via random keys
        for start in range(0, len(todo), 256):
            rows = todo[start:start + 256]
            r = rng.random((len(rows), n_items))
            grid_items = np.broadcast_to(np.arange(n_items, dtype=np.int64), r.shape)
            pos = is_positive(keys, np.repeat(users[rows], n_items), grid_items.ravel(), n_items).reshape(r.shape)
            pos[np.arange(len(rows)), items[rows]] = True
            r[pos] = 2.0
            out[rows] = np.argpartition(r, n - 1, axis=1)[:, :n]
    return out.astype(np.int32)


def save_candidates(path, candidates: np.ndarray):
    """Write evaluation candidates as .npy atomically (no pickle)."""
    from ncf._io import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.ascontiguousarray(candidates, dtype=np.int32), allow_pickle=False)
    return path


def load_candidates(path, n_rows: int | None = None) -> np.ndarray:
    """Read candidates written by save_candidates; checks the row count against the test part when given."""
    try:
        cand = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read evaluation candidates from {path} ({exc})", "re-run the split/training") from None
    if cand.ndim != 2 or (n_rows is not None and len(cand) != n_rows):
        raise DataError(f"{path} holds candidates of shape {cand.shape}, expected ({n_rows}, n)",
                        "the candidates belong to another split; re-run the split/training")
    return cand.astype(np.int32, copy=False)
