"""The epoch loop: a module, per-epoch tensors and a loss in; trained weights and a per-epoch history out.

Batches are slices of tensors shuffled once per epoch with a seeded `torch.Generator` (no DataLoader, no
per-sample Python); the epoch loss is accumulated as a tensor (one sync per epoch). Early stopping keeps
the best weights. At the end of each epoch callbacks receive the full training state (`Trainer.state()`),
which `save_checkpoint` writes atomically (safetensors + JSON, no pickle) and `load_checkpoint` restores,
so that a resumed run continues bit for bit. The trainer holds no global state: each rank of a future
DistributedDataParallel run could train its own slice with its own Trainer.
"""

from __future__ import annotations

import ctypes
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ncf._io import atomic_dir
from ncf.errors import UsageError

OPTIMIZERS = ("adam", "adamw", "sgd", "adagrad")
SCHEDULES = ("none", "cosine", "step")
CHECKPOINT_WEIGHTS = "state.safetensors"
CHECKPOINT_META = "state.json"
SORT_BATCH_MIN = 16384  # batches this large are gathered in row order (same samples, cache-friendlier)
AUTO_THREADS_ROWS = 50_000  # threads=None: all cores when users + items exceed this ...
AUTO_THREADS_BATCH = 16384  # ... or the batch is this large; one thread otherwise (small ops)

# loss_step(module, batch) -> (data loss, loss to minimise); make_epoch(rng) -> tensors of equal length
LossStep = Callable[[nn.Module, Sequence[torch.Tensor]], tuple[torch.Tensor, torch.Tensor]]
MakeEpoch = Callable[[np.random.Generator], Sequence[torch.Tensor]]


def _make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0) -> torch.optim.Optimizer:
    params = list(params)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, foreach=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay, foreach=True)
    raise UsageError(f"unknown optimizer '{name}'", f"use one of: {', '.join(OPTIMIZERS)}")


def make_optimizer(name: str, params, lr: float, weight_decay: float = 0.0, device: str = "cpu",
                   sparse_grads: bool = False) -> torch.optim.Optimizer:
    """Adam/AdamW use the fused kernel (measured fastest on CPU and GPU with dense embeddings).
    sparse_grads: the module's embeddings emit sparse gradients (`sparse_embeddings`); they are summed into
    dense gradients with index_add_ before each step (same update, much faster backward for large tables
    on CPU; see `SparseGradSum`)."""
    opt = _make_optimizer(name, params, lr, weight_decay)
    if sparse_grads:
        opt.register_step_pre_hook(SparseGradSum())
    return opt


class SparseGradSum:
    """Optimizer step pre-hook: sums each sparse embedding gradient into a dense gradient with index_add_
    (on CPU ~10x cheaper than the dense embedding backward), so the update is that of dense gradients.

    The dense gradients live in buffers kept between steps (no 57 MB allocation and page faults per step
    at ML-25M size); before a step's sum only the previous step's rows are zeroed (index_fill_) when they
    are few, the whole buffer (zero_) otherwise. Bit-identical to summing into fresh zeros.
    """

    FILL_ROWS_FRACTION = 8  # index_fill_ costs ~7x zero_ per row (measured): zero the rows below 1/8 of a table

    def __init__(self) -> None:
        self.buffers: dict[int, torch.Tensor] = {}  # id(param) -> dense gradient buffer
        self.touched: dict[int, torch.Tensor | None] = {}  # rows written since the last zeroing (None: all)

    def __call__(self, optimizer: torch.optim.Optimizer, args=None, kwargs=None) -> None:
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    g = p.grad
                    if g is not None and g.is_sparse:
                        p.grad = self.accumulate(p, g, fresh=True)
                    elif g is not None and g is self.buffers.get(id(p)):  # grads kept (set_to_none=False)
                        self.touched[id(p)] = None  # autograd wrote into the buffer: zero all of it next time

    def accumulate(self, p: torch.Tensor, g: torch.Tensor, fresh: bool) -> torch.Tensor:
        """Add sparse gradient g of p into p's dense buffer (zeroed first when `fresh`); returns the buffer."""
        key = id(p)
        buf = self.buffers.get(key)
        if buf is None or buf.shape != p.shape or buf.device != p.device or buf.dtype != p.dtype:
            buf = self.buffers[key] = torch.zeros_like(p, memory_format=torch.contiguous_format)
            self.touched[key] = p.new_zeros(0, dtype=torch.long)
        elif fresh:
            rows = self.touched[key]
            if rows is None or len(rows) * self.FILL_ROWS_FRACTION >= len(buf):
                buf.zero_()
            elif len(rows):
                buf.index_fill_(0, rows, 0.0)
            self.touched[key] = p.new_zeros(0, dtype=torch.long)
        idx = g._indices()[0]
        buf.index_add_(0, idx, g._values())
        prev = self.touched[key]
        if prev is not None:
            both = torch.cat([prev, idx]) if len(prev) else idx
            self.touched[key] = None if len(both) * self.FILL_ROWS_FRACTION >= len(buf) else both
        return buf


