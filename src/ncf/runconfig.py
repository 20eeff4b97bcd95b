"""The configuration of one training run (`ncf train`): validated, flat, round-trips to TOML/JSON.

Keys mirror the estimator constructor (factors, layers, lr, ...). A hyperparameter left unset (None)
takes the estimator's default; `RunConfig.resolved()` fills in every default so the written
`config.toml` reproduces the run exactly. Precedence: preset < config file < command-line flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from ncf.config import Config
from ncf.errors import ConfigError, closest

MODELS = ("gmf", "mlp", "neumf", "mf")
SPLITS = ("loo", "random", "temporal", "kfold")
BASELINES = ("global_mean", "bias", "pop", "itemknn", "ease")
DEFAULT_BASELINES = {"rating": ["bias", "global_mean"], "ranking": ["pop", "itemknn", "ease"]}
DEFAULT_SPLIT = {"rating": "random", "ranking": "loo"}

# Defaults of `ncf train` for hyperparameters left unset, where they differ from the estimator classes' own
# (tuned on ml-100k with benchmarks/bench_quality.py; rating needs L2 on the embeddings and smaller batches).
# `defaults = "estimator"` (what a preset gets) turns them off.
_RATING = {"l2": 0.05, "lr": 0.003, "batch_size": 1024, "epochs": 60, "patience": 4}
_SOFTMAX = {"loss": "softmax", "n_negatives": 20, "batch_size": 1024, "lr": 0.005, "epochs": 10, "lr_schedule": "none"}
TUNED_DEFAULTS: dict[tuple[str, str], dict[str, Any]] = {
    # MF: chosen on the inner 5% validation slice of each fold (mean val RMSE 0.9095 vs 0.9109 at lr 0.003, l2 0.05)
    ("rating", "mf"): _RATING | {"factors": 128, "lr": 0.001, "epochs": 100, "l2": 0.065},
    ("rating", "gmf"): _RATING | {"factors": 64},
    ("rating", "mlp"): _RATING | {"layers": [64, 32, 16], "dropout": 0.2},
    ("rating", "neumf"): _RATING | {"factors": 32, "layers": [64, 32, 16], "dropout": 0.2},
    # NeuMF top-K: sampled softmax over each positive and 20 negatives instead of BCE with 4. Chosen on
    # validation only (benchmarks/sweep_loo.py --nested, seeds 0-4, ml-100k LOO): val NDCG@10 (the
    # early-stopping metric) 0.4100 vs 0.3993; nested (validation item held out, refit) NDCG@10 0.4072 vs
    # 0.3976, HR@10 0.6776 vs 0.6770; about 2.5x the training time.
    ("ranking", "neumf"): _SOFTMAX,
    # MF top-K: the same, seeds 0-2: nested NDCG@10 0.4114 vs 0.4015, HR@10 0.6882 vs 0.6833
    ("ranking", "mf"): _SOFTMAX,
}

# Keys that describe the run rather than the estimator.
RUN_KEYS = frozenset({"defaults",
    "data", "columns", "sep", "task", "model", "split", "test_size", "valid_size", "stratify", "tie_break", "n_folds",
    "fold", "seed", "ks", "n_candidates", "baselines", "device", "pretrain", "refit",
})

# `refit` when unset, with tuned defaults: retrain on train + validation for the early-stopped epoch count
# before testing (He et al. 2017 train on everything but the test item). Measured with the validation
# item / slice held out of both runs (benchmarks/sweep_loo.py --nested): ml-100k NeuMF HR@10 0.669 ->
# 0.678 (3 seeds); rating MF val RMSE 0.9143 -> 0.9097 (4 folds), but rating NeuMF (dropout) 0.9086 ->
# 0.9164 (2 folds), so rating refits MF only. Presets (defaults="estimator") do not refit.
DEFAULT_REFIT = {"rating": ("mf",), "ranking": MODELS}


def _csv_list(value: Any) -> Any:
    """Accept "32,16,8" (a flag) as well as [32, 16, 8] (a file)."""
    if isinstance(value, str):
        parts = [p.strip() for p in value.replace(";", ",").split(",")]
        return [p for p in parts if p]
    if isinstance(value, tuple):
        return list(value)
    return value


class RunConfig(Config):
    """Everything `ncf train` needs: data, split, model + hyperparameters, evaluation, device."""

    # --- data
    data: str = Field("ml-100k", description="dataset name (ml-100k, ...), GroupLens zip/folder, or CSV/Parquet")
    columns: str | None = Field(None, description='column mapping for tables, e.g. "user=uid,item=iid,rating=r"')
    sep: str | None = Field(None, description="field separator for text tables")
    # --- task and split
    task: Literal["rating", "ranking"] = Field("ranking", description="rating (RMSE) or ranking (top-K)")
    model: str = Field("neumf", description="gmf | mlp | neumf | mf")
    split: Literal["loo", "random", "temporal", "kfold"] | None = Field(
        None, description="loo (ranking default) | random (rating default) | temporal | kfold")
    test_size: float | None = Field(None, gt=0, lt=1, description="test fraction (random/temporal splits; default 0.2)")
    valid_size: float | None = Field(None, ge=0, lt=1, description="validation fraction of train (0: none; loo: 0 = no validation item)")
    stratify: bool | None = Field(None, description="random split stratified by user")
    tie_break: Literal["row", "item"] = Field("row", description="loo timestamp ties: later file row (RecBole) or larger item id")
    n_folds: int = Field(5, ge=2, le=50, description="number of folds (kfold split)")
    fold: int = Field(0, ge=0, description="which fold is the test fold (kfold split)")
    seed: int = Field(0, ge=0, description="random seed (split, candidates, training)")
    # --- estimator hyperparameters (None: the estimator's default)
    factors: int | None = Field(None, ge=1, le=4096, description="embedding size (MF/GMF; NeuMF's GMF part)")
    layers: list[int] | None = Field(None, description="MLP layer sizes, e.g. 64,32,16 (layers[0] = concatenated user+item MLP embedding)")
    dropout: float | None = Field(None, ge=0, lt=1, description="dropout in the MLP tower")
    batch_norm: bool | None = Field(None, description="batch-norm in the MLP tower")
    biases: bool | None = Field(None, description="user/item bias terms (default: on for rating and MF)")
    output: Literal["none", "linear", "relu"] | None = Field(None, description="output activation: none (= linear) or relu")
    target_scaling: Literal["center", "minmax"] | None = Field(None, description="rating targets: center (minus mean) or minmax to [0,1]")
    loss: Literal["mse", "mae", "huber", "bce", "bpr", "softmax"] | None = Field(
        None, description="mse|mae|huber (rating), bce|bpr|softmax (ranking) [default: mse / bce]")
    optimizer: Literal["adam", "adamw", "sgd", "adagrad"] | None = Field(None, description="adam | adamw | sgd | adagrad")
    lr: float | None = Field(None, gt=0, le=10, description="learning rate")
    lr_schedule: Literal["none", "cosine", "step"] | None = Field(None, description="none | cosine | step")
    weight_decay: float | None = Field(None, ge=0, description="optimizer weight decay (all parameters)")
    l2: float | None = Field(None, ge=0, description="L2 penalty on the embedding rows of each batch")
    epochs: int | None = Field(None, ge=1, le=10_000, description="maximum number of epochs")
    batch_size: int | None = Field(None, ge=1, le=1_000_000, description="training batch size")
    n_negatives: int | None = Field(None, ge=1, le=1000, description="sampled negatives per positive (ranking)")
    positive_threshold: float | None = Field(None, description="ranking from ratings: rating >= this is a positive")
    early_stopping: str | None = Field(None, description='monitored history column, "auto" (val_ndcg@K / val_rmse) or "none"')
    patience: int | None = Field(None, ge=0, description="early-stopping patience in epochs (0: no early stopping)")
    alpha: float | None = Field(None, ge=0, le=1, description="NeuMF pretraining: weight of GMF in the predict layer")
    eval_k: int | None = Field(None, ge=1, description="K of the per-epoch validation metrics")
    val_candidates: int | None = Field(None, ge=1, description="sampled candidates per validation item (per-epoch metrics)")
    threads: int | None = Field(None, ge=1, description="torch threads during training (default: 1 for small data, "
                                "all cores when users + items > 50k or batch >= 16384)")
    amp: bool | None = Field(None, description="bf16 mixed precision (autocast) for training on CUDA; ignored on CPU")
    pretrain: bool = Field(False, description="NeuMF: initialise from pretrained GMF and MLP (paper sec. 3.4.1)")
    refit: bool | None = Field(
        None, description="after early stopping, retrain from scratch on train + validation for the best epoch "
                          "count and test that model [default: on, except rating models other than mf and presets]")
    # --- evaluation
    ks: list[int] = Field(default_factory=lambda: [10], description="cut-offs for ranking metrics, e.g. 5,10,20")
    n_candidates: int = Field(99, ge=1, description="sampled negatives per test item (sampled protocol)")
    baselines: list[str] | None = Field(None, description="baselines to compare with (default depends on task)")
    device: str = Field("auto", description="auto | cpu | cuda | cuda:N | mps")
    defaults: Literal["tuned", "estimator"] = Field(
        "tuned", description="unset hyperparameters: ncf train's tuned defaults, or the estimator's own (presets)")

    # ------------------------------------------------------------- validation
    @field_validator("layers", "ks", "baselines", mode="before")
    @classmethod
    def _lists(cls, value: Any) -> Any:
        return _csv_list(value)

    @field_validator("layers", "ks")
    @classmethod
    def _positive(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and any(v < 1 for v in value):
            raise ValueError("every entry must be >= 1")
        if value is not None and len(value) == 0:
            raise ValueError("must not be empty")
        return value

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        value = value.strip().lower()
        if value not in MODELS:
            guess = closest(value, MODELS)
            raise ConfigError(f"unknown model '{value}'",
                              f"did you mean '{guess}'?" if guess else f"choose one of {', '.join(MODELS)}")
        return value

    @field_validator("baselines")
    @classmethod
    def _baselines(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        out = []
        for name in value:
            name = name.strip().lower()
            if name in ("", "none"):
                continue
            if name not in BASELINES:
                guess = closest(name, BASELINES)
                raise ConfigError(f"unknown baseline '{name}'",
                                  f"did you mean '{guess}'?" if guess else f"choose from {', '.join(BASELINES)}")
            out.append(name)
        return out

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        value = value.strip().lower()
        ok = value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit())
        if not ok:
            raise ConfigError(f"unknown device '{value}'", "use auto, cpu, cuda, cuda:N or mps")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.fold >= self.n_folds:
            raise ConfigError(f"fold {self.fold} is out of range for n_folds={self.n_folds}",
                              f"use fold between 0 and {self.n_folds - 1}")
        if self.pretrain and self.model != "neumf":
            raise ConfigError(f"pretrain applies to neumf only, not '{self.model}'",
                              "drop --pretrain or use --model neumf")
        return self

    # ------------------------------------------------------------- construction
    @classmethod
    def build(
        cls,
        config_file: str | Path | None = None,
        preset: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> "RunConfig":
        """Merge preset < config file < overrides (None values in overrides are ignored) and validate."""
        merged: dict[str, Any] = {}
        if preset:
            merged.update({"defaults": "estimator"} | preset_values(preset))
        if config_file is not None:
            merged.update(cls.from_file(config_file).model_dump(exclude_unset=True))
        flags = {k: v for k, v in (overrides or {}).items() if v is not None}
        source = "command line" if flags else "config"
        merged.update(flags)
        return cls.from_dict(merged, source=source)

    def split_method(self) -> str:
        """The split method, defaulting by task."""
        return self.split or DEFAULT_SPLIT[self.task]

    def refit_enabled(self) -> bool:
        """Whether to refit on train + validation before testing, defaulting by task."""
        if self.refit is None:
            return self.model in DEFAULT_REFIT[self.task] and self.defaults == "tuned"
        return bool(self.refit)

    def baseline_names(self) -> list[str]:
        """Baselines to evaluate, defaulting by task."""
        return list(DEFAULT_BASELINES[self.task] if self.baselines is None else self.baselines)

    def estimator_params(self) -> dict[str, Any]:
        """Hyperparameters explicitly set (not None), as estimator constructor keywords.

        Unset keys take TUNED_DEFAULTS (unless defaults="estimator"); `output` becomes `output_activation`
        ("linear" = "none"); patience 0 turns early stopping off.
        """
        data = {k: v for k, v in self.model_dump().items() if k not in RUN_KEYS and v is not None}
        if self.defaults == "tuned":
            data = TUNED_DEFAULTS.get((self.task, self.model), {}) | data
        if "output" in data:
            out = data.pop("output")
            data["output_activation"] = "none" if out == "linear" else out
        if data.get("patience") == 0:
            data["patience"] = None
            data["early_stopping"] = None
        if data.get("early_stopping") == "none":
            data["early_stopping"] = None
        return data

    def resolved(self, estimator_params: dict[str, Any] | None = None) -> "RunConfig":
        """A copy with defaults made explicit (split, baselines, and the estimator's own defaults)."""
        data = self.model_dump()
        data["split"] = self.split_method()
        data["baselines"] = self.baseline_names()
        data["refit"] = self.refit_enabled()
        params = dict(estimator_params or {})
        if "output_activation" in params:
            params["output"] = params.pop("output_activation")
        if params.get("early_stopping") is None and "early_stopping" in params:
            params["early_stopping"] = "none"
        for key, value in params.items():
            if key in type(self).model_fields and key not in RUN_KEYS and data.get(key) is None and value is not None:
                data[key] = list(value) if isinstance(value, tuple) else value
        return type(self).from_dict(data, source="resolved config")


def preset_names() -> list[str]:
    """Names of the presets defined in ncf.presets (empty if that module is absent)."""
    return sorted(_presets())


def preset_values(name: str) -> dict[str, Any]:
    """The RunConfig keys of a preset; ConfigError with a suggestion when unknown."""
    presets = _presets()
    if name not in presets:
        guess = closest(name, list(presets))
        hint = f"did you mean '{guess}'?" if guess else (
            f"available presets: {', '.join(sorted(presets))}" if presets else "no presets are defined")
        raise ConfigError(f"unknown preset '{name}'", hint)
    return dict(presets[name])


def _presets() -> dict[str, dict[str, Any]]:
    try:
        from ncf.presets import PRESETS
    except ImportError:
        return {}
    return dict(PRESETS)
