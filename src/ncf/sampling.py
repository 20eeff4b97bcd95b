"""Vectorised negative sampling: training negatives (redrawn per epoch) and fixed evaluation candidates."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ncf.errors import DataError


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
    pos = np.searchsorted(keys, q)
    pos[pos == len(keys)] = len(keys) - 1
    return keys[pos] == q


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
    flat_users = np.repeat(users.astype(np.int64), k)
    flat = out.reshape(-1)
    bad = np.flatnonzero(is_positive(keys, flat_users, flat, n_items))
    rounds = 0
    while len(bad):
        rounds += 1
        if rounds > max_rounds:
            raise DataError("could not draw negatives: some user has interacted with (almost) every item",
                            "remove such users or lower the number of negatives")
        flat[bad] = rng.integers(0, n_items, size=len(bad), dtype=np.int64)
        still = is_positive(keys, flat_users[bad], flat[bad], n_items)
        bad = bad[still]
    return out.astype(np.int32)