def sparse_embeddings(module: nn.Module, on: bool) -> list[nn.Parameter]:
    """Switch sparse gradients of every nn.Embedding of `module` on/off; returns the embedding weights."""
    weights = []
    for mod in module.modules():
        if isinstance(mod, nn.Embedding):
            mod.sparse = bool(on)
            weights.append(mod.weight)
    return weights


def auto_threads(n_rows: int, batch_size: int, cores: int | None = None) -> int:
    """Torch threads for training when none are given: 1 for small problems (per-op threading costs more
    than it saves at ml-100k/ml-1m size, measured), all cores (`cores`, default the torch default thread
    count) for large tables (users + items > AUTO_THREADS_ROWS) or large batches (>= AUTO_THREADS_BATCH)."""
    cores = int(cores or _DEFAULT_THREADS)
    if n_rows > AUTO_THREADS_ROWS or batch_size >= AUTO_THREADS_BATCH:
        return max(1, cores)
    return 1


_DEFAULT_THREADS = torch.get_num_threads()  # at import: OMP_NUM_THREADS or the physical cores


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters
MALLOC_MMAP_THRESHOLD = 256 << 20  # large-batch training: blocks below this come from the heap, not fresh mmaps
MALLOC_TRIM_THRESHOLD = 2**31 - 1  # ... and freed heap memory is kept (no trim after every step) until the end
_malloc_tuned = False


def tune_malloc() -> bool:
    """glibc only, once per process: serve blocks up to 256 MB from the heap and keep freed heap memory.

    By default glibc maps every block over 32 MB afresh (mmap) and unmaps it on free, so each step of a
    large batch (262144 x 64 floats = 64 MB activations) pays page faults and kernel zeroing for every
    intermediate: measured 1.7x slower per sample at batch 262144 than with this setting. Returns whether
    it is in effect (False on other C libraries)."""
    global _malloc_tuned
    if not _malloc_tuned and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
            _malloc_tuned = (libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) == 1
                             and libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD) == 1)
        except (OSError, AttributeError):
            _malloc_tuned = False
    return _malloc_tuned


def release_free_memory() -> None:
    """glibc only: hand freed heap memory back to the OS (malloc_trim), e.g. after large-batch training."""
    if _malloc_tuned:
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def make_scheduler(name: str, optimizer: torch.optim.Optimizer, epochs: int):
    """Per-epoch lr schedule: none, cosine (to 0 over `epochs`) or step (x0.3 every epochs // 3 epochs)."""
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.3)
    raise UsageError(f"unknown lr_schedule '{name}'", f"use one of: {', '.join(SCHEDULES)}")


def _permutation(n: int, generator: torch.Generator) -> torch.Tensor:
    """The epoch's order: int32 rows where they fit (the same permutation as int64, half the memory)."""
    return torch.randperm(n, generator=generator, dtype=torch.int32 if n < 2**31 else torch.int64)


