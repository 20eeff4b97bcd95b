"""Large-table paths: sparse embedding gradients with lazy Adam (sparse="auto"|True|False) learn, are
deterministic and resume bit for bit; factorised full-ranking scores equal the pairwise scores."""

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
from ncf.training import SparseDenseAdam, make_optimizer, sparse_embeddings
from tests.conftest import make_lowrank

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
    dense = NeuMFEstimator(**KW, epochs=6, sparse=False).fit(loo.train, loo.valid)
    a = NeuMFEstimator(**KW, epochs=6, sparse=True).fit(loo.train, loo.valid)
    b = NeuMFEstimator(**KW, epochs=6, sparse=True).fit(loo.train, loo.valid)
    assert a.module_.gmf_user_embedding.sparse and not dense.module_.gmf_user_embedding.sparse
    for (k, x), (_, y) in zip(a.module_.state_dict().items(), b.module_.state_dict().items()):
        assert torch.equal(x, y), k
    hr_dense, hr_sparse = _hr(dense, loo), _hr(a, loo)
    assert hr_sparse > hr_dense - 0.05, (hr_sparse, hr_dense)
    assert a.history_["train_loss"].iloc[-1] < a.history_["train_loss"].iloc[0]


def test_sparse_auto_switches_on_for_large_tables(loo, monkeypatch):
    small = NeuMFEstimator(**KW, epochs=1).fit(loo.train)
    assert not small.module_.mlp_item_embedding.sparse  # users + items well under SPARSE_ROWS
    monkeypatch.setattr(mod, "SPARSE_ROWS", 10)
    big = NeuMFEstimator(**KW, epochs=1).fit(loo.train)
    assert big.module_.mlp_item_embedding.sparse
    sgd = NeuMFEstimator(**(KW | {"lr": 0.05}), epochs=1, optimizer="sgd").fit(loo.train)  # auto: only with adam
    assert not sgd.module_.mlp_item_embedding.sparse
    with pytest.raises(UsageError):
        NeuMFEstimator(**KW, epochs=1, optimizer="sgd", sparse=True).fit(loo.train)
    with pytest.raises(UsageError):
        NeuMFEstimator(**KW, epochs=1, sparse="yes").fit(loo.train)


def test_sparse_resume_after_crash_is_bit_identical(tmp_path, loo, monkeypatch):
    kw = KW | {"epochs": 4, "dropout": 0.1, "lr_schedule": "cosine", "sparse": True,
               "checkpoint_dir": str(tmp_path / "ck")}
    full = NeuMFEstimator(**(kw | {"checkpoint_dir": str(tmp_path / "full")})).fit(loo.train, loo.valid)
    real = mod.save_checkpoint

    def crash_after_two(trainer, directory, extra=None):
        real(trainer, directory, extra)
        if trainer.epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(mod, "save_checkpoint", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        NeuMFEstimator(**kw).fit(loo.train, loo.valid)
    monkeypatch.setattr(mod, "save_checkpoint", real)
    torch.manual_seed(123)  # everything must come from the checkpoint
    resumed = NeuMFEstimator(**kw, resume=True).fit(loo.train, loo.valid)
    for (k, a), (_, b) in zip(full.module_.state_dict().items(), resumed.module_.state_dict().items()):
        assert torch.equal(a, b), k
    cols = ["train_loss", "train_loss_eval", "val_loss", "val_hr@10", "val_ndcg@10"]
    pd.testing.assert_frame_equal(full.history_[cols], resumed.history_[cols], check_exact=True)


def test_sparse_dense_adam_updates_only_the_batch_rows():
    torch.manual_seed(0)
    m = NeuMF(50, 40, factors=4, layers=(8, 4))
    before = m.gmf_user_embedding.weight.detach().clone()
    opt = make_optimizer("adam", m.parameters(), 0.1, sparse_params=sparse_embeddings(m, True))
    assert isinstance(opt, SparseDenseAdam) and len(opt.param_groups) == 2
    users = torch.tensor([3, 7, 7])
    m(users, torch.tensor([1, 2, 3])).sum().backward()
    opt.step()
    changed = (m.gmf_user_embedding.weight.detach() != before).any(dim=1)
    assert changed.nonzero().view(-1).tolist() == [3, 7]
