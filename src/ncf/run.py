"""One training run, end to end: load -> split -> candidates -> fit -> evaluate (model + baselines) -> run dir.

`train_run(config, out=...)` is what `ncf train` calls; it is equally usable from Python:

    >>> from ncf.run import train_run
    >>> from ncf.runconfig import RunConfig
    >>> result = train_run(RunConfig(epochs=5), out="runs/try")   # doctest: +SKIP
    >>> result.metrics["neumf"]["sampled"]["hr@10"]                 # doctest: +SKIP
"""

from __future__ import annotations

import inspect
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf._io import atomic_dir
from ncf.data import Interactions
from ncf.errors import ConfigError, UsageError
from ncf.runconfig import RunConfig

Log = Callable[[str], None]


@dataclass
class RunResult:
    """What a run produced. `run_dir` is None when nothing was written (out=None)."""

    config: RunConfig  # resolved: every default explicit
    metrics: dict[str, dict[str, dict[str, float]]]  # {model: {protocol: {metric: value}}}
    history: pd.DataFrame
    estimator: Any
    split: Any
    data_summary: dict[str, Any]
    audit: dict[str, Any]
    candidates: np.ndarray | None
    seconds: float
    run_dir: Path | None = None
    baselines: dict[str, Any] = field(default_factory=dict)
    checkpoint: Path | None = None  # the training checkpoint (RUN.in-progress/checkpoint while training)
    measurements: dict[str, Any] | None = None  # diagnosis measurements of the early-stopped model (refit runs)

    def table(self) -> pd.DataFrame:
        """Metrics as a DataFrame: one row per model, columns `protocol/metric`."""
        return metrics_table(self.metrics)


def default_run_dir(model: str, root: str | Path = "runs") -> Path:
    """runs/<timestamp>-<model>."""
    return Path(root) / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{model}"