class Trainer:
    """Trains `module` for up to `epochs` epochs; `history` holds one dict per epoch.

    evaluate(module) (module already in eval mode, no grad) returns the end-of-epoch columns
    (`train_loss_eval`, `val_loss`, `val_*`). monitor/mode/patience drive early stopping on one of them;
    the best weights are restored at the end when `restore_best`. `samples_per_row`: scored (user, item)
    pairs in one row of the epoch tensors (a softmax row of a positive and k negatives: 1 + k), so that
    `samples_per_s` counts the same unit for every loss.
    """

    def __init__(
        self,
        module: nn.Module,
        optimizer: torch.optim.Optimizer,
        make_epoch: MakeEpoch,
        loss_step: LossStep,
        *,
        epochs: int,
        batch_size: int,
        rng: np.random.Generator,
        generator: torch.Generator,
        scheduler=None,
        evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
        monitor: str | None = None,
        mode: str = "max",
        patience: int | None = None,
        restore_best: bool = True,
        callbacks: Sequence[Callable[["Trainer"], None]] = (),
        verbose: bool = False,
        device: torch.device | str = "cpu",
        dist: Any = None,
        amp: bool = False,
        step_callbacks: Sequence[Callable[["Trainer"], None]] = (),
        samples_per_row: int = 1,
    ) -> None:
        if epochs < 1:
            raise UsageError(f"epochs must be >= 1, got {epochs}", "pass a positive number of epochs")
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}", "pass a positive batch size")
        self.module, self.optimizer, self.scheduler = module, optimizer, scheduler
        self.make_epoch, self.loss_step, self.evaluate = make_epoch, loss_step, evaluate
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.samples_per_row = int(samples_per_row)
        self.rng, self.generator = rng, generator
        self.monitor, self.mode, self.patience, self.restore_best = monitor, mode, patience, restore_best
        self.callbacks, self.verbose, self.device = list(callbacks), verbose, torch.device(device)
        # data parallel (ncf.distributed.DistContext): DDP-wrapped module, one slice of every epoch per rank
        self.dist = dist
        self.step_callbacks = list(step_callbacks)
        self.train_module = module
        if dist is not None:
            self.train_module = dist.wrap(module)
            self.step_callbacks += dist.step_hooks()
            self.callbacks += dist.epoch_hooks()
        self.amp = bool(amp) and self.device.type == "cuda"  # bf16 autocast of the training forward (CUDA)
        self.epoch_rows: torch.Tensor | None = None  # rows of this epoch's tensors this rank trained on
        # progress
        self.epoch = 0
        self.n_iter = 0
        self.history: list[dict[str, float]] = []
        self.best_score: float | None = None
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.bad_epochs = 0
        self.stopped = False

    # ------------------------------------------------------------------ loop
    def run(self) -> "Trainer":
        """Train until `epochs` or early stopping; returns self."""
        large = self.batch_size >= SORT_BATCH_MIN and self.device.type == "cpu" and tune_malloc()
        try:
            while self.epoch < self.epochs and not self.stopped:
                self._one_epoch()
                for cb in self.callbacks:
                    cb(self)
        finally:
            if large:
                release_free_memory()
        if self.restore_best and self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        return self

    def _one_epoch(self) -> None:
        t0 = time.perf_counter()
        self.module.train()
        self.epoch_rows = None  # the last epoch's order is not kept while this one is built
        tensors = [t.to(self.device, non_blocking=True) for t in self.make_epoch(self.rng)]
        n = len(tensors[0])
        perm = _permutation(n, self.generator).to(self.device)
        if self.dist is not None:  # same permutation on every rank; rank r takes equal-sized slice r
            lo, hi = self.dist.shard(n)
            perm = perm[lo:hi]
        self.epoch_rows = perm
        n_local = len(perm)
        lr = float(self.optimizer.param_groups[0]["lr"])
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        bar = None
        if self.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=n_local, desc=f"epoch {self.epoch + 1}/{self.epochs}", unit="ex", unit_scale=True, leave=False)
        bs = self.batch_size
        sort_rows = bs >= SORT_BATCH_MIN
        for start in range(0, n_local, bs):
            idx = perm[start:start + bs]  # gather per batch: no permuted copy of the epoch's tensors
            if sort_rows:  # the same batch in row order: the gathers (and embedding rows) are near-sequential
                idx = idx.sort().values
            batch = [t[idx] for t in tensors]
            self.optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                data_loss, loss = self.loss_step(self.train_module, batch)
            loss.backward()
            self.optimizer.step()
            total += data_loss.detach().float() * len(batch[0])
            self.n_iter += 1
            for hook in self.step_callbacks:
                hook(self)
            if bar is not None:
                bar.update(len(batch[0]))
        n_seen = n_local
        if self.dist is not None:  # loss and sample counts over all ranks
            total = self.dist.all_reduce_sum(total)
            n_seen = n_local * self.dist.world_size
        train_loss = float(total) / max(n_seen, 1)
        train_s = time.perf_counter() - t0
        if self.scheduler is not None:
            self.scheduler.step()
        self.epoch += 1
        row: dict[str, float] = {"epoch": self.epoch, "train_loss": train_loss}
        if self.evaluate is not None:
            self.module.eval()
            measured: dict[str, float] | None = None
            if self.dist is None or self.dist.is_main:  # evaluated once, on rank 0
                with torch.no_grad():
                    measured = self.evaluate(self.module)
            if self.dist is not None:  # every rank takes the same early-stopping decision
                measured = self.dist.broadcast_json(measured)
            row.update(measured or {})
        row["lr"] = lr
        row["seconds"] = time.perf_counter() - t0
        row["samples_per_s"] = n_seen * self.samples_per_row / train_s if train_s > 0 else math.nan
        self.history.append(row)
        if bar is not None:
            shown = {k: f"{v:.4f}" for k, v in row.items() if k.startswith(("train_loss", "val_"))}
            bar.set_postfix(shown | {"ex/s": f"{row['samples_per_s']:.3g}"})
            bar.close()
        self._early_stopping(row)

    def _early_stopping(self, row: dict[str, float]) -> None:
        if self.monitor is None:
            return
        score = row.get(self.monitor, math.nan)
        if score is None or math.isnan(score):
            return
        better = self.best_score is None or (score > self.best_score if self.mode == "max" else score < self.best_score)
        if better:
            self.best_score, self.best_epoch, self.bad_epochs = float(score), self.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        else:
            self.bad_epochs += 1
            if self.patience is not None and self.bad_epochs >= self.patience:
                self.stopped = True

    # ------------------------------------------------------------------ state
    def state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Everything needed to resume bit for bit: arrays (module, optimizer, best weights, RNG states) and
        JSON-able metadata (epoch, history, early stopping, optimizer/scheduler settings, numpy RNG)."""
        arrays: dict[str, np.ndarray] = {}
        for k, v in self.module.state_dict().items():
            arrays[f"module.{k}"] = v.detach().cpu().numpy()
        if self.best_state is not None:
            for k, v in self.best_state.items():
                arrays[f"best.{k}"] = v.detach().cpu().numpy()
        opt = self.optimizer.state_dict()
        opt_scalars: dict[str, dict[str, Any]] = {}
        for pid, st in opt["state"].items():
            for k, v in st.items():
                if torch.is_tensor(v):
                    arrays[f"opt.{pid}.{k}"] = v.detach().cpu().numpy()
                else:
                    opt_scalars.setdefault(str(pid), {})[k] = v
        arrays["rng.torch_global"] = torch.get_rng_state().numpy()
        arrays["rng.generator"] = self.generator.get_state().numpy()
        meta = {
            "epoch": self.epoch, "n_iter": self.n_iter, "history": self.history, "best_score": self.best_score,
            "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs, "stopped": self.stopped,
            "has_best": self.best_state is not None,
            "optimizer": {"param_groups": opt["param_groups"], "scalars": opt_scalars,
                          "state_ids": [int(p) for p in opt["state"]]},
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "numpy_rng": self.rng.bit_generator.state,
        }
        return arrays, meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        """Inverse of state(): continue exactly where that epoch ended."""
        mod = {k[len("module."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("module.")}
        self.module.load_state_dict(mod)
        if meta["has_best"]:
            self.best_state = {k[len("best."):]: torch.from_numpy(np.array(v)).to(self.device)
                               for k, v in arrays.items() if k.startswith("best.")}
        state: dict[int, dict[str, Any]] = {}
        for pid in meta["optimizer"]["state_ids"]:
            st = dict(meta["optimizer"]["scalars"].get(str(pid), {}))
            prefix = f"opt.{pid}."
            for k, v in arrays.items():
                if k.startswith(prefix):
                    st[k[len(prefix):]] = torch.from_numpy(np.array(v))
            state[pid] = st
        groups = meta["optimizer"]["param_groups"]
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        if self.scheduler is not None and meta["scheduler"] is not None:
            self.scheduler.load_state_dict(meta["scheduler"])
        torch.set_rng_state(torch.from_numpy(np.array(arrays["rng.torch_global"])))
        self.generator.set_state(torch.from_numpy(np.array(arrays["rng.generator"])))
        self.rng.bit_generator.state = meta["numpy_rng"]
        self.epoch, self.n_iter, self.history = int(meta["epoch"]), int(meta["n_iter"]), list(meta["history"])
        self.best_score, self.best_epoch = meta["best_score"], int(meta["best_epoch"])
        self.bad_epochs, self.stopped = int(meta["bad_epochs"]), bool(meta["stopped"])


def save_checkpoint(trainer: Trainer, directory: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write the trainer state to `directory` atomically (the old checkpoint stays until the new one is whole)."""
    from safetensors.numpy import save_file

    arrays, meta = trainer.state()
    meta["extra"] = extra or {}
    directory = Path(directory)
    with atomic_dir(directory, overwrite=True) as tmp:
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp / CHECKPOINT_WEIGHTS))
        (tmp / CHECKPOINT_META).write_text(json.dumps(meta), encoding="utf-8")
    return directory


def read_checkpoint(directory: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The (arrays, meta) of a checkpoint, or None when there is none."""
    from safetensors.numpy import load_file

    directory = Path(directory)
    if not (directory / CHECKPOINT_META).is_file() or not (directory / CHECKPOINT_WEIGHTS).is_file():
        return None
    meta = json.loads((directory / CHECKPOINT_META).read_text(encoding="utf-8"))
    return load_file(str(directory / CHECKPOINT_WEIGHTS)), meta
