"""Speed paths of the training loop give the updates of the plain paths: kept sparse-gradient buffers
(SparseGradSum) vs summing into fresh zeros, batches gathered in row order, the key filter of
sample_negatives, auto threads, glibc malloc tuning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import ncf.sampling as sampling
import ncf.training as T
from ncf.models.modules import NeuMF
from ncf.training import SparseGradSum, Trainer, _make_optimizer, auto_threads, sparse_embeddings

N_USERS, N_ITEMS = 300, 120


def _bce(module, batch):
    u, i, y = batch[0].long(), batch[1].long(), batch[2].float()
    loss = nn.functional.binary_cross_entropy_with_logits(module(u, i), y)
    return loss, loss


def _densify_sparse_grads(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    """The reference: each sparse gradient summed into fresh zeros with index_add_ (SparseGradSum must match)."""
    with torch.no_grad():
        for group in optimizer.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is not None and g.is_sparse:
                    p.grad = torch.zeros_like(p).index_add_(0, g._indices()[0], g._values())


def _train(hook, batch_size: int, steps: int = 12, set_to_none: bool = True, opt_name: str = "adam"):
    torch.manual_seed(0)
    m = NeuMF(N_USERS, N_ITEMS, factors=8, layers=(16, 8))
    sparse_embeddings(m, True)
    opt = _make_optimizer(opt_name, m.parameters(), 0.05)
    opt.register_step_pre_hook(hook)
    gen = np.random.default_rng(1)
    for _ in range(steps):
        u = torch.from_numpy(gen.integers(0, N_USERS, batch_size))
        i = torch.from_numpy(gen.integers(0, N_ITEMS, batch_size))
        y = torch.from_numpy((gen.random(batch_size) < 0.3).astype(np.float32))
        opt.zero_grad(set_to_none=set_to_none)
        _bce(m, (u, i, y))[1].backward()
        opt.step()
    return m.state_dict()


@pytest.mark.parametrize("batch_size", [7, 40, 900])  # few rows (index_fill_), many rows (zero_), more than the table
@pytest.mark.parametrize("opt_name", ["adam", "sgd"])
def test_kept_buffers_are_bit_identical_to_fresh_zeros(batch_size, opt_name):
    ref = _train(_densify_sparse_grads, batch_size, opt_name=opt_name)
    got = _train(SparseGradSum(), batch_size, opt_name=opt_name)
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_kept_buffers_with_grads_kept_between_steps():
    # zero_grad(set_to_none=False): autograd adds later sparse grads into the dense buffer itself
    ref = _train(_densify_sparse_grads, 40, set_to_none=False)
    got = _train(SparseGradSum(), 40, set_to_none=False)
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


def test_kept_buffer_zeroes_only_the_rows_of_the_last_step():
    p = nn.Parameter(torch.zeros(100, 3))
    hook = SparseGradSum()
    g1 = torch.sparse_coo_tensor(torch.tensor([[2, 5, 2]]), torch.ones(3, 3), (100, 3), check_invariants=True)
    buf = hook.accumulate(p, g1, fresh=True)
    assert buf[2].tolist() == [2.0, 2.0, 2.0] and buf[5].tolist() == [1.0, 1.0, 1.0] and buf.abs().sum() == 9
    g2 = torch.sparse_coo_tensor(torch.tensor([[7]]), torch.full((1, 3), 4.0), (100, 3), check_invariants=True)
    buf2 = hook.accumulate(p, g2, fresh=True)
    assert buf2 is buf  # kept, not reallocated
    assert buf[7].tolist() == [4.0, 4.0, 4.0] and buf.abs().sum() == 12  # rows 2 and 5 zeroed


def test_auto_threads_one_for_small_problems_all_cores_for_large():
    assert auto_threads(943 + 1682, 256, cores=8) == 1  # ml-100k defaults
    assert auto_threads(6040 + 3706, 4096, cores=8) == 1  # ml-1m
    assert auto_threads(162541 + 59047, 256, cores=8) == 8  # ml-25m tables
    assert auto_threads(1000, 65536, cores=2) == 2  # large batch
    assert auto_threads(162541 + 59047, 262144, cores=1) == 1


def _epoch_trainer(sort_min: int, monkeypatch, batch_size: int = 64):
    monkeypatch.setattr(T, "SORT_BATCH_MIN", sort_min)
    gen = np.random.default_rng(3)
    n = 2000
    tensors = (torch.from_numpy(np.sort(gen.integers(0, N_USERS, n)).astype(np.int32)),
               torch.from_numpy(gen.integers(0, N_ITEMS, n).astype(np.int32)),
               torch.from_numpy((gen.random(n) < 0.3).astype(np.uint8)))
    torch.manual_seed(0)
    m = NeuMF(N_USERS, N_ITEMS, factors=8, layers=(16, 8))
    opt = T.make_optimizer("adam", m.parameters(), 0.01)
    tr = Trainer(m, opt, lambda rng: tensors, _bce, epochs=2, batch_size=batch_size, rng=np.random.default_rng(0),
                 generator=torch.Generator().manual_seed(0))
    return tr.run()


def test_row_ordered_batches_give_the_same_training(monkeypatch):
    plain = _epoch_trainer(1 << 40, monkeypatch)
    ordered = _epoch_trainer(1, monkeypatch)
    again = _epoch_trainer(1, monkeypatch)
    for k, v in plain.module.state_dict().items():  # same batches, summed in another order
        assert torch.allclose(v, ordered.module.state_dict()[k], atol=1e-5), k
        assert torch.equal(ordered.module.state_dict()[k], again.module.state_dict()[k]), k  # deterministic
    assert abs(plain.history[-1]["train_loss"] - ordered.history[-1]["train_loss"]) < 1e-5


def test_large_batch_training_runs_with_malloc_tuning(monkeypatch):
    tr = _epoch_trainer(16, monkeypatch, batch_size=500)  # batch >= SORT_BATCH_MIN: tuning on (glibc)
    assert isinstance(T.tune_malloc(), bool)
    assert np.isfinite(tr.history[-1]["train_loss"])


def test_key_filter_draws_the_same_negatives(monkeypatch):
    gen = np.random.default_rng(5)
    n_users, n_items = 400, 50_000  # key space 2e7
    u = np.repeat(np.arange(n_users), 60)
    i = gen.integers(0, n_items, len(u))
    i[:5000] = np.arange(5000)  # user 0.. dense runs of items
    keys = np.unique(u.astype(np.int64) * n_items + i)
    plain = sampling.sample_negatives(u, n_items, keys, 5, np.random.default_rng(9))
    monkeypatch.setattr(sampling, "_BITMAP_MAX", 1 << 10)  # bitmap "does not fit": the filter path
    monkeypatch.setattr(sampling, "_FILTER_MIN_QUERIES", 1000)
    monkeypatch.setattr(sampling, "_FILTER_BITS", 1 << 16)  # small filter: many false alarms to resolve
    monkeypatch.setattr(sampling, "_CHECK_CHUNK", 4096)
    filt = sampling.sample_negatives(u, n_items, keys, 5, np.random.default_rng(9))
    assert np.array_equal(plain, filt)
    q = np.repeat(u.astype(np.int64), 5) * n_items + filt.reshape(-1)
    assert not np.isin(q, keys).any()
    f = sampling._KeyFilter(keys, n_items)
    qu, qi = gen.integers(0, n_users, 20000), gen.integers(0, n_items, 20000)
    qu[:3000], qi[:3000] = keys[:3000] // n_items, keys[:3000] % n_items  # known positives
    assert np.array_equal(f(qu, qi), np.isin(qu.astype(np.int64) * n_items + qi, keys))

