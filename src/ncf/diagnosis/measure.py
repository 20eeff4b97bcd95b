"""Measurements the findings need that the history alone cannot give (they need the model and the data).

- `mode_effect`: the loss of the same training batches in train mode (dropout on, batch-norm on batch
  statistics) and in eval mode, with the same weights: how much of the running training loss is the
  regularisers rather than the model.
- `validation_scores`: the fitted model and the `bias` / `global_mean` baselines scored on the same
  validation rows (baselines fitted on the same training rows).
- `cold_counts`: validation rows whose user or item never occurs in training.
- `measure`: all of them as one JSON-ready dict; `measure_run(run_dir)` rebuilds the split of a run
  directory from its config and measures its saved model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from ncf.data import Interactions
from ncf.errors import UsageError

# Rows of training data used for the train-vs-eval-mode comparison: enough for a loss stable to ~1e-3,
# small enough to take well under a second.
MODE_EFFECT_ROWS = 16_384
RATING_BASELINES = ("bias", "global_mean")
RANKING_BASELINES = ("pop",)


def _module(est):
    module = getattr(est, "module_", None)
    if module is None:
        raise UsageError(f"{type(est).__name__} has no torch module", "mode_effect needs a fitted neural estimator")
    return module


def mode_effect(est, train: Interactions, rows: int = MODE_EFFECT_ROWS, batch_size: int | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Mean loss of the same batches of `train` in train mode vs eval mode (same weights, no gradient).

    Uses the estimator's own loss and target scaling and its training batch size (batch-norm statistics
    depend on it). Dropout masks come from a fixed seed; the module's mode, its batch-norm running
    statistics and torch's global RNG are restored afterwards.
    """
    import torch

    from ncf import losses

    module = _module(est)
    task = getattr(est, "task", "rating")
    loss_fn = losses.get_loss(est._loss_name(), task)
    bs = int(batch_size or getattr(est, "batch_size", 256) or 256)
    rng = np.random.default_rng([seed, 7])
    if task == "rating":
        sel = rng.permutation(len(train))[:min(rows, len(train))]
        u = train.user_ids[sel].astype(np.int64)
        i = train.item_ids[sel].astype(np.int64)
        y = est._scale(train.ratings[sel])
        bpr = grouped = False
    else:
        from ncf.sampling import positive_keys, sample_negatives

        k = int(getattr(est, "n_negatives", 4))
        mask = est._positives(train)
        pu, pi = train.user_ids[mask].astype(np.int64), train.item_ids[mask].astype(np.int64)
        sel = rng.permutation(len(pu))[:max(1, min(rows, len(pu)) // (1 + k))]
        pu, pi = pu[sel], pi[sel]
        neg = sample_negatives(pu, train.n_items, positive_keys(train.csr()), k, rng).astype(np.int64)
        bpr = est._loss_name() == "bpr"
        grouped = est._loss_name() == "softmax"
        if grouped:  # one row per positive: (user, positive, its k negatives)
            u, i, y = pu, pi, neg
        elif bpr:
            u, i, y = np.repeat(pu, k), np.repeat(pi, k), neg.reshape(-1)  # y: the negative item
        else:
            u = np.concatenate([pu, np.repeat(pu, k)])
            i = np.concatenate([pi, neg.reshape(-1)])
            y = np.concatenate([np.ones(len(pu)), np.zeros(len(pu) * k)]).astype(np.float32)
        perm = rng.permutation(len(u))
        u, i, y = u[perm], i[perm], y[perm]
    dev = next(module.parameters()).device
    tu, ti = torch.from_numpy(u).to(dev), torch.from_numpy(i).to(dev)
    ty = torch.from_numpy(np.asarray(y)).to(dev)

    def batch_loss(s: int) -> float:
        bu, bi, by = tu[s:s + bs], ti[s:s + bs], ty[s:s + bs]
        if grouped:
            sc = module(bu, torch.cat([bi[:, None], by], dim=1))
            return float(loss_fn(sc[:, 0], sc[:, 1:])) * len(bu)
        if bpr:
            sc = module(torch.cat([bu, bu]), torch.cat([bi, by]))
            return float(loss_fn(sc[:len(bu)], sc[len(bu):])) * len(bu)
        return float(loss_fn(module(bu, bi), by)) * len(bu)

    was_training = module.training
    buffers = {k: v.detach().clone() for k, v in module.state_dict().items()}
    starts = [s for s in range(0, len(tu), bs) if min(bs, len(tu) - s) > 1]  # batch-norm needs 2+ rows
    n = sum(min(bs, len(tu) - s) for s in starts)
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(seed)
            module.train()
            train_mode = sum(batch_loss(s) for s in starts) / max(n, 1)
            module.load_state_dict(buffers)  # undo batch-norm running-stat updates before eval mode
            module.eval()
            eval_mode = sum(batch_loss(s) for s in starts) / max(n, 1)
    finally:
        module.load_state_dict(buffers)
        module.train(was_training)
    arch = {"dropout": float(getattr(est, "dropout", 0.0) or 0.0), "batch_norm": bool(getattr(est, "batch_norm", False))}
    return {"train_mode": train_mode, "eval_mode": eval_mode, "delta": train_mode - eval_mode,
            "batches": len(starts), "batch_size": bs, "rows": int(n), "loss": est._loss_name(), **arch}


def cold_counts(train: Interactions, valid: Interactions) -> dict[str, int]:
    """Validation users/items absent from training, and the validation rows that touch one of them."""
    seen_u = train.user_counts() > 0
    seen_i = train.item_counts() > 0
    cold_u = ~seen_u[valid.user_ids]
    cold_i = ~seen_i[valid.item_ids]
    return {"users": int(len(np.unique(valid.user_ids[cold_u]))), "items": int(len(np.unique(valid.item_ids[cold_i]))),
            "rows": int((cold_u | cold_i).sum()), "n_valid": int(len(valid))}


def _rating_metrics(model, valid: Interactions) -> dict[str, float]:
    pred = np.asarray(model.predict(valid.user_ids, valid.item_ids), dtype=np.float64)
    err = pred - valid.ratings.astype(np.float64)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}


def validation_scores(est, train: Interactions, valid: Interactions,
                      baselines: tuple[str, ...] | list[str] | None = None) -> dict[str, dict[str, float]]:
    """{"model": {...}, "<baseline>": {...}}: the model and baselines scored on the same validation rows.

    Rating task: RMSE/MAE (default baselines `bias`, `global_mean`). Ranking task: HR@K/NDCG@K of each
    validation positive among the same fixed sampled candidates the estimator validates with (same
    sampler, same seed; default baseline `pop`). Each baseline is fitted on `train` only. Baselines that
    are not available or do not support the task are left out.
    """
    from ncf.models import REGISTRY

    task = getattr(est, "task", "rating")
    if task == "rating":
        if valid.ratings is None or train.ratings is None:
            return {}
        names = RATING_BASELINES if baselines is None else baselines
        score = _rating_metrics
    else:
        names = RANKING_BASELINES if baselines is None else baselines
        score = _ranking_scorer(est, train, valid)
        if score is None:
            return {}
    out = {"model": score(est, valid)}
    for name in names:
        cls = REGISTRY.get(name)
        if cls is None or task not in getattr(cls, "tasks", (task,)):
            continue
        params = {"task": task} if "task" in cls._param_names() else {}
        out[name] = score(cls(**params).fit(train), valid)
    return out


def _ranking_scorer(est, train: Interactions, valid: Interactions):
    """A function (model, valid) -> {hr@K, ndcg@K} over the estimator's own validation candidates."""
    from ncf.errors import DataError
    from ncf.evaluation.protocols import evaluate_sampled
    from ncf.sampling import eval_candidates, positive_keys

    mask = est._positives(valid) if hasattr(est, "_positives") else np.ones(len(valid), dtype=bool)
    vpos = valid.subset(np.flatnonzero(mask))
    if len(vpos) == 0:
        return None
    k = int(getattr(est, "eval_k", 10))
    try:
        cands = eval_candidates(vpos, positive_keys(train.concat(valid).csr()), n=int(getattr(est, "val_candidates", 99)),
                                seed=int(getattr(est, "seed", 0)))
    except DataError:
        return None

    def score(model, _valid) -> dict[str, float]:
        got = evaluate_sampled(model, vpos, cands, ks=(k,))
        return {m: float(got[m]) for m in (f"hr@{k}", f"ndcg@{k}")}

    return score


def measure(est, train: Interactions, valid: Interactions | None,
            baselines: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """Every measurement for the findings, JSON-ready: mode_effect, baselines (validation scores), cold.

    `baselines`: names to compare with (default: bias + global_mean for rating, pop for ranking)."""
    out: dict[str, Any] = {}
    if getattr(est, "module_", None) is not None:
        out["mode_effect"] = mode_effect(est, train)
    if valid is not None and len(valid):
        out["baselines"] = validation_scores(est, train, valid, baselines)
        out["cold"] = cold_counts(train, valid)
    return _finite(out)


def measure_run(run_dir: str | Path) -> dict[str, Any]:
    """Rebuild the split of a run directory from its config.toml and measure its saved model."""
    import ncf
    from ncf import run as run_mod
    from ncf.runconfig import RunConfig

    run_dir = Path(run_dir)
    cfg = RunConfig.from_file(run_dir / "config.toml")
    est = ncf.load(run_dir)
    data = run_mod.load(cfg)
    split = run_mod.make_split(data, cfg)
    # a refit model (RunConfig.refit) was trained on train + validation: nothing is left to validate it on
    refit = bool(cfg.refit) and split.valid is not None and len(split.valid) > 0
    train = split.train_valid() if refit else split.train
    trained_on = (getattr(est, "data_info_", None) or {}).get("fingerprint")
    if (est.n_users_ != train.n_users or est.n_items_ != train.n_items
            or (trained_on and trained_on != train.fingerprint())):
        raise UsageError(f"the data behind {run_dir} has changed since training",
                         "re-run 'ncf train' on the current data")
    names = [b for b in cfg.baseline_names() if b in ("bias", "global_mean", "pop")] or None
    return measure(est, train, None if refit else split.valid, names)


def _finite(obj: Any) -> Any:
    """Replace NaN/inf by None so the dict is valid JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, (np.floating, np.integer, np.bool_)):
        return _finite(obj.item())
    return obj


def dumps(measurements: dict[str, Any]) -> str:
    """Measurements as JSON text."""
    return json.dumps(_finite(measurements), indent=1)
