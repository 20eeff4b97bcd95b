"""Distributed data parallel training with PyTorch's own engine (`torch.nn.parallel.DistributedDataParallel`).

Launch with torchrun; nothing else changes:

    torchrun --nproc_per_node=2 -m ncf train --data ml-100k --out runs/ddp           # one machine
    torchrun --nnodes=2 --node_rank=0 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \
             --nproc_per_node=4 -m ncf train ...                                     # several machines

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK (and MASTER_ADDR/PORT); `session()` reads them, starts the
process group (NCCL when training on CUDA, gloo on CPU) and tears it down at the end. Inside
`data_parallel()` the Trainer (`ncf.training`) wraps the module in DDP and each rank trains on its own
equal-sized slice of every epoch's shuffled rows (the same seeded permutation on every rank, rank r takes
slice r), so gradients are all-reduced every step and parameters stay identical on all ranks. Per-epoch
validation runs on rank 0 only and its numbers are broadcast (every rank then takes the same
early-stopping decision); the run directory is written by rank 0 only.

Test hook: with NCF_DDP_TRACE=DIR every rank appends to DIR/rank<R>.jsonl one line per optimizer step
(a SHA-1 of all parameters) and one per epoch (the row indices that rank trained on).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ncf.errors import UsageError

TRACE_ENV = "NCF_DDP_TRACE"
TIMEOUT = datetime.timedelta(minutes=30)


@dataclass(frozen=True)
class DistContext:
    """This process's place in a data-parallel group."""

    rank: int
    world_size: int
    local_rank: int
    backend: str  # "gloo" | "nccl"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self) -> torch.device:
        """The device collectives of this backend run on."""
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")

    # ------------------------------------------------------------------ training helpers
    def wrap(self, module: nn.Module) -> nn.Module:
        """`module` inside DistributedDataParallel (parameters broadcast from rank 0 now, grads all-reduced)."""
        dev = next(module.parameters()).device
        ids = [dev.index if dev.index is not None else self.local_rank] if dev.type == "cuda" else None
        return _DDP(module, device_ids=ids)

    def shard(self, n: int) -> tuple[int, int]:
        """(start, stop) of this rank's slice of n rows: equal sizes (n // world_size), the rest dropped."""
        m = n // self.world_size
        if m == 0:
            raise UsageError(f"{n} training rows cannot be split over {self.world_size} processes",
                             "use fewer processes or more data")
        return self.rank * m, (self.rank + 1) * m

    def all_reduce_sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of `value` over all ranks (a copy; float64 scalars welcome)."""
        import torch.distributed as dist

        t = value.detach().to(self.device()).clone()
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.to(value.device)

    def broadcast_json(self, obj: Any) -> Any:
        """`obj` from rank 0 to every rank (JSON-encoded bytes; other ranks pass None)."""
        import torch.distributed as dist

        dev = self.device()
        data = json.dumps(obj).encode() if self.is_main else b""
        size = torch.tensor([len(data)], dtype=torch.int64, device=dev)
        dist.broadcast(size, src=0)
        buf = torch.zeros(int(size.item()), dtype=torch.uint8, device=dev)
        if self.is_main:
            buf.copy_(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        dist.broadcast(buf, src=0)
        return json.loads(bytes(buf.cpu().numpy().tobytes()).decode())

    def barrier(self) -> None:
        import torch.distributed as dist

        if self.backend == "nccl":
            dist.barrier(device_ids=[self.local_rank])
        else:
            dist.barrier()

    # ------------------------------------------------------------------ test hooks
    def step_hooks(self) -> list[Callable[[Any], None]]:
        """Per-step hooks (the NCF_DDP_TRACE parameter checksum), empty unless tracing."""
        folder = os.environ.get(TRACE_ENV)
        if not folder:
            return []
        path = Path(folder) / f"rank{self.rank}.jsonl"

        def checksum(trainer) -> None:
            h = hashlib.sha1()
            for p in trainer.module.parameters():
                h.update(p.detach().cpu().contiguous().numpy().tobytes())
            _append(path, {"kind": "step", "epoch": trainer.epoch + 1, "step": trainer.n_iter, "sha1": h.hexdigest()})

        return [checksum]

    def epoch_hooks(self) -> list[Callable[[Any], None]]:
        """End-of-epoch hooks (the NCF_DDP_TRACE shard rows), empty unless tracing."""
        folder = os.environ.get(TRACE_ENV)
        if not folder:
            return []
        path = Path(folder) / f"rank{self.rank}.jsonl"

        def rows(trainer) -> None:
            r = trainer.epoch_rows.cpu().numpy().tolist() if trainer.epoch_rows is not None else []
            _append(path, {"kind": "epoch", "epoch": trainer.epoch, "rows": r,
                           "history": trainer.history[-1] if trainer.history else {}})

        return [rows]


class _DDP(nn.parallel.DistributedDataParallel):
    """DDP that forwards unknown attributes (e.g. `embedding_sq_norm`) to the wrapped module."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


