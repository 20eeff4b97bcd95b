"""Hyperparameter search with Optuna: `ncf tune --config space.toml --trials N`.

space.toml holds fixed RunConfig keys plus a `[space]` table of the hyperparameters to search, and an
optional `[tune]` table:

    data = "ml-100k"
    model = "neumf"
    epochs = 20

    [space]
    lr = {low = 1e-4, high = 1e-2, log = true}    # float range (log scale)
    factors = {choices = [8, 16, 32, 64]}         # categorical (a bare list means the same)
    n_negatives = {low = 2, high = 8}             # int range (the key's type decides int vs float)
    layers = {choices = [[64, 32, 16], [128, 64, 32]]}

    [tune]
    metric = "val_ndcg@10"      # a history column; default: the early-stopping monitor of the task
    seed = 0                    # TPE sampler seed
    n_startup_trials = 5        # MedianPruner: trials before pruning starts
    n_warmup_steps = 2          # MedianPruner: epochs before a trial can be pruned
    default_trial = true        # trial 0 = the defaults (so the best is measured against them)

Each trial trains on the same data and split (loaded once) and reports the validation metric after every
epoch; the MedianPruner stops trials that fall below the median of earlier trials at the same epoch. A
trial's value is the best per-epoch value of the metric (the epoch whose weights early stopping keeps).
The best trial is written as a complete RunConfig TOML: `ncf train --config best.toml` retrains it with
the same seed, split and hyperparameters and logs the same validation numbers.
"""

from __future__ import annotations

import json
import math
import time
import tomllib
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ncf._io import atomic_write_text
from ncf.errors import ConfigError, UsageError, closest
from ncf.runconfig import RUN_KEYS, RunConfig

SPEC_KEYS = ("low", "high", "log", "step", "choices")
TUNE_KEYS = ("metric", "direction", "seed", "n_startup_trials", "n_warmup_steps", "default_trial")
# run settings that stay fixed (the data and split are loaded once for all trials)
NOT_TUNABLE = RUN_KEYS | {"model", "pretrain", "early_stopping"}
Log = Callable[[str], None]


@dataclass
class Param:
    """One searched hyperparameter: a float/int range or a list of choices."""

    name: str
    kind: str  # "float" | "int" | "categorical"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] = field(default_factory=list)

    def suggest(self, trial) -> Any:
        """The trial's value (categorical lists travel as "a,b,c" strings, which RunConfig accepts)."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return trial.suggest_categorical(self.name, [_encode(c) for c in self.choices])

    def contains(self, value: Any) -> bool:
        """Is `value` a point of this space (used to enqueue the default trial)?"""
        if value is None:
            return False
        if self.kind == "categorical":
            return _encode(value) in [_encode(c) for c in self.choices]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if not (self.low <= value <= self.high):
            return False
        if self.step:
            return math.isclose(((value - self.low) / self.step) % 1, 0, abs_tol=1e-9)
        return self.kind == "float" or float(value).is_integer()

    def describe(self) -> str:
        if self.kind == "categorical":
            return f"{self.name} in {self.choices}"
        return f"{self.name} in [{self.low:g}, {self.high:g}]" + (" log" if self.log else "") + (
            f" step {self.step:g}" if self.step else "")


@dataclass
class TuneSpec:
    """What to search: fixed RunConfig keys, the space, and the study settings."""

    base: dict[str, Any]
    space: dict[str, Param]
    metric: str | None = None
    direction: str | None = None
    seed: int = 0
    n_startup_trials: int = 5
    n_warmup_steps: int = 2
    default_trial: bool = True
    source: str = "space"


@dataclass
class TuneResult:
    """A finished study: the trials table, the best config and its value, the defaults' value."""

    table: pd.DataFrame
    best_config: RunConfig
    best_value: float
    best_trial: int
    default_value: float | None
    metric: str
    direction: str
    study: Any
    out: Path | None = None


