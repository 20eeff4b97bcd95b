import numpy as np

from ncf.models.base import top_k
from ncf.sampling import positive_keys, sample_negatives
from tests.conftest import make_lowrank


def test_training_negatives_avoid_positives_and_cover_items():
    data = make_lowrank(n_users=50, n_items=40, density=0.3)
    csr = data.csr()
    keys = positive_keys(csr)
    rng = np.random.default_rng(0)
    neg = sample_negatives(data.user_ids, data.n_items, keys, 4, rng)
    assert neg.shape == (len(data), 4)
    dense = csr.toarray() > 0
    assert not dense[np.repeat(data.user_ids, 4), neg.ravel()].any()
    assert len(np.unique(neg)) > 30


def test_top_k_orders_and_breaks_ties_by_index():
    scores = np.array([[0.1, 0.9, 0.5, 0.9], [3, 2, 1, 0]], dtype=np.float32)
    ids, vals = top_k(scores, 3)
    assert ids.tolist() == [[1, 3, 2], [0, 1, 2]]
    ids, vals = top_k(scores, 6)
    assert ids[0].tolist() == [1, 3, 2, 0, -1, -1]