# ---------------------------------------------------------------------- process state
_GROUP: DistContext | None = None  # set by init_from_env
_ACTIVE = 0  # depth of data_parallel() blocks


def launched() -> bool:
    """True when started by torchrun (or any launcher) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto") -> DistContext | None:
    """Join the process group described by torchrun's env vars; None for a plain single process.

    Backend: NCCL when `device` resolves to CUDA (each process pinned to cuda:LOCAL_RANK), else gloo.
    """
    global _GROUP
    if _GROUP is not None:
        return _GROUP
    if not launched():
        return None
    import torch.distributed as dist

    try:
        rank, world, local = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))
    except (KeyError, ValueError):
        raise UsageError("WORLD_SIZE is set but RANK is missing or not a number",
                         "launch with torchrun --nproc_per_node=N -m ncf train ...") from None
    use_cuda = wants_cuda(device)
    if use_cuda:
        if local >= torch.cuda.device_count():
            raise UsageError(f"LOCAL_RANK {local} but only {torch.cuda.device_count()} CUDA devices",
                             "use --nproc_per_node <= the number of GPUs per machine")
        torch.cuda.set_device(local)
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": TIMEOUT}
        if use_cuda:
            kwargs["device_id"] = torch.device("cuda", local)
        dist.init_process_group(**kwargs)
    _GROUP = DistContext(rank=rank, world_size=world, local_rank=local, backend=backend)
    return _GROUP


def wants_cuda(device: str) -> bool:
    """Does this device string mean CUDA here ('auto' = CUDA when available)?"""
    device = (device or "auto").lower()
    if device == "auto":
        return torch.cuda.is_available()
    return device.startswith("cuda")


def shutdown() -> None:
    """Barrier, then destroy the process group (no-op when none)."""
    global _GROUP
    if _GROUP is None:
        return
    import torch.distributed as dist

    try:
        if dist.is_initialized():
            _GROUP.barrier()
            dist.destroy_process_group()
    finally:
        _GROUP = None


@contextlib.contextmanager
def session(device: str = "auto") -> Iterator[DistContext | None]:
    """Process group for the duration of a command (None when not launched by torchrun)."""
    ctx = init_from_env(device)
    try:
        yield ctx
    finally:
        if ctx is not None:
            shutdown()


@contextlib.contextmanager
def data_parallel() -> Iterator[DistContext | None]:
    """Trainers built inside this block train data-parallel (when a process group exists)."""
    global _ACTIVE
    _ACTIVE += 1
    try:
        yield current()
    finally:
        _ACTIVE -= 1


def current() -> DistContext | None:
    """The group a Trainer should train data-parallel in: inside `data_parallel()` only, else None."""
    return _GROUP if _ACTIVE and _GROUP is not None else None


def group() -> DistContext | None:
    """The process group joined by `init_from_env`, active or not."""
    return _GROUP


def is_main() -> bool:
    """True on rank 0, or when not distributed: the process that evaluates, logs and writes."""
    return _GROUP is None or _GROUP.is_main


def local_device(device: torch.device) -> torch.device:
    """A bare 'cuda' device becomes cuda:LOCAL_RANK inside a NCCL group (one GPU per process)."""
    if device.type == "cuda" and device.index is None and _GROUP is not None and _GROUP.backend == "nccl":
        return torch.device("cuda", _GROUP.local_rank)
    return device


__all__ = ["DistContext", "session", "data_parallel", "current", "group", "is_main", "init_from_env", "shutdown",
           "launched", "local_device", "wants_cuda", "TRACE_ENV"]
