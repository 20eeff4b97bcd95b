"""Large-table paths: sparse embedding gradients (sparse="auto"|True|False) give the update of dense
gradients, are deterministic and resume bit for bit; factorised full-ranking scores equal the pairwise ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ncf.models.ncf_estimator as mod
from ncf.errors import UsageError
from ncf.models.modules import MLP, NeuMF, ScoreModule
from ncf.models.ncf_estimator import NeuMFEstimator, rank_metrics
from ncf.sampling import eval_candidates
from ncf.split import split_data
from ncf.training import make_optimizer, sparse_embeddings
from tests.conftest import fit_crash_resume, make_lowrank

KW = {"factors": 8, "layers": [16, 8], "batch_size": 256, "lr": 0.02, "val_candidates": 20}


@pytest.fixture(scope="module")
def loo():
    return split_data(make_lowrank(), "loo", seed=0)


def _hr(est, split) -> float:
    cands = eval_candidates(split.test, split.all_keys(), n=50, seed=0).astype(np.int64)
    pos = est.predict(split.test.user_ids, split.test.item_ids)
    neg = est.predict(np.repeat(split.test.user_ids, cands.shape[1]), cands.ravel()).reshape(cands.shape)
    return rank_metrics(pos, neg, 10)["hr"]


def test_sparse_learns_like_dense_and_is_deterministic(loo):
    """Same update as dense gradients: only the summation order of repeated rows differs (float rounding)."""
    dense = NeuMFEstimator(**KW, epochs=6, sparse=False).fit(loo.train, loo.valid)
    a = NeuMFEstimator(**KW, epochs=6, sparse=True).fit(loo.train, loo.valid)
    b = NeuMFEstimator(**KW, epochs=6, sparse=True).fit(loo.train, loo.valid)
    assert a.module_.gmf_user_embedding.sparse and not dense.module_.gmf_user_embedding.sparse
    for (k, x), (_, y) in zip(a.module_.state_dict().items(), b.module_.state_dict().items()):
        assert torch.equal(x, y), k
    hr_dense, hr_sparse = _hr(dense, loo), _hr(a, loo)
    assert abs(hr_sparse - hr_dense) < 0.03, (hr_sparse, hr_dense)
    np.testing.assert_allclose(a.history_["train_loss"], dense.history_["train_loss"], rtol=1e-3)
    assert a.history_["train_loss"].iloc[-1] < a.history_["train_loss"].iloc[0]


def test_sparse_auto_switches_on_for_large_tables(loo, monkeypatch):
    small = NeuMFEstimator(**KW, epochs=1).fit(loo.train)
    assert not small.module_.mlp_item_embedding.sparse  # users + items well under SPARSE_ROWS
    monkeypatch.setattr(mod, "SPARSE_ROWS", 10)
    big = NeuMFEstimator(**KW, epochs=1).fit(loo.train)
    assert big.module_.mlp_item_embedding.sparse
    sgd = NeuMFEstimator(**(KW | {"lr": 0.05}), epochs=1, optimizer="sgd", sparse=True).fit(loo.train)
    assert sgd.module_.mlp_item_embedding.sparse  # any optimizer: the gradients it sees are dense
    with pytest.raises(UsageError):
        NeuMFEstimator(**KW, epochs=1, sparse="yes").fit(loo.train)


def test_sparse_resume_after_crash_is_bit_identical(tmp_path, loo, monkeypatch):
    kw = KW | {"epochs": 4, "dropout": 0.1, "lr_schedule": "cosine", "sparse": True,
               "checkpoint_dir": str(tmp_path / "ck")}
    full, resumed = fit_crash_resume(NeuMFEstimator, kw, loo.train, loo.valid, monkeypatch)
    for (k, a), (_, b) in zip(full.module_.state_dict().items(), resumed.module_.state_dict().items()):
        assert torch.equal(a, b), k
    cols = ["train_loss", "train_loss_eval", "val_loss", "val_hr@10", "val_ndcg@10"]
    pd.testing.assert_frame_equal(full.history_[cols], resumed.history_[cols], check_exact=True)


@pytest.mark.parametrize("name", ["adam", "adamw", "sgd", "adagrad"])
def test_one_step_with_sparse_gradients_equals_dense(name):
    steps = []
    for sparse in (False, True):
        torch.manual_seed(0)
        m = NeuMF(50, 40, factors=4, layers=(8, 4))
        sparse_embeddings(m, sparse)
        opt = make_optimizer(name, m.parameters(), 0.1, sparse_grads=sparse)
        for users, items in (([3, 7, 7], [1, 2, 1]), ([0, 3], [5, 5])):
            opt.zero_grad(set_to_none=True)
            m(torch.tensor(users), torch.tensor(items)).pow(2).sum().backward()
            opt.step()
        steps.append(m.state_dict())
    for k in steps[0]:
        torch.testing.assert_close(steps[1][k], steps[0][k], rtol=1e-6, atol=1e-7, msg=k)


@pytest.mark.parametrize("cls,kw", [(MLP, {"layers": (16, 8, 4), "dropout": 0.2}),
                                    (MLP, {"layers": (16, 8), "batch_norm": True, "biases": True}),
                                    (NeuMF, {"factors": 6, "layers": (16, 8, 4), "dropout": 0.1}),
                                    (NeuMF, {"factors": 4, "layers": (8, 4), "batch_norm": True, "biases": True,
                                             "output_activation": "relu"})])
def test_factorised_score_all_equals_pairwise(cls, kw, monkeypatch):
    import ncf.models.modules as modules

    torch.manual_seed(0)
    m = cls(30, 257, **kw)
    with torch.no_grad():  # non-trivial biases and batch-norm statistics
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for buf in m.buffers():
            if buf.dtype.is_floating_point:
                buf.add_(0.2 * torch.rand_like(buf))
    m.eval()
    monkeypatch.setattr(modules, "PAIRS_PER_CHUNK", 100)  # several item chunks, a ragged last one
    users = torch.tensor([0, 5, 29, 5])
    with torch.no_grad():
        fast = m.score_all(users)
        pairwise = ScoreModule.score_all(m, users)
    assert fast.shape == (4, 257)
    torch.testing.assert_close(fast, pairwise, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the single-layer MLP (no hidden Linear) falls back to pairwise
        one = MLP(30, 257, layers=(8,)).eval()
        torch.testing.assert_close(one.score_all(users), ScoreModule.score_all(one, users))