def _encode(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def _field_type(name: str) -> type | None:
    ann = RunConfig.model_fields[name].annotation
    args = [a for a in typing.get_args(ann) if a is not type(None)]
    if typing.get_origin(ann) in (typing.Union, types.UnionType) and len(args) == 1:
        ann = args[0]
    return ann if ann in (int, float, bool) else None


# ---------------------------------------------------------------------------- reading the space
def read_space(path: str | Path, data: str | None = None) -> TuneSpec:
    """Parse a space.toml (or .json); `data` overrides its data key. One-line ConfigErrors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"space file {path} does not exist", "check the path")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"space file {path} is not valid TOML: {exc}", "fix the syntax") from None
    if data is not None:
        raw["data"] = data
    return parse_space(raw, source=str(path))


def parse_space(raw: dict[str, Any], source: str = "space") -> TuneSpec:
    """Validate fixed keys, the [space] table and the [tune] table."""
    raw = dict(raw)
    space_raw = raw.pop("space", None)
    tune_raw = raw.pop("tune", {}) or {}
    if not isinstance(space_raw, dict) or not space_raw:
        raise ConfigError(f"{source} has no [space] table", 'add e.g. [space] lr = {low=1e-4, high=1e-2, log=true}')
    if not isinstance(tune_raw, dict):
        raise ConfigError(f"[tune] in {source} must be a table", f"use keys {', '.join(TUNE_KEYS)}")
    base_cfg = RunConfig.from_dict(raw, source=source)  # unknown/bad fixed keys -> one line
    base = base_cfg.model_dump(exclude_unset=True)
    space = {name: _parse_param(name, spec, base, source) for name, spec in space_raw.items()}
    for key in tune_raw:
        if key not in TUNE_KEYS:
            guess = closest(key, TUNE_KEYS)
            raise ConfigError(f"unknown key '{key}' in [tune] of {source}",
                              f"did you mean '{guess}'?" if guess else f"use {', '.join(TUNE_KEYS)}")
    direction = tune_raw.get("direction")
    if direction not in (None, "maximize", "minimize"):
        raise ConfigError(f"bad direction '{direction}' in [tune] of {source}", "use maximize or minimize")
    spec = TuneSpec(base=base, space=space, metric=tune_raw.get("metric"), direction=direction,
                    seed=int(tune_raw.get("seed", 0)), n_startup_trials=int(tune_raw.get("n_startup_trials", 5)),
                    n_warmup_steps=int(tune_raw.get("n_warmup_steps", 2)),
                    default_trial=bool(tune_raw.get("default_trial", True)), source=source)
    return spec


def _parse_param(name: str, spec: Any, base: dict[str, Any], source: str) -> Param:
    where = f"[space] of {source}"
    if name not in RunConfig.model_fields:
        guess = closest(name, [k for k in RunConfig.model_fields if k not in NOT_TUNABLE])
        raise ConfigError(f"unknown hyperparameter '{name}' in {where}",
                          f"did you mean '{guess}'?" if guess else "use RunConfig keys such as lr, factors, layers")
    if name in NOT_TUNABLE:
        raise ConfigError(f"'{name}' in {where} is a run setting, not a searchable hyperparameter",
                          f"set it as a fixed key: {name} = ...")
    if name in base:
        raise ConfigError(f"'{name}' is both a fixed key and in {where}", "keep one of them")
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ConfigError(f"'{name}' in {where} must be a table or a list, got {spec!r}",
                          f"write {name} = {{low=..., high=...}} or {name} = {{choices=[...]}}")
    for key in spec:
        if key not in SPEC_KEYS:
            guess = closest(key, SPEC_KEYS)
            raise ConfigError(f"unknown option '{key}' for '{name}' in {where}",
                              f"did you mean '{guess}'?" if guess else f"use {', '.join(SPEC_KEYS)}")
    if "choices" in spec:
        if set(spec) - {"choices"}:
            raise ConfigError(f"'{name}' in {where} mixes choices with range options (low, high, log, step)", "use either choices or a range")
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"choices for '{name}' in {where} must be a non-empty list", f"e.g. {name} = {{choices=[8, 16]}}")
        for c in choices:
            _check_value(name, c, base, where)
        return Param(name, "categorical", choices=list(choices))
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"'{name}' in {where} needs low and high (or choices)", f"e.g. {name} = {{low=1, high=8}}")
    low, high = spec["low"], spec["high"]
    for v in (low, high, spec.get("step", 1)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"range for '{name}' in {where} must be numbers, got {v!r}", "use numbers for low/high/step")
    if not low < high:
        raise ConfigError(f"low must be below high for '{name}' in {where} (got {low} >= {high})", "swap or fix them")
    log = bool(spec.get("log", False))
    step = spec.get("step")
    if log and low <= 0:
        raise ConfigError(f"log scale for '{name}' in {where} needs low > 0 (got {low})", "raise low or drop log")
    if log and step is not None:
        raise ConfigError(f"'{name}' in {where} cannot have both log and step", "drop one of them")
    if step is not None and step <= 0:
        raise ConfigError(f"step for '{name}' in {where} must be > 0", "fix the step")
    ftype = _field_type(name)
    if ftype is bool or ftype is None:
        raise ConfigError(f"'{name}' in {where} is not numeric, so it takes choices, not a range",
                          f"write {name} = {{choices=[...]}}")
    kind = "int" if ftype is int else "float"
    if kind == "int" and not all(float(v).is_integer() for v in (low, high, step or 1)):
        raise ConfigError(f"'{name}' is an integer but its range in {where} is not", "use whole numbers")
    for v in (low, high):
        _check_value(name, int(v) if kind == "int" else float(v), base, where)
    return Param(name, kind, low=low, high=high, log=log, step=step)


def _check_value(name: str, value: Any, base: dict[str, Any], where: str) -> None:
    try:
        RunConfig.from_dict({**base, name: _encode(value)}, source=where)
    except ConfigError as exc:
        raise ConfigError(f"value {value!r} of '{name}' in {where} is invalid: {exc.message}", "fix the space") from None


# ---------------------------------------------------------------------------- the study
def tune(spec: TuneSpec, trials: int, out: str | Path | None = None, log: Log | None = None,
         timeout: float | None = None, overwrite: bool = False) -> TuneResult:
    """Run `trials` Optuna trials (TPE sampler seeded, MedianPruner per epoch) and write the results to `out`.

    `out` receives `trials.csv`, `best.toml` (a runnable RunConfig) and `study.json`.
    """
    import optuna

    from ncf.run import build_estimator, load, make_split

    if trials < 1:
        raise UsageError(f"--trials must be >= 1, got {trials}", "pass e.g. --trials 20")
    out_path = Path(out) if out is not None else None
    if out_path is not None and out_path.exists() and any(out_path.iterdir()) and not overwrite:
        raise UsageError(f"output folder {out_path} already exists and is not empty", "pass another --out or remove it")
    say = log or (lambda _m: None)
    base_cfg = RunConfig.from_dict(spec.base, source=spec.source)
    probe = build_estimator(base_cfg)
    if not hasattr(probe, "_monitor"):
        raise ConfigError(f"model '{base_cfg.model}' reports no per-epoch validation metric", "tune a neural model")
    metric = spec.metric or probe._monitor()[0] or ("val_rmse" if base_cfg.task == "rating" else f"val_ndcg@{probe.eval_k}")
    direction = spec.direction or ("minimize" if metric.endswith(("loss", "rmse", "mae")) else "maximize")

    data = load(base_cfg)
    split = make_split(data, base_cfg)
    if split.valid is None or len(split.valid) == 0:
        raise ConfigError("tuning needs a validation part but the split has none", "drop valid_size = 0")
    say(f"tuning {base_cfg.model} on {data.name}: {len(split.train):,} train / {len(split.valid):,} valid rows; "
        f"{direction} {metric} over {trials} trials")
    for p in spec.space.values():
        say(f"  {p.describe()}")

    def objective(trial: optuna.Trial) -> float:
        params = {name: p.suggest(trial) for name, p in spec.space.items()}
        cfg = RunConfig.from_dict({**spec.base, **params}, source=f"trial {trial.number}")
        est = build_estimator(cfg)

        def report(trainer) -> None:
            value = trainer.history[-1].get(metric, math.nan)
            if value is None or not math.isfinite(value):
                return
            trial.report(float(value), trainer.epoch)
            if trial.should_prune():
                trial.set_user_attr("epochs", trainer.epoch)
                raise optuna.TrialPruned()

        t0 = time.perf_counter()
        est.fit(split.train, split.valid, callbacks=[report])
        hist = est.history_
        if metric not in hist.columns:
            raise ConfigError(f"metric '{metric}' is not a history column",
                              f"use one of: {', '.join(c for c in hist.columns if c.startswith('val_'))}")
        col = hist[metric].dropna()
        if col.empty:
            return math.nan
        trial.set_user_attr("epochs", int(len(hist)))
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        return float(col.max() if direction == "maximize" else col.min())

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=spec.seed)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps)
    study = optuna.create_study(direction=direction, sampler=sampler, pruner=pruner)
    default_params = _default_params(spec, probe) if spec.default_trial else {}
    if default_params:
        study.enqueue_trial(default_params)

    def progress(study_, trial) -> None:
        val = "-" if trial.value is None else f"{trial.value:.4f}"
        say(f"trial {trial.number:>3}  {trial.state.name.lower():<8} {val:>8}  {_params_text(trial.params)}")

    study.optimize(objective, n_trials=trials, timeout=timeout, callbacks=[progress], catch=())
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and t.value is not None
                and math.isfinite(t.value)]
    if not complete:
        raise UsageError("no trial completed", "run more trials or loosen the pruner ([tune] n_startup_trials)")
    best = study.best_trial
    best_config = RunConfig.from_dict({**spec.base, **best.params}, source="best trial")
    best_config = best_config.resolved(build_estimator(best_config).get_params())  # every default explicit
    default_value = None
    if default_params and study.trials[0].state == optuna.trial.TrialState.COMPLETE:
        default_value = float(study.trials[0].value)
    table = trials_table(study)
    result = TuneResult(table=table, best_config=best_config, best_value=float(best.value), best_trial=best.number,
                        default_value=default_value, metric=metric, direction=direction, study=study)
    if out_path is not None:
        write_results(result, out_path)
        result.out = out_path
    return result


def _default_params(spec: TuneSpec, probe) -> dict[str, Any]:
    """Values the untuned run would use for each searched key, where they lie inside the space."""
    params = probe.get_params()
    if "output_activation" in params:
        params["output"] = params["output_activation"]
    out = {}
    for name, p in spec.space.items():
        value = params.get(name)
        if isinstance(value, tuple):
            value = list(value)
        if p.contains(value):
            out[name] = _encode(value)
    return out if len(out) == len(spec.space) else {}


def _params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def trials_table(study) -> pd.DataFrame:
    """One row per trial: number, state, value, epochs, then one column per hyperparameter."""
    rows = []
    for t in study.trials:
        rows.append({"trial": t.number, "state": t.state.name.lower(), "value": t.value,
                     "epochs": t.user_attrs.get("epochs"), **t.params})
    return pd.DataFrame(rows)


def format_table(result: TuneResult) -> str:
    """The trials as a fixed-width table, the best one marked with *."""
    lines = [f"{'trial':>5}  {'state':<8} {result.metric:>12}  params"]
    for row in result.table.to_dict("records"):
        params = {k: v for k, v in row.items() if k not in ("trial", "state", "value", "epochs")}
        val = "-" if row["value"] is None or (isinstance(row["value"], float) and math.isnan(row["value"])) else f"{row['value']:.4f}"
        mark = " *" if row["trial"] == result.best_trial else ""
        lines.append(f"{row['trial']:>5}  {row['state']:<8} {val:>12}  {_params_text(params)}{mark}")
    return "\n".join(lines)


def write_results(result: TuneResult, out: Path) -> None:
    """trials.csv, best.toml (runnable with `ncf train --config`), study.json."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "trials.csv", result.table.to_csv(index=False))
    result.best_config.to_file(out / "best.toml")
    states = result.table["state"].value_counts().to_dict()
    summary = {"metric": result.metric, "direction": result.direction, "best_value": result.best_value,
               "best_trial": result.best_trial, "best_params": result.study.best_trial.params,
               "default_value": result.default_value, "trials": int(len(result.table)),
               "states": {str(k): int(v) for k, v in states.items()}}
    atomic_write_text(out / "study.json", json.dumps(summary, indent=2))


__all__ = ["Param", "TuneSpec", "TuneResult", "read_space", "parse_space", "tune", "trials_table", "format_table",
           "write_results"]
