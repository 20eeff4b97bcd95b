"""Data-parallel training (torchrun + DDP over gloo), device plumbing, and the Trainer's shard arithmetic."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ncf import distributed
from ncf.distributed import DistContext
from ncf.errors import UsageError
from ncf.models.ncf_estimator import resolve_device
from ncf.training import Trainer
from tests.conftest import make_lowrank

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------- shards
@pytest.mark.parametrize("n,world", [(10, 2), (11, 2), (7, 3), (1000, 4)])
def test_shards_are_equal_disjoint_and_cover_all_but_the_remainder(n: int, world: int) -> None:
    bounds = [DistContext(r, world, r, "gloo").shard(n) for r in range(world)]
    sizes = {hi - lo for lo, hi in bounds}
    assert sizes == {n // world}
    covered = np.concatenate([np.arange(lo, hi) for lo, hi in bounds])
    assert len(np.unique(covered)) == len(covered) == world * (n // world)


def test_shard_refuses_fewer_rows_than_processes() -> None:
    with pytest.raises(UsageError, match="cannot be split over 4 processes"):
        DistContext(0, 4, 0, "gloo").shard(3)


def test_not_distributed_without_torchrun(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed.init_from_env("cpu") is None
    assert distributed.is_main() and distributed.current() is None
    with distributed.data_parallel() as ctx:
        assert ctx is None


# ---------------------------------------------------------------------------- device plumbing
def test_device_flags_resolve_on_a_cpu_machine() -> None:
    if torch.cuda.is_available():  # pragma: no cover - this suite runs on CPU
        pytest.skip("checks the no-CUDA paths")
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert not distributed.wants_cuda("auto") and distributed.wants_cuda("cuda:1")
    assert distributed.local_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(UsageError, match="CUDA is not available"):
        resolve_device("cuda")


def _tiny_trainer(amp: bool, device: str = "cpu") -> Trainer:
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 1)
    x, y = torch.randn(64, 3), torch.randn(64)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    return Trainer(module, opt, lambda rng: (x, y), lambda m, b: (((m(b[0]).squeeze(1) - b[1]) ** 2).mean(),) * 2,
                   epochs=2, batch_size=16, rng=np.random.default_rng(0), generator=torch.Generator().manual_seed(0),
                   amp=amp, device=device)


def test_amp_is_a_no_op_on_cpu_and_batches_equal_the_unsharded_order() -> None:
    a, b = _tiny_trainer(amp=False).run(), _tiny_trainer(amp=True).run()
    assert not b.amp  # bf16 autocast only on CUDA
    for p, q in zip(a.module.parameters(), b.module.parameters()):
        assert torch.equal(p, q)
    # single process: the epoch's rows are one full permutation
    assert sorted(a.epoch_rows.tolist()) == list(range(64))


def test_amp_flag_reaches_the_estimator_through_the_run_config() -> None:
    from ncf.run import build_estimator
    from ncf.runconfig import RunConfig

    est = build_estimator(RunConfig(model="gmf", amp=True, device="cpu"))
    assert est.amp is True and est.device == "cpu"
    assert build_estimator(RunConfig(model="mlp")).amp is False


# ---------------------------------------------------------------------------- torchrun, 2 processes
def _write_data(folder: Path) -> Path:
    data = make_lowrank(n_users=160, n_items=300, density=0.08, seed=3)
    path = folder / "data.csv"
    data.to_frame()[["user", "item", "rating", "timestamp"]].to_csv(path, index=False)
    return path


ARGS = ["--model", "gmf", "--factors", "16", "--epochs", "4", "--batch-size", "128", "--lr", "0.01", "--device", "cpu",
        "--baselines", "pop", "--patience", "0", "--quiet"]


@pytest.mark.slow
def test_torchrun_two_process_ddp(tmp_path: Path) -> None:
    if not TORCHRUN.exists():
        pytest.skip("torchrun not installed next to this python")
    data = _write_data(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    trace = tmp_path / "trace"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update({distributed.TRACE_ENV: str(trace), "OMP_NUM_THREADS": "1"})
    cmd = [str(TORCHRUN), "--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "ncf",
           "train", "--data", str(data), "--out", "runs/ddp", *ARGS]
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    recs = {r: [json.loads(line) for line in (trace / f"rank{r}.jsonl").read_text().splitlines()] for r in (0, 1)}
    steps = {r: [x for x in recs[r] if x["kind"] == "step"] for r in (0, 1)}
    epochs = {r: [x for x in recs[r] if x["kind"] == "epoch"] for r in (0, 1)}
    # parameters identical on both ranks after every step, and they do change from step to step
    assert len(steps[0]) == len(steps[1]) > 8
    assert [s["sha1"] for s in steps[0]] == [s["sha1"] for s in steps[1]]
    assert len({s["sha1"] for s in steps[0]}) == len(steps[0])
    # every epoch: equal-sized disjoint shards, reshuffled between epochs
    assert len(epochs[0]) == len(epochs[1]) == 4
    for e0, e1 in zip(epochs[0], epochs[1]):
        r0, r1 = set(e0["rows"]), set(e1["rows"])
        assert len(e0["rows"]) == len(e1["rows"]) == len(r0) > 0
        assert not r0 & r1
        # validation is computed on rank 0 and broadcast: both ranks hold the same numbers
        assert e0["history"]["val_ndcg@10"] == e1["history"]["val_ndcg@10"]
        assert e0["history"]["train_loss"] == e1["history"]["train_loss"]
    assert epochs[0][0]["rows"][:20] != epochs[0][1]["rows"][:20]
    # only rank 0 wrote: one run directory and nothing else in the working folder
    assert sorted(p.name for p in work.iterdir()) == ["runs"]
    assert sorted(p.name for p in (work / "runs").iterdir()) == ["ddp"]
    assert (work / "runs/ddp/metrics.json").is_file() and (work / "runs/ddp/model").is_dir()
    # same quality band as one process (half the steps per epoch, global batch 2x128)
    ddp = json.loads((work / "runs/ddp/metrics.json").read_text())
    from ncf.run import train_run
    from ncf.runconfig import RunConfig

    cfg = RunConfig(data=str(data), model="gmf", factors=16, epochs=4, batch_size=128, lr=0.01, device="cpu",
                    baselines=["pop"], patience=0)
    one = train_run(cfg).metrics
    h_ddp, h_one = ddp["gmf"]["sampled"]["hr@10"], one["gmf"]["sampled"]["hr@10"]
    assert abs(h_ddp - h_one) < 0.1, (h_ddp, h_one)
    assert h_ddp > 0.2  # random ranking among 100 candidates: 0.1
