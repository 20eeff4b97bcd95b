"""Writes are atomic: a failing writer (disk full) or kill -9 never leaves a half-written file, checkpoint,
bundle or run directory; the previous version stays whole and loadable."""

from __future__ import annotations

import errno
import importlib.util
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ncf._io import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text
from ncf.training import Trainer, make_optimizer, read_checkpoint, save_checkpoint

IO_FILE = Path(importlib.util.find_spec("ncf._io").origin)


def enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --------------------------------------------------------------------------------------------- ncf._io
def test_failed_file_write_keeps_the_old_content_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "config.toml"
    atomic_write_text(target, "old = 1\n")
    monkeypatch.setattr(os, "fsync", enospc)  # the data was partly written, then the disk was full
    with pytest.raises(OSError) as info:
        atomic_write_text(target, "new = 2\n" * 1000)
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old = 1\n"
    assert listing(tmp_path) == ["config.toml"]


def test_failed_atomic_path_keeps_the_old_file(tmp_path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert target.read_bytes() == b"old" and listing(tmp_path) == ["out.parquet"]


def test_failed_directory_write_leaves_nothing_or_the_old_directory(tmp_path):
    new = tmp_path / "fresh"
    with pytest.raises(OSError):
        with atomic_dir(new) as tmp:
            (tmp / "a.json").write_text("{}")
            enospc()
    assert listing(tmp_path) == []

    old = tmp_path / "bundle"
    old.mkdir()
    (old / "weights").write_bytes(b"v1")
    with pytest.raises(OSError):
        with atomic_dir(old, overwrite=True) as tmp:
            (tmp / "weights").write_bytes(b"v2-partial")
            enospc()
    assert listing(tmp_path) == ["bundle", "bundle/weights"] and (old / "weights").read_bytes() == b"v1"


_WRITER = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("ncf_io", sys.argv[1])
io = importlib.util.module_from_spec(spec); spec.loader.exec_module(io)
a, b = b"a" * (1 << 21), b"b" * (1 << 21)
print("ready", flush=True)
i = 0
while True:
    io.atomic_write_bytes(sys.argv[2], a if i % 2 else b)
    i += 1
"""


def test_kill_9_during_file_writes_never_leaves_a_partial_file(tmp_path):
    """A process rewriting a 2 MB file in a loop, killed at seeded random moments: the file is always whole."""
    target = tmp_path / "weights.bin"
    rng = random.Random(8)
    whole = {b"a" * (1 << 21), b"b" * (1 << 21)}
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(IO_FILE), str(target)], stdout=subprocess.PIPE)
        assert proc.stdout.readline().strip() == b"ready"
        while not target.exists():
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        proc.kill()
        proc.wait()
        proc.stdout.close()
        assert target.read_bytes() in whole
        # a temp file may be left beside it (kill -9 runs no cleanup), never in its place
        assert all(p.name.startswith(".weights.bin.") and p.name.endswith(".tmp") for p in tmp_path.iterdir()
                   if p != target)


# --------------------------------------------------------------------------------------------- checkpoints
class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(4))

    def forward(self, x):
        return x @ self.w


def _trainer(epochs: int = 3) -> Trainer:
    torch.manual_seed(0)
    x = torch.randn(200, 4)
    y = x @ torch.tensor([1.0, -1.0, 0.5, 2.0])
    mod = Tiny()

    def loss_step(m, batch):
        loss = torch.mean((m(batch[0]) - batch[1]) ** 2)
        return loss, loss

    return Trainer(mod, make_optimizer("sgd", mod.parameters(), 0.05), lambda rng: (x, y), loss_step, epochs=epochs,
                   batch_size=32, rng=np.random.default_rng(0), generator=torch.Generator().manual_seed(0))


def test_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    ck = tmp_path / "checkpoint"
    tr = _trainer()
    tr._one_epoch()
    save_checkpoint(tr, ck)
    before = {p.name: p.read_bytes() for p in ck.iterdir()}
    tr._one_epoch()

    import safetensors.numpy

    real = safetensors.numpy.save_file

    def partial_then_full(tensors, filename, *args, **kwargs):
        Path(filename).write_bytes(b"\x00" * 100)
        enospc()

    monkeypatch.setattr(safetensors.numpy, "save_file", partial_then_full)
    with pytest.raises(OSError):
        save_checkpoint(tr, ck)
    assert {p.name: p.read_bytes() for p in ck.iterdir()} == before
    assert listing(tmp_path) == ["checkpoint", "checkpoint/state.json", "checkpoint/state.safetensors"]
    arrays, meta = read_checkpoint(ck)
    assert meta["epoch"] == 1

    monkeypatch.setattr(safetensors.numpy, "save_file", real)
    save_checkpoint(tr, ck)
    assert read_checkpoint(ck)[1]["epoch"] == 2


# --------------------------------------------------------------------------------------------- bundles
def test_failed_bundle_write_keeps_the_old_bundle_loadable(tmp_path, monkeypatch):
    import safetensors.numpy

    from ncf.bundle import load_bundle, save_bundle
    from ncf.models import REGISTRY
    from tests.conftest import make_lowrank

    data = make_lowrank(n_users=30, n_items=20, density=0.3)
    est = REGISTRY["pop"]().fit(data)
    path = tmp_path / "model"
    save_bundle(est, path, train=data)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    monkeypatch.setattr(safetensors.numpy, "save_file", enospc)
    with pytest.raises(OSError):
        save_bundle(est, path, train=data)
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    loaded = load_bundle(path)
    users = np.arange(5)
    assert np.array_equal(loaded.score_users(users), est.score_users(users))