# ----------------------------------------------------------------------------- the pipeline
def train_run(
    config: RunConfig | dict[str, Any],
    out: str | Path | None = None,
    log: Log | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> RunResult:
    """Run the whole pipeline for `config`; write the run directory to `out` (atomically) if given.

    `log` receives human-readable progress lines (None: silent). A failure leaves no run directory.
    With `out`, neural models checkpoint every epoch into `RUN.in-progress/` (see ncf.resume); resume=True
    continues from that checkpoint (bit-identical to an uninterrupted run).
    """
    from ncf import distributed

    cfg = config if isinstance(config, RunConfig) else RunConfig.from_dict(dict(config))
    say = log if log is not None and distributed.is_main() else (lambda _msg: None)
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.exists() and not overwrite:
        raise UsageError(f"run directory {out_path} already exists", "pass another --out or remove it")
    if out_path is not None:
        from ncf import resume as resume_mod

        resume_mod.check_writable(out_path)  # before any training
    t0 = time.perf_counter()

    data = load(cfg)
    summary = data_summary(data, cfg)
    say(format_data_line(summary))

    split = make_split(data, cfg)
    audit = split_audit(split)
    summary["split"] = {"method": cfg.split_method(), "seed": cfg.seed,
                        "train": len(split.train), "valid": len(split.valid) if split.valid is not None else 0,
                        "test": len(split.test)}
    say(format_split_line(summary["split"], audit))

    candidates = None
    if cfg.task == "ranking":
        candidates = make_candidates(data, split.test, cfg)

    est = build_estimator(cfg)
    resolved = cfg.resolved(est.get_params())
    say(f"model: {cfg.model} ({cfg.task}) {format_params(est)}")
    checkpoint = None
    if out_path is not None and "checkpoint_dir" in est._param_names():
        progress = resume_mod.in_progress_dir(out_path)
        checkpoint = resume_mod.start(progress, resolved, resume=resume, overwrite=overwrite)
        if resume:
            epoch = resume_mod.checkpoint_epoch(progress)
            say(f"resuming after epoch {epoch} from {checkpoint}" if epoch else f"no checkpoint in {progress}: from epoch 1")
        est.set_params(checkpoint_dir=str(checkpoint), resume=resume)
    try:
        fit_estimator(est, split, cfg, say)
    except BaseException:
        if checkpoint is not None and not resume:  # a fresh run that failed before its first checkpoint
            resume_mod.discard_if_empty(resume_mod.in_progress_dir(out_path))
        raise
    if checkpoint is not None:  # the bundle must not point at the in-progress folder
        est.set_params(checkpoint_dir=None, resume=False)
    history = getattr(est, "history_", None)
    history = history.copy() if isinstance(history, pd.DataFrame) else pd.DataFrame()
    refit_info, measurements = None, None
    if cfg.refit_enabled() and distributed.is_main():
        if out_path is not None:  # the report diagnoses the early-stopped run whose history it shows
            measurements = _measure_before_refit(est, split, resolved)
        est, refit_info = refit_estimator(est, split, cfg, say)
    if refit_info is not None:
        summary["refit"] = refit_info
    if not distributed.is_main():  # data parallel: rank 0 evaluates and writes, the other ranks stop here
        return RunResult(config=resolved, metrics={}, history=history, estimator=est, split=split,
                         data_summary=summary, audit=audit, candidates=candidates,
                         seconds=time.perf_counter() - t0)

    metrics: dict[str, dict[str, dict[str, float]]] = {}
    metrics[cfg.model] = evaluate(est, split, candidates, cfg)
    fitted_baselines: dict[str, Any] = {}
    base_train = split.train_valid()
    for name in resolved.baselines or []:
        b = build_baseline(name, cfg)
        b.fit(base_train)
        fitted_baselines[name] = b
        metrics[name] = evaluate(b, split, candidates, cfg)
    seconds = time.perf_counter() - t0
    summary["seconds"] = round(seconds, 3)

    result = RunResult(config=resolved, metrics=metrics, history=history, estimator=est, split=split,
                       data_summary=summary, audit=audit, candidates=candidates, seconds=seconds,
                       baselines=fitted_baselines, checkpoint=checkpoint, measurements=measurements)
    if out_path is not None:
        write_run_dir(result, out_path, overwrite=overwrite)
        result.run_dir = out_path
        if checkpoint is not None:
            resume_mod.finish(resume_mod.in_progress_dir(out_path))
    say("")
    say(format_metrics(metrics, cfg.model))
    if refit_info is not None:
        say(f"* {cfg.model} refit on train + validation ({refit_info['train_rows']:,} rows, "
            f"{refit_info['epochs']} epochs = the early-stopped best) before testing")
    return result


def write_run_dir(result: RunResult, path: Path, overwrite: bool = False) -> Path:
    """Write every run artifact into a temp dir beside `path` and rename it into place at the end."""
    with atomic_dir(path, overwrite=overwrite) as tmp:
        result.config.to_file(tmp / "config.toml")
        if result.checkpoint is not None and Path(result.checkpoint).is_dir():
            shutil.copytree(result.checkpoint, tmp / "checkpoint")
        result.history.to_csv(tmp / "history.csv", index=False)
        _write_json(tmp / "metrics.json", result.metrics)
        _write_json(tmp / "data.json", result.data_summary)
        _write_json(tmp / "audit.json", result.audit)
        if result.candidates is not None:
            np.save(tmp / "candidates.npy", np.ascontiguousarray(result.candidates), allow_pickle=False)
        trained_on = result.split.train_valid() if result.data_summary.get("refit") else result.split.train
        result.estimator.save(tmp / "model", train=trained_on,
                              extra={"run": {"config": result.config.to_dict(), "metrics": result.metrics}})
        report = _report_writer()
        if report is not None:  # tests switch the report off through this seam
            if result.measurements is not None:  # the report reuses measurements cached in diagnosis.json
                from ncf.diagnosis.report import DIAGNOSIS

                _write_json(tmp / DIAGNOSIS, {"measurements": result.measurements})
            report(tmp, location=str(path))
    return path


# ----------------------------------------------------------------------------- steps
def load(cfg: RunConfig) -> Interactions:
    """Load the data named by the config; check it suits the task."""
    from ncf.data.load import load_data

    data = load_data(cfg.data, columns=cfg.columns, sep=cfg.sep)
    if cfg.task == "rating" and data.ratings is None:
        raise ConfigError(f"data '{cfg.data}' has no ratings, so the rating task is impossible",
                          "use --task ranking or give a rating column")
    if len(data) == 0:
        raise ConfigError(f"data '{cfg.data}' has no interactions", "check the file")
    return data


def make_split(data: Interactions, cfg: RunConfig):
    """Split per the config (kfold: the `fold`-th of `n_folds`); split parameters map to each splitter."""
    from ncf.split import split_data

    method = cfg.split_method()
    params: dict[str, Any] = {}
    if method == "kfold":
        params = {"k": cfg.n_folds, "fold": cfg.fold}
    elif method == "loo":
        if cfg.valid_size is not None:
            params["valid"] = cfg.valid_size > 0
        params["tie_break"] = cfg.tie_break
    elif method == "random":
        params = {k: v for k, v in (("test_size", cfg.test_size), ("valid_size", cfg.valid_size),
                                    ("stratify", cfg.stratify)) if v is not None}
    elif method == "temporal":
        params = {k: v for k, v in (("test_frac", cfg.test_size), ("valid_frac", cfg.valid_size)) if v is not None}
    return split_data(data, method=method, seed=cfg.seed, **params)


def split_audit(split) -> dict[str, Any]:
    """The leakage audit of a split as a JSON-ready dict."""
    from ncf import split as split_mod

    return _jsonable(split_mod.audit(split))


def make_candidates(data: Interactions, test: Interactions, cfg: RunConfig) -> np.ndarray:
    """Fixed sampled-evaluation candidates: never a positive of the user anywhere in the data."""
    from ncf.sampling import eval_candidates, positive_keys

    return eval_candidates(test, positive_keys(data.csr()), n=cfg.n_candidates, seed=cfg.seed)


def build_estimator(cfg: RunConfig):
    """The neural estimator named by the config, with its hyperparameters (unknown ones refused)."""
    from ncf.models import REGISTRY

    cls = REGISTRY.get(cfg.model)
    if cls is None:
        raise ConfigError(f"model '{cfg.model}' is not available", "its module failed to import; run with --debug")
    names = cls._param_names()
    params = cfg.estimator_params()
    if "early_stopping" in params and params["early_stopping"] is None and "patience" in params:
        params.pop("patience")
    bad = [k for k in params if k not in names]
    if bad:
        key = "output" if bad[0] == "output_activation" else bad[0]
        raise ConfigError(f"model '{cfg.model}' has no hyperparameter '{key}'",
                          f"remove it; {cfg.model} takes: {', '.join(_config_keys(names))}")
    if "task" in names:
        params["task"] = cfg.task
    if "pretrain" in names:
        params["pretrain"] = cfg.pretrain
    elif cfg.pretrain:
        raise ConfigError("this version of neumf does not support pretraining", "drop --pretrain")
    for key in ("seed", "random_state"):
        if key in names:
            params[key] = cfg.seed
    if "device" in names:
        params["device"] = cfg.device
    if "layers" in params and isinstance(params["layers"], list):
        params["layers"] = tuple(params["layers"])
    return cls(**params)


def _config_keys(param_names: list[str]) -> list[str]:
    """Estimator parameters under their RunConfig names (runtime-only ones left out)."""
    from ncf.runconfig import RUN_KEYS

    keys = ["output" if n == "output_activation" else n for n in param_names]
    return [k for k in keys if k in RunConfig.model_fields and k not in RUN_KEYS]


def build_baseline(name: str, cfg: RunConfig):
    """A baseline with its default hyperparameters, for the config's task."""
    from ncf.models import REGISTRY

    cls = REGISTRY.get(name)
    if cls is None:
        raise ConfigError(f"baseline '{name}' is not available", "choose another with --baselines")
    if cfg.task not in getattr(cls, "tasks", ("rating", "ranking")):
        raise ConfigError(f"baseline '{name}' does not support the {cfg.task} task",
                          f"choose baselines for {cfg.task} with --baselines")
    names = cls._param_names()
    params: dict[str, Any] = {}
    if "task" in names:
        params["task"] = cfg.task
    for key in ("seed", "random_state"):
        if key in names:
            params[key] = cfg.seed
    return cls(**params)


def fit_estimator(est, split, cfg: RunConfig, say: Log) -> None:
    """Fit with the validation part (early stopping) and stream per-epoch lines to `say`."""
    fit_sig = inspect.signature(est.fit).parameters
    kwargs: dict[str, Any] = {}
    streamed = False
    if "callbacks" in fit_sig or "callback" in fit_sig or "on_epoch" in fit_sig:
        key = next(k for k in ("callbacks", "callback", "on_epoch") if k in fit_sig)
        cb = _EpochPrinter(say, cfg)
        kwargs[key] = [cb] if key == "callbacks" else cb
        streamed = True
    from ncf import distributed

    with distributed.data_parallel():  # DDP when launched by torchrun (ncf.distributed), else a no-op
        est.fit(split.train, split.valid, **kwargs)
    hist = getattr(est, "history_", None)
    if not streamed and isinstance(hist, pd.DataFrame):
        printer = _EpochPrinter(say, cfg)
        for row in hist.to_dict("records"):
            printer(row)
    best = getattr(est, "best_epoch_", None)
    if best is not None and isinstance(hist, pd.DataFrame) and len(hist):
        say(f"best epoch {best} of {len(hist)} (weights restored from it)")


def refit_estimator(est, split, cfg: RunConfig, say: Log) -> tuple[Any, dict[str, Any] | None]:
    """A fresh estimator of the same config trained on train + validation for the early-stopped best epoch count.

    Returns (estimator, info); (est, None) unchanged when there is no validation part or no best epoch.
    The refit runs without validation, early stopping or checkpoints; its lr schedule spans its epochs.
    """
    best = getattr(est, "best_epoch_", None)
    if split.valid is None or len(split.valid) == 0 or not best:
        say("refit skipped: no validation part to pick the epoch count on")
        return est, None
    refit_cfg = RunConfig.from_dict(cfg.model_dump() | {"epochs": int(best), "patience": 0}, source="refit config")
    new = build_estimator(refit_cfg)
    stages = getattr(est, "pretrain_best_epochs_", None)
    if stages and "pretrain_epochs" in new.get_params():  # pretraining stages: their own early-stopped counts
        new.set_params(pretrain_epochs=list(stages))
        say(f"refit: pretraining GMF for {stages[0]} and MLP for {stages[1]} epochs (their early-stopped best)")
    train_valid = split.train_valid()
    say(f"refit: training from scratch on train + validation ({len(train_valid):,} rows) for {best} epochs")
    t = time.perf_counter()
    new.fit(train_valid)
    seconds = time.perf_counter() - t
    say(f"refit done in {seconds:.1f}s")
    return new, {"epochs": int(best), "train_rows": len(train_valid), "seconds": round(seconds, 3)}


def _measure_before_refit(est, split, cfg: RunConfig) -> dict[str, Any] | None:
    """Diagnosis measurements of the early-stopped model on its validation rows (None when they fail)."""
    if split.valid is None or len(split.valid) == 0:
        return None
    try:
        from ncf.diagnosis.measure import measure

        names = [b for b in cfg.baseline_names() if b in ("bias", "global_mean", "pop")] or None
        return measure(est, split.train, split.valid, names)
    except Exception:  # noqa: BLE001 - measurements are optional; the report measures again or says why not
        return None


class _EpochPrinter:
    """Formats one history row per epoch."""

    def __init__(self, say: Log, cfg: RunConfig) -> None:
        self.say = say
        self.cfg = cfg

    def __call__(self, row: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(row, dict):  # a Trainer (ncf.training): its latest history row
            hist = getattr(row, "history", None)
            row = dict(hist[-1]) if isinstance(hist, list) and hist else {}
        if not row:
            return
        parts = [f"epoch {int(row.get('epoch', 0)):>3}"]
        for key in ("train_loss", "train_loss_eval", "val_loss"):
            if _finite(row.get(key)):
                parts.append(f"{key} {row[key]:.4f}")
        for key, value in row.items():
            if key.startswith("val_") and key != "val_loss" and _finite(value):
                parts.append(f"{key[4:]} {value:.4f}")
        if _finite(row.get("seconds")):
            parts.append(f"{row['seconds']:.1f}s")
        if _finite(row.get("samples_per_s")):
            parts.append(f"{row['samples_per_s'] / 1000:.0f}k samples/s")
        self.say("  ".join(parts))


def evaluate(model, split, candidates: np.ndarray | None, cfg: RunConfig) -> dict[str, dict[str, float]]:
    """Protocols for the task: `rating`, or `sampled` + `full` ranking (validation items excluded too)."""
    from ncf.evaluation import protocols

    ks = tuple(cfg.ks)
    if cfg.task == "rating":
        return {"rating": _floats(protocols.evaluate_rating(model, split.test))}
    seen = split.train_valid()
    return {
        "sampled": _floats(protocols.evaluate_sampled(model, split.test, candidates, ks=ks)),
        "full": _floats(protocols.evaluate_full(model, split.test, seen.csr(), ks=ks)),
    }


# ----------------------------------------------------------------------------- summaries and printing
def data_summary(data: Interactions, cfg: RunConfig) -> dict[str, Any]:
    """A JSON-ready description of the loaded data."""
    n = len(data)
    return _jsonable({
        "spec": cfg.data,
        "name": data.name,
        "n_users": data.n_users,
        "n_items": data.n_items,
        "n_interactions": n,
        "density": n / max(1, data.n_users * data.n_items),
        "has_ratings": data.ratings is not None,
        "rating_scale": list(data.rating_scale) if data.rating_scale is not None else None,
        "rating_mean": float(data.ratings.mean()) if data.ratings is not None and n else None,
        "has_timestamps": data.timestamps is not None,
        "duplicates_dropped": data.duplicates_dropped,
        "n_catalog_items": data.n_catalog_items,
        "fingerprint": data.fingerprint(),
    })


def format_data_line(s: dict[str, Any]) -> str:
    what = "ratings" if s["has_ratings"] else "interactions"
    line = (f"data: {s['name']}: {s['n_users']:,} users, {s['n_items']:,} items, {s['n_interactions']:,} {what} "
            f"(density {100 * s['density']:.2f}%")
    if s.get("rating_scale"):
        line += f", scale {s['rating_scale'][0]:g}-{s['rating_scale'][1]:g}"
    if s.get("duplicates_dropped"):
        line += f", {s['duplicates_dropped']:,} duplicates dropped"
    return line + ")"


def format_split_line(s: dict[str, Any], audit: dict[str, Any]) -> str:
    line = f"split: {s['method']} (seed {s['seed']}): train {s['train']:,} / valid {s['valid']:,} / test {s['test']:,}"
    return line + "; audit: " + _audit_text(audit)


def _audit_text(audit: dict[str, Any]) -> str:
    shared = sum(int(audit.get(k, 0)) for k in ("pairs_train_valid", "pairs_train_test", "pairs_valid_test"))
    parts = ["no shared user-item pairs between parts" if shared == 0 else f"LEAKAGE: {shared} shared user-item pairs"]
    if "cold_users_test" in audit:
        parts.append(f"cold test users {audit['cold_users_test']} / items {audit.get('cold_items_test', 0)}")
    if audit.get("test_older_than_train"):
        parts.append(f"{audit['test_older_than_train']:,} test rows older than the newest train row")
    if "tied_users" in audit:
        parts.append(f"{audit['tied_users']} users with tied latest timestamps (tie rule: {audit.get('tie_break')})")
    return ", ".join(parts)


def metrics_table(metrics: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """{model: {protocol: {metric: v}}} as a DataFrame (rows: models; columns: protocol/metric)."""
    rows = {m: {f"{p}/{k}": v for p, d in prot.items() for k, v in d.items()} for m, prot in metrics.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def format_metrics(metrics: dict[str, dict[str, dict[str, float]]], model: str) -> str:
    """A small fixed-width table, the trained model first, then the baselines."""
    preferred = ["rmse", "mae", "hr@10", "ndcg@10", "recall@10", "mrr", "auc"]
    cols: list[tuple[str, str]] = []
    for prot in ("rating", "sampled", "full"):
        keys = {k for d in metrics.values() for k in d.get(prot, {})}
        chosen = [k for k in preferred if k in keys]
        chosen += sorted(k for k in keys if k.split("@")[0] in ("hr", "ndcg") and k not in chosen)
        if prot == "full":
            chosen = [k for k in chosen if k.split("@")[0] in ("hr", "ndcg", "recall")]
        cols += [(prot, k) for k in chosen]
    if not cols:
        return "(no metrics)"
    names = [model] + [m for m in metrics if m != model]
    head = ["model"] + [f"{p}:{k}" for p, k in cols]
    width = max(12, *(len(h) + 1 for h in head))
    lines = ["".join(h.ljust(width) for h in head)]
    for name in names:
        vals = [metrics[name].get(p, {}).get(k) for p, k in cols]
        cells = [name + (" *" if name == model else "")] + ["-" if v is None else f"{v:.4f}" for v in vals]
        lines.append("".join(c.ljust(width) for c in cells))
    return "\n".join(lines)


_SHOWN = ("factors", "layers", "dropout", "batch_norm", "biases", "output_activation", "loss", "optimizer", "lr",
          "weight_decay", "l2", "epochs", "batch_size", "n_negatives", "patience", "pretrain")


def format_params(est) -> str:
    """The main hyperparameters on one line."""
    params = est.get_params()
    if hasattr(est, "_loss_name"):
        params["loss"] = est._loss_name()
    return " ".join(f"{k}={params[k]}" for k in _SHOWN if params.get(k) is not None)


# ----------------------------------------------------------------------------- helpers
def _report_writer() -> Callable[..., Any] | None:
    """The diagnosis report writer (imported lazily: matplotlib is only needed here)."""
    from ncf.diagnosis.report import write_report

    return write_report


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float, np.floating, np.integer)) and np.isfinite(v)


def _floats(d: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in d.items()}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=False), encoding="utf-8")
