"""Neural estimators `mf`, `gmf`, `mlp`, `neumf`: one API for rating prediction and implicit ranking.

task="rating": regression on the original scale. Targets are centred on the global training mean
(target_scaling="center") or MinMax-scaled to [0, 1] (target_scaling="minmax", like the seed Keras
script); predictions are mapped back and clipped to the rating scale. Losses: mse, mae, huber.

task="ranking": every training interaction (or only ratings >= positive_threshold) is a positive; BCE
with `n_negatives` uniform negatives per positive redrawn every epoch, BPR (one pair per negative), or a
sampled softmax (each positive against its own negatives; a training row is then a positive with its
`n_negatives` negatives). Negatives never hit an item the user interacted with in train. Scores are logits.

History (`history_`, see docs/CONTRACTS.md): `train_loss` is the mean data loss over the epoch's batches
in train mode (what Keras prints; the L2 penalty is not included); `train_loss_eval` is the same loss as
`val_loss`, with the end-of-epoch weights in eval mode, on a fixed random sample of at most 50k training
rows (for ranking: positives plus their fixed sampled negatives). For ranking, `val_loss` is the training
loss on every validation positive plus `n_negatives` fixed negatives per positive (the first columns of
the validation candidates), and `val_hr@K`/`val_ndcg@K` rank each validation positive among
`val_candidates` fixed sampled candidates (drawn once, seeded; ties count against the positive).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import torch

from ncf import distributed as _distributed
from ncf import losses
from ncf.data import Interactions
from ncf.errors import BundleError, DataError, UsageError
from ncf.models.base import Estimator, register
from ncf.models.modules import GMF, MF, MLP, NeuMF, ScoreModule, build_module
from ncf.sampling import positive_keys, sample_negatives
from ncf.training import (Trainer, auto_threads, make_optimizer, make_scheduler, read_checkpoint, save_checkpoint,
                          sparse_embeddings)

TRAIN_EVAL_ROWS = 50_000
SPARSE_ROWS = 50_000  # sparse='auto': sparse embedding backward when users + items exceed this (CPU)
SCORE_PAIRS = 1 << 20  # pairs per forward pass when scoring many items
TASKS = ("rating", "ranking")
# parameters that do not change what is learned (left out of the resume fingerprint)
_RUNTIME_PARAMS = ("verbose", "checkpoint_dir", "resume", "threads", "device")


def resolve_device(device: str) -> torch.device:
    """'cpu', 'cuda', 'cuda:N' or 'auto' (cuda when available)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"device '{device}' requested but CUDA is not available", "use device='cpu' or 'auto'")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"unknown device '{device}'", "use 'cpu', 'cuda' or 'auto'")
    return torch.device(device)


