"""The epoch loop: losses, early stopping with restore, determinism, checkpoint + bit-identical resume."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from ncf import losses
from ncf.errors import UsageError
from ncf.training import Trainer, make_optimizer, make_scheduler, read_checkpoint, save_checkpoint


def test_losses_match_hand_computed_values():
    p, t = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 0.0])
    assert float(losses.mse(p, t)) == pytest.approx((1 + 9) / 2)
    assert float(losses.mae(p, t)) == pytest.approx((1 + 3) / 2)
    assert float(losses.huber(p, t)) == pytest.approx((0.5 * 1 + (3 - 0.5)) / 2)
    z, y = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    assert float(losses.bce(z, y)) == pytest.approx((math.log(2) + math.log(1 + math.e ** 2)) / 2, rel=1e-6)
    assert float(losses.bpr(torch.tensor([1.0]), torch.tensor([1.0]))) == pytest.approx(math.log(2))
    # sampled softmax: row 1 ties with 3 negatives -> log 4; row 2: 2 vs one negative at 0 -> log(1 + e^-2)
    pos, neg = torch.tensor([0.0, 2.0]), torch.tensor([[0.0, 0.0, 0.0], [0.0, -1e9, -1e9]])
    assert float(losses.softmax(pos, neg)) == pytest.approx((math.log(4) + math.log(1 + math.e ** -2)) / 2, rel=1e-6)
    assert losses.get_loss("softmax", "ranking") is losses.softmax
    with pytest.raises(UsageError):
        losses.get_loss("bce", "rating")


class Lin(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(3))
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        return self.drop(x) @ self.w


def _problem(seed=0, **kw):
    torch.manual_seed(seed)
    x = torch.randn(500, 3)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    mod = Lin()

    def make_epoch(rng):
        noise = torch.from_numpy(rng.normal(scale=0.01, size=500).astype(np.float32))
        return x, y + noise

    def loss_step(m, batch):
        loss = losses.mse(m(batch[0]), batch[1])
        return loss, loss

    opt = make_optimizer(kw.pop("optimizer", "adam"), mod.parameters(), 0.05)
    tr = Trainer(mod, opt, make_epoch, loss_step, epochs=kw.pop("epochs", 6), batch_size=64,
                 rng=np.random.default_rng(seed), generator=torch.Generator().manual_seed(seed),
                 scheduler=make_scheduler(kw.pop("schedule", "cosine"), opt, 6), **kw)
    return tr


def test_trainer_learns_and_history_columns():
    tr = _problem(evaluate=lambda m: {"val_loss": 0.0}).run()
    assert [r["epoch"] for r in tr.history] == [1, 2, 3, 4, 5, 6]
    assert tr.history[-1]["train_loss"] < tr.history[0]["train_loss"] / 2
    assert tr.n_iter == 6 * math.ceil(500 / 64)
    assert tr.history[0]["lr"] == pytest.approx(0.05) and tr.history[-1]["lr"] < 0.05  # cosine schedule
    assert {"seconds", "samples_per_s", "val_loss"} <= set(tr.history[0])


def test_trainer_is_deterministic():
    def run():
        with torch.random.fork_rng():
            torch.manual_seed(3)
            tr = _problem().run()
        return [r["train_loss"] for r in tr.history], tr.module.w.detach().clone()

    (h1, w1), (h2, w2) = run(), run()
    assert h1 == h2 and torch.equal(w1, w2)


def test_early_stopping_restores_best_weights():
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.9, 0.9])
    seen = {}

    def evaluate(m):
        s = next(scores)
        seen[len(seen) + 1] = m.w.detach().clone()
        return {"val_hr@10": s}

    tr = _problem(evaluate=evaluate, monitor="val_hr@10", mode="max", patience=2).run()
    assert len(tr.history) == 4  # epochs 3 and 4 do not improve on epoch 2
    assert tr.best_epoch == 2 and tr.stopped
    assert torch.equal(tr.module.w.detach(), seen[2])


def test_bad_arguments_raise():
    with pytest.raises(UsageError):
        make_optimizer("rmsprop", [nn.Parameter(torch.zeros(1))], 0.1)
    with pytest.raises(UsageError):
        make_scheduler("linear", torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 3)
    with pytest.raises(UsageError):
        _problem(epochs=0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "adagrad", "adamw"])
def test_checkpoint_resume_is_bit_identical(tmp_path, optimizer):
    with torch.random.fork_rng():
        torch.manual_seed(0)
        full = _problem(optimizer=optimizer, evaluate=lambda m: {"val_loss": 0.0}).run()
    ck = tmp_path / "ck"

    class Crash(Exception):
        pass

    def save_then_crash(tr):
        save_checkpoint(tr, ck)
        if tr.epoch == 3:
            raise Crash

    with torch.random.fork_rng():
        torch.manual_seed(0)
        with pytest.raises(Crash):
            _problem(optimizer=optimizer, evaluate=lambda m: {"val_loss": 0.0}, callbacks=[save_then_crash]).run()
    with torch.random.fork_rng():
        torch.manual_seed(123)  # a different process state: everything must come from the checkpoint
        resumed = _problem(seed=0, optimizer=optimizer, evaluate=lambda m: {"val_loss": 0.0})
        arrays, meta = read_checkpoint(ck)
        resumed.load_state(arrays, meta)
        assert resumed.epoch == 3
        resumed.run()
    assert torch.equal(resumed.module.w.detach(), full.module.w.detach())
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert read_checkpoint(tmp_path / "none") is None