def local_candidates(users: np.ndarray, keys: np.ndarray, n_items: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n distinct items per entry of users, none a positive (keys): the n smallest of uniform noise."""
    out = np.empty((len(users), n), dtype=np.int32)
    chunk = max(1, (1 << 22) // max(n_items, 1))
    for s in range(0, len(users), chunk):
        u = users[s:s + chunk].astype(np.int64)
        noise = rng.random((len(u), n_items), dtype=np.float32)
        lo, hi = np.searchsorted(keys, u * n_items), np.searchsorted(keys, (u + 1) * n_items)
        cnt = hi - lo
        rows = np.repeat(np.arange(len(u)), cnt)
        idx = np.repeat(lo, cnt) + np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        cols = keys[idx] - u[rows] * n_items
        noise[rows, cols] = np.inf
        if (np.isinf(noise).sum(axis=1) > n_items - n).any():
            raise DataError("some validation user has fewer unseen items than val_candidates",
                            "lower val_candidates")
        out[s:s + len(u)] = np.argpartition(noise, n - 1, axis=1)[:, :n]
    return out


def _draw_candidates(valid: Interactions, keys_all: np.ndarray, n: int, seed: int) -> np.ndarray:
    try:  # the shared evaluation sampler when it exists
        from ncf.sampling import eval_candidates  # type: ignore[attr-defined]
    except ImportError:
        eval_candidates = None
    if eval_candidates is not None:
        return np.asarray(eval_candidates(valid, keys_all, n=n, seed=seed), dtype=np.int32)
    return local_candidates(valid.user_ids, keys_all, valid.n_items, n, np.random.default_rng([seed, 2]))


def rank_metrics(pos: np.ndarray, neg: np.ndarray, k: int) -> dict[str, float]:
    """HR@k and NDCG@k of each positive score against its row of candidate scores (ties count against)."""
    rank = (neg >= pos[:, None]).sum(axis=1)
    hit = rank < k
    return {"hr": float(hit.mean()) if len(hit) else math.nan,
            "ndcg": float(np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0).mean()) if len(hit) else math.nan}


class NeuralEstimator(Estimator):
    """Shared fitting, prediction and persistence of the neural models; subclasses name the module."""

    kind: ClassVar[str] = ""

    # ------------------------------------------------------------------ helpers
    def _arch(self) -> dict[str, Any]:
        raise NotImplementedError

    def _biases(self) -> bool:
        if self.biases is None:
            return self.task == "rating" or self.kind == "mf"
        return bool(self.biases)

    def _loss_name(self) -> str:
        if self.loss is None:
            return "mse" if self.task == "rating" else "bce"
        return self.loss

    def _monitor(self) -> tuple[str | None, str]:
        es = self.early_stopping
        if es is None or es == "none":
            return None, "max"
        if es == "auto":
            es = "val_rmse" if self.task == "rating" else f"val_ndcg@{self.eval_k}"
        mode = "min" if es.endswith(("loss", "rmse", "mae")) else "max"
        return es, mode

    def _new_module(self) -> ScoreModule:
        return build_module(self.kind, self.n_users_, self.n_items_, biases=self._biases(),
                            output_activation=self.output_activation, **self._arch())

    def _validate(self) -> None:
        if self.task not in TASKS:
            raise UsageError(f"unknown task '{self.task}'", "use task='rating' or task='ranking'")
        losses.get_loss(self._loss_name(), self.task)
        if self.target_scaling not in ("center", "minmax"):
            raise UsageError(f"unknown target_scaling '{self.target_scaling}'", "use 'center' or 'minmax'")
        if self.n_negatives < 1:
            raise UsageError(f"n_negatives must be >= 1, got {self.n_negatives}", "pass e.g. n_negatives=4")
        if self.lr <= 0:
            raise UsageError(f"lr must be > 0, got {self.lr}", "pass e.g. lr=0.005")

    def _fingerprint(self, train: Interactions) -> str:
        params = {k: v for k, v in self.get_params().items() if k not in _RUNTIME_PARAMS}
        text = json.dumps(params, sort_keys=True, default=str) + train.fingerprint()
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ targets
    def _scale(self, r: np.ndarray) -> np.ndarray:
        if self.target_scaling == "minmax":
            lo, hi = self.rating_scale_
            return ((r - lo) / max(hi - lo, 1e-12)).astype(np.float32)
        return (r - self.global_mean_).astype(np.float32)

    def _unscale(self, out: np.ndarray) -> np.ndarray:
        lo, hi = self.rating_scale_
        r = lo + out * (hi - lo) if self.target_scaling == "minmax" else out + self.global_mean_
        return np.clip(r, lo, hi).astype(np.float32)

    def _positives(self, data: Interactions) -> np.ndarray:
        """Row mask of the positives of `data` for the ranking task."""
        if self.positive_threshold is None or data.ratings is None:
            return np.ones(len(data), dtype=bool)
        return data.ratings >= self.positive_threshold

    # ------------------------------------------------------------------ fit
    def fit(self, train: Interactions, valid: Interactions | None = None, callbacks=()) -> Self:
        """Train on `train`; `valid` (same id space) drives per-epoch validation and early stopping.

        `callbacks`: callables receiving the Trainer at the end of each epoch (e.g. tuning's pruning).
        Inside `ncf.distributed.data_parallel()` under torchrun, trains with DistributedDataParallel.
        """
        self._fit_callbacks = list(callbacks)
        self._validate()
        if len(train) == 0:
            raise DataError("the training data is empty", "pass interactions with at least one row")
        if self.task == "rating" and train.ratings is None:
            raise DataError("task='rating' needs ratings but the data has none", "use task='ranking' or load a rating column")
        if valid is not None and (valid.n_users != train.n_users or valid.n_items != train.n_items):
            raise DataError("validation data uses a different id space", "split one Interactions object")
        self._remember_data(train)
        self.device_ = _distributed.local_device(resolve_device(self.device))
        old_threads = torch.get_num_threads()
        # threads=None: 1 thread for small problems (sync costs more than it saves, measured), all cores for
        # large tables or batches (ncf.training.auto_threads)
        torch.set_num_threads(int(self.threads) if self.threads
                              else auto_threads(self.n_users_ + self.n_items_, int(self.batch_size)))
        devices = [self.device_.index or 0] if self.device_.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                self._fit(train, valid)
        finally:
            torch.set_num_threads(old_threads)
        return self

    def _fit(self, train: Interactions, valid: Interactions | None) -> None:
        dev = self.device_
        self.rating_scale_ = tuple(float(x) for x in (train.rating_scale or (0.0, 1.0)))
        self.global_mean_ = float(train.ratings.mean()) if train.ratings is not None else 0.0
        init = self._initial_module(train, valid)
        self.module_ = (init if init is not None else self._new_module()).to(dev)
        loss_fn = losses.get_loss(self._loss_name(), self.task)
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        l2 = float(self.l2)
        if self.task == "rating":
            make_epoch, loss_step, evaluate = self._rating_parts(train, valid, loss_fn, l2, dev)
        else:
            make_epoch, loss_step, evaluate = self._ranking_parts(train, valid, loss_fn, l2, dev)
        dist_ctx = _distributed.current()  # data parallel under torchrun (ncf.distributed)
        sparse = self._sparse(dist_ctx)
        sparse_embeddings(self.module_, sparse)
        optimizer = make_optimizer(self.optimizer, self.module_.parameters(), self.lr, self.weight_decay,
                                   sparse_grads=sparse)
        scheduler = make_scheduler(self.lr_schedule, optimizer, self.epochs)
        monitor, mode = self._monitor()
        if valid is None:
            monitor = None
        callbacks = list(getattr(self, "_fit_callbacks", []))
        fingerprint = self._fingerprint(train)
        if self.checkpoint_dir and _distributed.is_main():
            callbacks.append(lambda tr: save_checkpoint(tr, self.checkpoint_dir, extra={"fingerprint": fingerprint}))
        trainer = Trainer(self.module_, optimizer, make_epoch, loss_step, epochs=self.epochs, batch_size=self.batch_size,
                          rng=rng, generator=gen, scheduler=scheduler, evaluate=evaluate, monitor=monitor, mode=mode,
                          patience=self.patience, restore_best=monitor is not None, callbacks=callbacks,
                          verbose=self.verbose and _distributed.is_main(), device=dev, dist=dist_ctx,
                          amp=bool(getattr(self, "amp", False)), samples_per_row=self._pairs_per_row())
        if self.resume and self.checkpoint_dir:
            found = read_checkpoint(self.checkpoint_dir)
            if found is not None:
                arrays, meta = found
                if meta.get("extra", {}).get("fingerprint") != fingerprint:
                    raise UsageError(f"checkpoint in {self.checkpoint_dir} was written for other parameters or data",
                                     "use the same config and data to resume, or a fresh checkpoint_dir")
                trainer.load_state(arrays, meta)
        trainer.run()
        self.history_ = pd.DataFrame(trainer.history)
        self.best_epoch_ = int(trainer.best_epoch) if monitor is not None else int(trainer.epoch)
        self.n_iter_ = int(trainer.n_iter)
        self.n_epochs_ = int(trainer.epoch)
        self.module_.eval()

    def _initial_module(self, train: Interactions, valid: Interactions | None) -> ScoreModule | None:
        return None

    def _pairs_per_row(self) -> int:
        """Scored (user, item) pairs per training row: 1 (rating, bce), 2 (bpr), 1 + n_negatives (softmax)."""
        if self.task != "ranking":
            return 1
        return {"bpr": 2, "softmax": 1 + int(self.n_negatives)}.get(self._loss_name(), 1)

    def _sparse(self, dist_ctx: Any) -> bool:
        """Sparse embedding gradients (made dense by index_add_ before each step): sparse=True/False, or
        "auto" = on for large tables (users + items > SPARSE_ROWS) on CPU outside data parallel runs."""
        sparse = getattr(self, "sparse", "auto")
        if sparse == "auto":
            return self.n_users_ + self.n_items_ > SPARSE_ROWS and self.device_.type == "cpu" and dist_ctx is None
        if sparse not in (True, False):
            raise UsageError(f"sparse must be True, False or 'auto', got {sparse!r}", "pass e.g. sparse='auto'")
        return bool(sparse)

    def _rating_parts(self, train, valid, loss_fn, l2, dev):
        u = torch.from_numpy(train.user_ids.astype(np.int64))
        i = torch.from_numpy(train.item_ids.astype(np.int64))
        y = torch.from_numpy(self._scale(train.ratings))

        def make_epoch(rng):
            return u, i, y

        def loss_step(module, batch):
            bu, bi, by = batch
            data = loss_fn(module(bu, bi), by)
            if l2 > 0:
                return data, data + l2 * module.embedding_sq_norm(bu, bi) / len(bu)
            return data, data

        sample = np.random.default_rng([self.seed, 1]).permutation(len(train))[:TRAIN_EVAL_ROWS]
        tr = [t[torch.from_numpy(sample)].to(dev) for t in (u, i, y)]
        if valid is not None:
            if valid.ratings is None:
                raise DataError("validation data has no ratings", "use task='ranking' or validation data with ratings")
            va = [torch.from_numpy(a).to(dev) for a in (valid.user_ids.astype(np.int64), valid.item_ids.astype(np.int64),
                                                        self._scale(valid.ratings))]
            true_r = valid.ratings.astype(np.float64)

        def evaluate(module):
            row = {"train_loss_eval": float(loss_fn(self._forward(module, tr[0], tr[1]), tr[2]))}
            if valid is None:
                return row | {"val_loss": math.nan, "val_rmse": math.nan, "val_mae": math.nan}
            out = self._forward(module, va[0], va[1])
            pred = self._unscale(out.cpu().numpy()).astype(np.float64)
            err = pred - true_r
            return row | {"val_loss": float(loss_fn(out, va[2])), "val_rmse": float(np.sqrt(np.mean(err ** 2))),
                          "val_mae": float(np.mean(np.abs(err)))}

        return make_epoch, loss_step, evaluate

    def _ranking_parts(self, train, valid, loss_fn, l2, dev):
        k = int(self.n_negatives)
        n_items = train.n_items
        keys = positive_keys(train.csr())
        mask = self._positives(train)
        pu_np = train.user_ids[mask].astype(np.int64)
        pi_np = train.item_ids[mask].astype(np.int64)
        if len(pu_np) == 0:
            raise DataError("no positives in the training data", "lower positive_threshold")
        bpr = self._loss_name() == "bpr"
        grouped = self._loss_name() == "softmax"  # rows: (user, positive, its k negatives)
        # epoch tensors: int32 ids, uint8 labels (converted per batch); nothing repeated kept between epochs
        pu32, pi32 = pu_np.astype(np.int32), pi_np.astype(np.int32)
        n_tp = len(pu32)
        labels = torch.zeros(n_tp * (1 + k), dtype=torch.uint8)
        labels[:n_tp] = 1

        def make_epoch(rng):
            neg = sample_negatives(pu_np, n_items, keys, k, rng)  # (n_tp, k) int32
            if grouped:
                return torch.from_numpy(pu32), torch.from_numpy(pi32), torch.from_numpy(neg)
            if bpr:
                return (torch.from_numpy(np.repeat(pu32, k)), torch.from_numpy(np.repeat(pi32, k)),
                        torch.from_numpy(neg.reshape(-1)))
            # positives, then the negatives column-major so that users are pu tiled (1 + k) times
            items = np.empty(n_tp * (1 + k), dtype=np.int32)
            items[:n_tp] = pi32
            items[n_tp:].reshape(k, n_tp)[:] = neg.T
            del neg
            return torch.from_numpy(np.tile(pu32, 1 + k)), torch.from_numpy(items), labels

        def loss_step(module, batch):
            if grouped:
                bu, bp, bn = (t.long() for t in batch)
                scores = module(bu, torch.cat([bp[:, None], bn], dim=1))  # (B, 1 + k)
                data = loss_fn(scores[:, 0], scores[:, 1:])
                if l2 > 0:
                    reg = module.embedding_sq_norm(bu, bp) + module.embedding_sq_norm(bu[:0], bn.reshape(-1))
                    return data, data + l2 * reg / len(bu)
                return data, data
            if bpr:
                bu, bp, bn = (t.long() for t in batch)
                scores = module(torch.cat([bu, bu]), torch.cat([bp, bn]))
                data = loss_fn(scores[:len(bu)], scores[len(bu):])
                if l2 > 0:
                    reg = module.embedding_sq_norm(bu, bp) + module.embedding_sq_norm(bu, bn)
                    return data, data + l2 * reg / len(bu)
                return data, data
            bu, bi, by = batch[0].long(), batch[1].long(), batch[2].float()
            data = loss_fn(module(bu, bi), by)
            if l2 > 0:
                return data, data + l2 * module.embedding_sq_norm(bu, bi) / len(bu)
            return data, data

        def fixed_loss(module, users, items, negs):
            """The loss on positives (users, items) and fixed negatives (len, k), as in training."""
            n = len(users)
            if grouped:
                s = self._forward(module, users, torch.cat([items[:, None], negs], dim=1))  # (n, 1 + k) in one pass
                return float(loss_fn(s[:, 0], s[:, 1:]))
            if bpr:
                uu = users.repeat_interleave(negs.shape[1])
                s = self._forward(module, torch.cat([uu, uu]), torch.cat([items.repeat_interleave(negs.shape[1]),
                                                                          negs.reshape(-1)]))
                return float(loss_fn(s[:len(uu)], s[len(uu):]))
            uu = torch.cat([users, users.repeat_interleave(negs.shape[1])])
            ii = torch.cat([items, negs.reshape(-1)])
            y = torch.cat([torch.ones(n, device=dev), torch.zeros(n * negs.shape[1], device=dev)])
            return float(loss_fn(self._forward(module, uu, ii), y))

        srng = np.random.default_rng([self.seed, 1])
        sel = srng.permutation(len(pu_np))[:max(1, TRAIN_EVAL_ROWS // (1 + k))]
        tr_negs = sample_negatives(pu_np[sel], n_items, keys, k, srng).astype(np.int64)
        tr = [torch.from_numpy(a).to(dev) for a in (pu_np[sel], pi_np[sel], tr_negs)]
        kk = int(self.eval_k)
        empty = {"val_loss": math.nan, f"val_hr@{kk}": math.nan, f"val_ndcg@{kk}": math.nan}
        if valid is not None:
            vmask = self._positives(valid)
            vu_np, vi_np = valid.user_ids[vmask].astype(np.int64), valid.item_ids[vmask].astype(np.int64)
            if len(vu_np) == 0:
                valid = None
        if valid is not None:
            keys_all = positive_keys(train.concat(valid).csr())
            # users with fewer unseen items than val_candidates get a smaller common candidate count
            n_pos = np.bincount(keys_all // n_items, minlength=train.n_users)
            n_cand = int(min(self.val_candidates, (n_items - n_pos[vu_np]).min()))
            if n_cand < 1:
                raise DataError("some validation user has interacted with every item", "drop such users")
            self.val_candidates_ = n_cand
            cands = _draw_candidates(valid.subset(np.flatnonzero(vmask)), keys_all, n_cand, self.seed)
            cands = cands.astype(np.int64)
            if k <= cands.shape[1]:
                v_negs = cands[:, :k]
            else:
                v_negs = sample_negatives(vu_np, n_items, keys_all, k, np.random.default_rng([self.seed, 3])).astype(np.int64)
            va = [torch.from_numpy(a).to(dev) for a in (vu_np, vi_np, v_negs)]
            nc = cands.shape[1]
            grid_u = torch.from_numpy(np.repeat(vu_np, 1 + nc)).to(dev)
            grid_i = torch.from_numpy(np.concatenate([vi_np[:, None], cands], axis=1).reshape(-1)).to(dev)

        def evaluate(module):
            row = {"train_loss_eval": fixed_loss(module, *tr)}
            if valid is None:
                return row | empty
            s = self._forward(module, grid_u, grid_i).cpu().numpy().reshape(len(vu_np), 1 + nc)
            m = rank_metrics(s[:, 0], s[:, 1:], kk)
            return row | {"val_loss": fixed_loss(module, *va), f"val_hr@{kk}": m["hr"], f"val_ndcg@{kk}": m["ndcg"]}

        return make_epoch, loss_step, evaluate

    @staticmethod
    def _forward(module, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores in chunks (no grad is the caller's business); items (B,) or (B, m) as in forward."""
        rows = max(1, SCORE_PAIRS // (items.shape[1] if items.dim() == 2 else 1))
        if len(users) <= rows:
            return module(users, items)
        return torch.cat([module(users[s:s + rows], items[s:s + rows]) for s in range(0, len(users), rows)])

    # ------------------------------------------------------------------ predict
    def _device(self) -> torch.device:
        return next(self.module_.parameters()).device

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Ratings on the original scale (rating task) or logits (ranking) for pairs of inner ids."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if users.shape != items.shape:
            raise UsageError("users and items differ in length", "pass one item per user")
        if len(users) and (users.min() < 0 or users.max() >= self.n_users_ or items.min() < 0 or items.max() >= self.n_items_):
            raise UsageError("user or item id outside the model's id space", "pass inner ids of the training data")
        dev = self._device()
        self.module_.eval()
        with torch.no_grad():
            out = self._forward(self.module_, torch.from_numpy(users).to(dev), torch.from_numpy(items).to(dev))
        out = out.float().cpu().numpy()
        return self._unscale(out) if self.task == "rating" else out.astype(np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores of every item for each user, (len(users), n_items_): matrix form for MF/GMF, batched pairs else."""
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        if len(users) and (users.min() < 0 or users.max() >= self.n_users_):
            raise UsageError("user id outside the model's id space", "pass inner ids of the training data")
        dev = self._device()
        chunk = max(1, 4 * SCORE_PAIRS // max(self.n_items_, 1))  # 4M scores (16 MB) per call
        self.module_.eval()
        parts = []
        with torch.no_grad():
            for s in range(0, len(users), chunk):
                parts.append(self.module_.score_all(torch.from_numpy(users[s:s + chunk]).to(dev)).float().cpu().numpy())
        out = np.concatenate(parts) if parts else np.zeros((0, self.n_items_), dtype=np.float32)
        return self._unscale(out) if self.task == "rating" else out.astype(np.float32)

    # ------------------------------------------------------------------ persistence
    def state_arrays(self) -> dict[str, np.ndarray]:
        arrays = super().state_arrays()
        for k, v in self.module_.state_dict().items():
            arrays[f"module.{k}"] = v.detach().cpu().numpy()
        return arrays

    def state_meta(self) -> dict[str, Any]:
        meta = super().state_meta()
        hist = self.history_.to_dict(orient="list") if hasattr(self, "history_") else None
        meta.update({"global_mean_": self.global_mean_, "rating_scale_": list(self.rating_scale_),
                     "best_epoch_": self.best_epoch_, "n_iter_": self.n_iter_, "n_epochs_": self.n_epochs_,
                     "history_": hist})
        return meta

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        super().load_state(arrays, meta)
        self.global_mean_ = float(meta["global_mean_"])
        self.rating_scale_ = tuple(meta["rating_scale_"])
        self.best_epoch_, self.n_iter_, self.n_epochs_ = meta["best_epoch_"], meta["n_iter_"], meta["n_epochs_"]
        if meta.get("history_") is not None:
            self.history_ = pd.DataFrame(meta["history_"])
        self.device_ = resolve_device(self.device if self.device != "cuda" or torch.cuda.is_available() else "cpu")
        module = self._new_module()
        state = {k[len("module."):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith("module.")}
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            # torch's first line is only a title; name the first tensor that does not fit
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            detail = next((ln for ln in lines[1:] if ln), lines[0] if lines else "")
            raise BundleError(f"weights do not fit a {self.kind} with these parameters ({detail[:200].rstrip('.')})",
                              "the bundle is damaged or was edited; re-run 'ncf train'") from None
        self.module_ = module.to(self.device_).eval()

    @classmethod
    def conformance_params(cls) -> dict[str, Any]:
        return {"epochs": 2, "batch_size": 256, "lr": 0.01}


_COMMON_DOC = """
    Common hyperparameters: task ("ranking"|"rating"), biases (user/item bias terms; None = on for rating
    and MF), output_activation ("none"|"relu"), loss (None = mse for rating, bce for ranking; also mae,
    huber / bpr, softmax: sampled softmax of each positive against its n_negatives; batch_size then counts
    positives), lr, optimizer (adam|adamw|sgd|adagrad), weight_decay, l2 (on the embedding rows of each
    batch), lr_schedule (none|cosine|step), epochs, batch_size, n_negatives (per positive, redrawn each
    epoch), positive_threshold (ranking from ratings: rating >= threshold is a positive), target_scaling
    (center|minmax, rating task), early_stopping ("auto" = val_ndcg@K / val_rmse, a history column, or
    None), patience (epochs without improvement; best weights restored), seed, device (cpu|cuda|auto),
    eval_k, val_candidates, verbose (tqdm bar per epoch), checkpoint_dir (state saved each epoch), resume
    (continue from checkpoint_dir), threads (torch threads during fit; None = auto: 1 for small data, all
    cores for users + items > 50k or batch >= 16384),
    amp (bf16 autocast of the training forward pass on CUDA; ignored on CPU), sparse (True|False|"auto":
    the embeddings' backward emits sparse gradients, summed into dense ones with index_add_ before the
    optimizer step: the same update, ~1.5-1.7x the samples/s at ML-25M size on CPU; "auto" = on when
    users + items > 50k on CPU, not data parallel).
"""


class _FactorsEstimator(NeuralEstimator):
    """MF and GMF: the same hyperparameters (an embedding size and the common ones)."""

    def __init__(self, factors: int = 32, *, task: str = "ranking", biases: bool | None = None,
                 output_activation: str = "none", loss: str | None = None, lr: float = 0.01, optimizer: str = "adam",
                 weight_decay: float = 0.0, l2: float = 0.0, lr_schedule: str = "none", epochs: int = 10,
                 batch_size: int = 4096, n_negatives: int = 4, positive_threshold: float | None = None,
                 target_scaling: str = "center", early_stopping: str | None = "auto", patience: int | None = 3,
                 seed: int = 0, device: str = "cpu", eval_k: int = 10, val_candidates: int = 99,
                 verbose: bool = False, checkpoint_dir: str | None = None, resume: bool = False,
                 threads: int | None = None, amp: bool = False, sparse: bool | str = "auto") -> None:
        _store(self, locals())

    def _arch(self) -> dict[str, Any]:
        return {"factors": int(self.factors)}


@register("mf")
class MFEstimator(_FactorsEstimator):
    __doc__ = "Matrix factorisation (dot product + user/item/global biases)." + _COMMON_DOC
    kind = "mf"


@register("gmf")
class GMFEstimator(_FactorsEstimator):
    __doc__ = "Generalised matrix factorisation (He et al. 2017; paper preset factors=8)." + _COMMON_DOC
    kind = "gmf"


@register("mlp")
class MLPEstimator(NeuralEstimator):
    __doc__ = ("MLP over concatenated embeddings (paper preset layers=[64, 32, 16, 8]; layers[0] is the "
               "concatenated embedding size)." + _COMMON_DOC)
    kind = "mlp"

    def __init__(self, layers: tuple[int, ...] | list[int] = (64, 32, 16, 8), dropout: float = 0.0,
                 batch_norm: bool = False, *, task: str = "ranking", biases: bool | None = None,
                 output_activation: str = "none", loss: str | None = None, lr: float = 0.005, optimizer: str = "adam",
                 weight_decay: float = 0.0, l2: float = 0.0, lr_schedule: str = "none", epochs: int = 10,
                 batch_size: int = 4096, n_negatives: int = 4, positive_threshold: float | None = None,
                 target_scaling: str = "center", early_stopping: str | None = "auto", patience: int | None = 3,
                 seed: int = 0, device: str = "cpu", eval_k: int = 10, val_candidates: int = 99,
                 verbose: bool = False, checkpoint_dir: str | None = None, resume: bool = False,
                 threads: int | None = None, amp: bool = False, sparse: bool | str = "auto") -> None:
        _store(self, locals())

    def _arch(self) -> dict[str, Any]:
        return {"layers": tuple(self.layers), "dropout": float(self.dropout), "batch_norm": bool(self.batch_norm)}


@register("neumf")
class NeuMFEstimator(NeuralEstimator):
    __doc__ = ("NeuMF: GMF + MLP with separate embeddings, joined by one predict layer (He et al. 2017). "
               "pretrain=True first trains GMF and MLP (Adam) and starts from their weights, the predict "
               "layer blended by alpha; the NeuMF stage then uses `optimizer` (the paper: 'sgd'). pretrain_epochs = "
               "[GMF, MLP] epochs of those stages (None: `epochs`, each early-stopped on the validation data; "
               "`pretrain_best_epochs_` records their best epochs, which the refit of `ncf train` reuses)." + _COMMON_DOC)
    kind = "neumf"
    # Defaults measured on ml-100k leave-one-out (99 sampled negatives, row-order ties), 2 shared cores:
    # GMF 16 + MLP [32, 16, 8], batch 4096, fused Adam lr 0.01, cosine over 6 epochs, 4 negatives:
    # test HR@10 0.646, at 1.5x the samples/s of GMF 32 + MLP [64, 32, 16] (0.643-0.650, seeds 0/1).
    # Also tried, none better within noise (+-0.015 with 943 test users): 64 + [128, 64] (0.647),
    # batch 8192 lr 0.02 (0.638), lr 0.005 x 10 epochs (0.645), 6 negatives (0.620), dropout 0.2,
    # L2 1e-3 (0.631-0.634), user/item biases (0.650).

    def __init__(self, factors: int = 16, layers: tuple[int, ...] | list[int] = (32, 16, 8), dropout: float = 0.0,
                 batch_norm: bool = False, pretrain: bool = False, alpha: float = 0.5,
                 pretrain_epochs: tuple[int, int] | list[int] | None = None, *, task: str = "ranking",
                 biases: bool | None = None, output_activation: str = "none", loss: str | None = None,
                 lr: float = 0.01, optimizer: str = "adam", weight_decay: float = 0.0, l2: float = 0.0,
                 lr_schedule: str = "cosine", epochs: int = 6, batch_size: int = 4096, n_negatives: int = 4,
                 positive_threshold: float | None = None, target_scaling: str = "center",
                 early_stopping: str | None = "auto", patience: int | None = 3, seed: int = 0, device: str = "cpu",
                 eval_k: int = 10, val_candidates: int = 99, verbose: bool = False, checkpoint_dir: str | None = None,
                 resume: bool = False, threads: int | None = None, amp: bool = False,
                 sparse: bool | str = "auto") -> None:
        _store(self, locals())

    def _arch(self) -> dict[str, Any]:
        return {"factors": int(self.factors), "layers": tuple(self.layers), "dropout": float(self.dropout),
                "batch_norm": bool(self.batch_norm)}

    @classmethod
    def from_pretrained(cls, gmf: GMFEstimator, mlp: MLPEstimator, alpha: float = 0.5, **params: Any) -> "NeuMFEstimator":
        """An unfitted NeuMF whose fit starts from fitted GMF and MLP estimators (their architecture is reused)."""
        for est in (gmf, mlp):
            est._check_fitted()
        if gmf.task != mlp.task:
            raise UsageError("GMF and MLP were trained for different tasks", "pretrain both with the same task")
        arch = {"factors": gmf.factors, "layers": tuple(mlp.layers), "dropout": mlp.dropout,
                "batch_norm": mlp.batch_norm, "task": gmf.task}
        est = cls(alpha=alpha, **(arch | params))
        est._pretrained = (gmf.module_, mlp.module_)
        return est

    def _initial_module(self, train, valid) -> ScoreModule | None:
        pre = getattr(self, "_pretrained", None)
        if pre is None and self.pretrain:
            common = {k: v for k, v in self.get_params().items()
                      if k not in ("factors", "layers", "dropout", "batch_norm", "pretrain", "alpha", "checkpoint_dir",
                                   "resume", "optimizer", "pretrain_epochs")}
            stage_epochs = [int(e) for e in self.pretrain_epochs] if self.pretrain_epochs else [self.epochs] * 2
            if len(stage_epochs) != 2 or min(stage_epochs) < 1:
                raise UsageError(f"pretrain_epochs must be two positive epoch counts [GMF, MLP], got {self.pretrain_epochs}",
                                 "pass e.g. pretrain_epochs=[6, 9] or leave it unset")
            g = GMFEstimator(factors=self.factors, **(common | {"epochs": stage_epochs[0]})).fit(train, valid)
            m = MLPEstimator(layers=self.layers, dropout=self.dropout, batch_norm=self.batch_norm,
                             **(common | {"epochs": stage_epochs[1]})).fit(train, valid)
            self.pretrain_history_ = {"gmf": g.history_, "mlp": m.history_}
            self.pretrain_best_epochs_ = [int(g.best_epoch_), int(m.best_epoch_)]
            pre = (g.module_, m.module_)
        if pre is None:
            return None
        module = self._new_module()
        module.load_pretrained(pre[0].cpu(), pre[1].cpu(), float(self.alpha))
        return module


def _store(obj: Estimator, args: dict[str, Any]) -> None:
    """Store constructor arguments as attributes (scikit-learn style)."""
    for k, v in args.items():
        if k not in ("self", "__class__"):
            setattr(obj, k, list(v) if isinstance(v, tuple) else v)


__all__ = ["GMF", "MF", "MLP", "NeuMF", "MFEstimator", "GMFEstimator", "MLPEstimator", "NeuMFEstimator",
           "NeuralEstimator", "rank_metrics", "local_candidates"]
