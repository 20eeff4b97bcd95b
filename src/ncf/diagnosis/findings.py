"""Findings: read a training history (plus optional measurements) and say what the curves mean.

Pure functions: inputs are the `history_` DataFrame (see docs/CONTRACTS.md) and plain dicts of numbers
measured elsewhere (`ncf.diagnosis.measure`); the output is a list of `Finding`, each with the numbers of
this run as evidence. A healthy history yields no finding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

# ----------------------------------------------------------------------------- thresholds
# Running mean vs end-of-epoch weights: a running train loss more than 10% above the same epoch's
# eval-mode loss is a gap large enough to change how a reader compares the curves (smaller gaps are
# within the epoch-to-epoch wiggle of a normal run).
RUNNING_MEAN_GAP_REL = 0.10
# "Validation below training" only counts when val is at least 1% under the running train loss;
# closer than that the two are the same number up to sampling noise.
VAL_BELOW_TRAIN_REL = 0.01
# ... and it is "not explained by measurement" only when val is also more than 5% under the eval-mode
# training loss: train_loss_eval is measured on a sample of training rows and validation is a random
# part of the data, so a few percent either way is sampling noise.
VAL_BELOW_EVAL_REL = 0.05
# Dropout/batch-norm: the same batch scoring more than 5% worse in train mode than in eval mode means the
# regularisers alone visibly inflate the training curve.
MODE_EFFECT_REL = 0.05
# Overfitting: validation must rise at least 2% above its best while training loss keeps falling at
# least 5%; smaller rises are noise from one validation pass to the next.
OVERFIT_VAL_RISE_REL = 0.02
OVERFIT_TRAIN_FALL_REL = 0.05
# Plateau: across 3+ epochs the best validation loss is within 2% of epoch 1's — the net learned what it
# could in the first epoch and never improved after it.
PLATEAU_MIN_EPOCHS = 3
PLATEAU_IMPROVE_REL = 0.02
# Divergence: a loss that is NaN/inf, or an end-of-run training loss 50% above its own minimum,
# means the optimiser is stepping out of the basin (learning rate too high).
DIVERGE_RISE_REL = 0.50
# Oscillation: at least 3 direction changes of the training loss, each step larger than 2% of its level,
# in more than half of the steps — a smooth descent changes direction rarely and by little.
OSC_MIN_FLIPS = 3
OSC_STEP_REL = 0.02
OSC_FLIP_FRACTION = 0.5
# No progress: over 3+ epochs the end-of-epoch training loss fell less than 2% in total — a learning
# rate this small (or a model this constrained) wastes the epochs.
NO_PROGRESS_MIN_EPOCHS = 3
NO_PROGRESS_REL = 0.02
# Baselines: a model within 1% of a baseline on the same validation data is "no better than" it;
# differences that small are below the run-to-run spread of seeds.
BASELINE_MARGIN_REL = 0.01
# Cold start: more than 1% of validation rows with a user or item unseen in training changes what the
# validation number measures (those rows can only get a fallback prediction).
COLD_ROWS_REL = 0.01

SEVERITIES = ("info", "warning", "problem")
# Baselines, weakest first, with what losing to each means.
BASELINE_ORDER = {"global_mean": 0, "pop": 1, "bias": 2, "itemknn": 3, "ease": 4}
BASELINES_EXPLAINED = {
    "global_mean": ("predicting the global mean", "problem",
                    "The network has learned nothing usable about users or items."),
    "pop": ("recommending the most popular items", "problem",
            "The network has learned nothing personal: popularity alone ranks as well."),
    "bias": ("predicting each user's and item's average (bias model)", "problem",
             "The embeddings and MLP add nothing over per-user and per-item averages: the interaction part "
             "is overfitting or mis-specified."),
    "itemknn": ("item-based nearest neighbours", "warning",
                "A simple neighbourhood method ranks at least as well; the network is under-trained or over-fitted."),
    "ease": ("EASE (a linear item-item model)", "warning",
             "A strong linear baseline ranks at least as well; typical on small data, but worth knowing."),
}
LOWER_IS_BETTER = ("loss", "rmse", "mae", "mse")
# Preferred validation metric, in order, when the caller names none.
METRIC_ORDER = ("mae", "rmse", "ndcg@10", "hr@10")


@dataclass(frozen=True)
class Finding:
    """One diagnosis: what was seen (with this run's numbers), what it means, and what to try next."""

    code: str
    severity: str  # info | warning | problem
    title: str
    evidence: str
    meaning: str
    try_next: str
    numbers: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    def as_text(self) -> str:
        """Plain text for the terminal: title line, then evidence, meaning and next step."""
        return (f"[{self.severity}] {self.code}: {self.title}\n"
                f"  evidence: {self.evidence}\n  meaning:  {self.meaning}\n  try next: {self.try_next}")


def lower_is_better(metric: str) -> bool:
    """True for losses and error metrics, False for ranking metrics."""
    return metric.split("@")[0].lower() in LOWER_IS_BETTER


def _f(x: float) -> str:
    """A number with 3 significant decimals, the way the findings print it."""
    if x is None or not math.isfinite(x):
        return str(x)
    ax = abs(x)
    if ax >= 100:
        return f"{x:.1f}"
    if ax >= 0.01 or ax == 0:
        return f"{x:.3f}"
    return f"{x:.2g}"


def _sg(x: float) -> str:
    """A signed difference with 4 decimals; exactly zero prints without a sign."""
    return "0.0000" if x == 0 else f"{x:+.4f}"


def _col(history: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in history.columns:
        return None
    col = pd.to_numeric(history[name], errors="coerce").to_numpy(dtype=float)
    return None if np.all(np.isnan(col)) else col


def primary_metric(history: pd.DataFrame, metric: str | None = None) -> str | None:
    """The validation metric to judge by: `metric` if given, else the first of METRIC_ORDER in history."""
    if metric:
        return metric
    for m in METRIC_ORDER:
        if f"val_{m}" in history.columns:
            return m
    extra = [c[4:] for c in history.columns if c.startswith("val_") and c != "val_loss"]
    return extra[0] if extra else None


def analyse(
    history: pd.DataFrame,
    *,
    baselines: dict[str, dict[str, float]] | None = None,
    mode_effect: dict[str, float] | None = None,
    cold: dict[str, float] | None = None,
    audit: dict[str, Any] | None = None,
    metric: str | None = None,
) -> list[Finding]:
    """All findings for one run, most severe first.

    history: one row per epoch (`epoch`, `train_loss`, `train_loss_eval`, `val_loss`, `val_<metric>`, `lr`).
    baselines: validation metrics on the same validation rows, `{"bias": {"mae": ..}, "global_mean": {..},
    "model": {..}}` ("model" optional: the fitted model scored the same way; else the best epoch of history).
    mode_effect: `{"train_mode": loss, "eval_mode": loss, "batches": n}` — same batches, both modes.
    cold: `{"users": n, "items": n, "rows": n, "n_valid": n}` — validation rows unseen in training.
    audit: the split's leakage audit (`ncf.split.audit`).
    """
    if history is None or len(history) == 0:
        return []
    h = history.sort_values("epoch").reset_index(drop=True) if "epoch" in history.columns else history
    metric = primary_metric(h, metric)
    out: list[Finding] = []
    diverged = _divergence(h)
    out += diverged
    if not diverged:
        out += _val_below_train(h, mode_effect)
        out += _running_mean_gap(h, mode_effect)
        out += _mode_effect(mode_effect)
        out += _overfitting(h)
        out += _plateau(h)
        out += _oscillation(h)
        out += _no_progress(h)
    out += _baselines(h, baselines, metric)
    out += _cold(cold)
    out += _audit(audit)
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    return sorted(out, key=lambda f: rank.get(f.severity, 9))


# ----------------------------------------------------------------------------- the checks
def _epochs(h: pd.DataFrame) -> np.ndarray:
    e = _col(h, "epoch")
    return e.astype(int) if e is not None else np.arange(1, len(h) + 1)


def _train_curve(h: pd.DataFrame) -> tuple[np.ndarray | None, str]:
    """The training curve that measures optimisation best: eval-mode if recorded, else the running mean."""
    t = _col(h, "train_loss_eval")
    if t is not None and np.isfinite(t).all():
        return t, "train_loss_eval"
    return _col(h, "train_loss"), "train_loss"


def _divergence(h: pd.DataFrame) -> list[Finding]:
    ep = _epochs(h)
    cols = {c: _col(h, c) for c in ("train_loss", "train_loss_eval", "val_loss")}
    lr = _col(h, "lr")
    lr_txt = f" (learning rate {lr[0]:.2g})" if lr is not None else ""
    for name, v in cols.items():
        if v is not None and not np.isfinite(v).all():
            first = int(ep[np.argmax(~np.isfinite(v))])
            return [Finding(
                "divergence", "problem", "Training diverged: the loss became NaN/inf",
                f"{name} is not finite from epoch {first} on{lr_txt}; last finite value "
                f"{_f(float(v[np.isfinite(v)][-1])) if np.isfinite(v).any() else 'none'}.",
                "The optimiser stepped so far that the weights overflowed; nothing after that epoch is usable.",
                "Lower the learning rate 3-10x, check the inputs for NaN/huge targets, or clip gradients.",
                {"epoch": float(first)})]
    t, name = _train_curve(h)
    if t is None or len(t) < 2:
        return []
    lo = float(np.min(t))
    rise = (float(t[-1]) - lo) / max(abs(lo), 1e-12)
    if rise > DIVERGE_RISE_REL and int(np.argmin(t)) < len(t) - 1:
        at = int(ep[int(np.argmin(t))])
        return [Finding(
            "divergence", "problem", "Training loss is rising: the optimiser is diverging",
            f"{name} reached its minimum {_f(lo)} at epoch {at} and ended at {_f(float(t[-1]))} "
            f"(+{rise:.0%}){lr_txt}.",
            "Training loss should not grow on the data the model is fitted to; growing steps mean the "
            "learning rate is too high for this loss surface.",
            "Lower the learning rate 3-10x or add a decaying schedule; keep the weights of epoch "
            f"{at} (early stopping does).",
            {"min": lo, "last": float(t[-1]), "rise_rel": rise, "epoch_min": float(at)})]
    return []


def _has_regularisers(mode_effect: dict[str, Any]) -> bool:
    """False only when the measurement says the model has neither dropout nor batch-norm."""
    return not (float(mode_effect.get("dropout", 1) or 0) == 0 and mode_effect.get("batch_norm", True) is False)


def _mode_text(mode_effect: dict[str, float] | None) -> tuple[float | None, str]:
    if not mode_effect or "train_mode" not in mode_effect or "eval_mode" not in mode_effect:
        return None, ""
    d = float(mode_effect["train_mode"]) - float(mode_effect["eval_mode"])
    d = 0.0 if abs(d) < 5e-5 else d  # below the printed precision: no sign to show
    if not _has_regularisers(mode_effect):
        return d, "the model has no dropout or batch-norm, so train and eval mode score alike"
    return d, (f"dropout/batch-norm, measured with the final weights on the same {int(mode_effect.get('batches', 1))} "
               f"batch(es) in train vs eval mode, change the loss by {_sg(d)} "
               f"({float(mode_effect['train_mode']):.4f} vs {float(mode_effect['eval_mode']):.4f})")


def _val_below_train(h: pd.DataFrame, mode_effect: dict[str, float] | None) -> list[Finding]:
    tr, va = _col(h, "train_loss"), _col(h, "val_loss")
    if tr is None or va is None:
        return []
    below = va < tr * (1 - VAL_BELOW_TRAIN_REL)
    if not below.any():
        return []
    ep = _epochs(h)
    i = int(np.argmax(below))  # the first such epoch: the one users ask about
    te = _col(h, "train_loss_eval")
    n_below = int(below.sum())
    ev = (f"in {n_below} of {len(h)} epochs val_loss is below the running train_loss; epoch {ep[i]}: "
          f"train_loss {_f(tr[i])}, val_loss {_f(va[i])} (gap {_f(tr[i] - va[i])})")
    nums = {"epoch": float(ep[i]), "train_loss": float(tr[i]), "val_loss": float(va[i]), "epochs_below": n_below}
    d, mode_txt = _mode_text(mode_effect)
    if te is None or not np.isfinite(te[i]):
        return [Finding(
            "val-below-train", "warning", "Validation loss is below training loss (cause not measured)",
            ev + ".", "Training loss is a running mean in train mode (dropout on, weights still improving); "
                      "without the eval-mode training loss the cause cannot be told apart from an easier validation set.",
            "Record train_loss_eval (ncf does by default) and re-run `ncf diagnose`.", nums)]
    running = float(tr[i] - te[i])
    nums.update(train_loss_eval=float(te[i]), running_part=running)
    ev += f"; the same end-of-epoch weights score {_f(te[i])} on the training data in eval mode"
    if d is not None:
        ev += f"; {mode_txt}"
        nums["mode_part"] = d
    unexplained = below & np.isfinite(te) & (va < te * (1 - VAL_BELOW_EVAL_REL))
    if not unexplained.any():
        parts = (f"{_f(running)} of the gap is measurement: the running mean averages losses of earlier, "
                 f"worse weights" + (" (and dropout)" if not mode_effect or _has_regularisers(mode_effect) else ""))
        if d is not None and _has_regularisers(mode_effect):
            parts += (f", of which dropout/batch-norm is only {_sg(d)} and the "
                      f"running mean {_f(running - d)}")
        rel = "below" if te[i] < va[i] * (1 - VAL_BELOW_TRAIN_REL) else "level with"
        return [Finding(
            "val-below-train", "info", "Validation below training loss is explained by how training loss is measured",
            ev + ".",
            f"Not better generalisation: {parts}. Measured the same way, training loss ({_f(te[i])}) is "
            f"{rel} validation ({_f(va[i])}).",
            "Compare train_loss_eval with val_loss (the dashed curve in the plot), not the running train_loss.",
            nums)]
    i = int(np.argmax(unexplained))
    nums.update(epoch=float(ep[i]), train_loss=float(tr[i]), val_loss=float(va[i]), train_loss_eval=float(te[i]))
    ev = (f"epoch {ep[i]}: val_loss {_f(va[i])} is below the running train_loss {_f(tr[i])} and "
          f"{(te[i] - va[i]) / te[i]:.0%} below the same weights' eval-mode training loss {_f(te[i])}")
    return [Finding(
        "val-below-train", "warning", "Validation loss is below training loss even measured the same way",
        ev + ".",
        "The validation rows are easier than the training rows: a split that is not random (e.g. popular "
        "items or heavy users over-represented in validation), duplicated rows leaking across the split, "
        "or a tiny validation set.",
        "Check the leakage audit and the split; compare per-user/item counts of train and validation.", nums)]


def _running_mean_gap(h: pd.DataFrame, mode_effect: dict[str, float] | None) -> list[Finding]:
    tr, te, va = _col(h, "train_loss"), _col(h, "train_loss_eval"), _col(h, "val_loss")
    if tr is None or te is None:
        return []
    ok = np.isfinite(te) & np.isfinite(tr)
    rel = np.where(ok, (tr - te) / np.maximum(np.abs(te), 1e-12), 0.0)
    # At epoch 1 a gap is expected (the net starts untrained); it only misleads when it hides the order
    # of train and validation. Later epochs: any large gap distorts the curve.
    misleading = rel > RUNNING_MEAN_GAP_REL
    if va is not None:
        misleading[0] = misleading[0] and (tr[0] > va[0])
    if not misleading.any():
        return []
    ep = _epochs(h)
    i = int(np.argmax(np.where(misleading, rel, -np.inf)))
    gap = float(tr[i] - te[i])
    d, mode_txt = _mode_text(mode_effect)
    split = ""
    if d is not None and _has_regularisers(mode_effect):
        split = (f" Of the {_f(gap)}, {mode_txt}; the remaining {_f(gap - d)} is the running mean over "
                 f"weights that improved during the epoch.")
    elif d is not None:
        split = f" All of it is the running mean: {mode_txt}."
    later = [int(e) for e in ep[misleading]]
    return [Finding(
        "running-mean-gap", "info", "The training curve is a running mean: it overstates the training loss",
        f"epoch {ep[i]}: running train_loss {_f(tr[i])} vs end-of-epoch weights in eval mode "
        f"{_f(te[i])} (+{rel[i]:.0%}); gap above {RUNNING_MEAN_GAP_REL:.0%} in epoch(s) "
        f"{', '.join(map(str, later[:8]))}{', ...' if len(later) > 8 else '.'}{split}",
        "train_loss averages the loss of every batch while the weights were still changing, in train mode; "
        "it is not the loss of the model you keep. The train/validation gap in the plot is partly this "
        "measurement, not generalisation.",
        "Read train_loss_eval for the model's real training loss; judge over/underfitting from it and val_loss.",
        {"epoch": float(ep[i]), "train_loss": float(tr[i]), "train_loss_eval": float(te[i]), "gap": gap,
         **({"mode_part": d} if d is not None else {})})]


def _mode_effect(mode_effect: dict[str, float] | None) -> list[Finding]:
    d, mode_txt = _mode_text(mode_effect)
    if d is None:
        return []
    ev_loss = float(mode_effect["eval_mode"])
    rel = d / max(abs(ev_loss), 1e-12)
    if rel <= MODE_EFFECT_REL:
        return []
    return [Finding(
        "dropout-effect", "info", "Dropout/batch-norm visibly raise the training loss",
        f"{mode_txt} (+{rel:.0%}).",
        "In train mode dropout removes units and batch-norm uses batch statistics, so the same weights score "
        "worse than at evaluation; this inflates the running training loss, not the validation loss.",
        "Expected when regularising; if the model underfits, lower the dropout rate.",
        {"train_mode": float(mode_effect["train_mode"]), "eval_mode": ev_loss, "delta": d})]


def _overfitting(h: pd.DataFrame) -> list[Finding]:
    va = _col(h, "val_loss")
    t, tname = _train_curve(h)
    if va is None or t is None or len(h) < 3:
        return []
    ep = _epochs(h)
    b = int(np.nanargmin(va))
    if b >= len(va) - 1:
        return []
    rise = (float(va[-1]) - float(va[b])) / max(abs(float(va[b])), 1e-12)
    fall = (float(t[b]) - float(t[-1])) / max(abs(float(t[b])), 1e-12)
    if rise < OVERFIT_VAL_RISE_REL or fall < OVERFIT_TRAIN_FALL_REL:
        return []
    onset = int(ep[b + 1])
    return [Finding(
        "overfitting", "warning", f"Overfitting from epoch {onset}",
        f"val_loss is best at epoch {ep[b]} ({_f(va[b])}) and rises to {_f(va[-1])} by epoch {ep[-1]} "
        f"(+{rise:.0%}) while {tname} keeps falling {_f(t[b])} -> {_f(t[-1])} (-{fall:.0%}).",
        "After its best epoch the model memorises the training rows (ids with few ratings are the easiest to "
        "memorise with large embeddings) and gets worse on new ones.",
        f"Keep the epoch-{ep[b]} weights (early stopping), and regularise: weight decay/L2 (e.g. 1e-4..1e-3), "
        "smaller embeddings, more dropout, or a larger batch.",
        {"best_epoch": float(ep[b]), "best_val": float(va[b]), "last_val": float(va[-1]),
         "val_rise_rel": rise, "train_fall_rel": fall, "onset_epoch": float(onset)})]


def _plateau(h: pd.DataFrame) -> list[Finding]:
    va = _col(h, "val_loss")
    t, tname = _train_curve(h)
    if va is None or len(h) < PLATEAU_MIN_EPOCHS:
        return []
    ep = _epochs(h)
    improve = (float(va[0]) - float(np.nanmin(va))) / max(abs(float(va[0])), 1e-12)
    if improve >= PLATEAU_IMPROVE_REL:
        return []
    if t is not None:  # both flat is "no progress" (learning rate), reported by _no_progress
        t_fall = (float(t[0]) - float(np.nanmin(t))) / max(abs(float(t[0])), 1e-12)
        if t_fall < NO_PROGRESS_REL:
            return []
    b = int(np.nanargmin(va))
    return [Finding(
        "val-plateau", "warning", "Validation never improves after the first epoch",
        f"val_loss {_f(va[0])} at epoch {ep[0]}, best {_f(va[b])} at epoch {ep[b]} "
        f"(-{improve:.1%} over {len(h)} epochs)"
        + (f", while {tname} fell {_f(t[0])} -> {_f(t[-1])}." if t is not None else "."),
        "One epoch already captured what generalises (mostly user and item averages); the later epochs only "
        "fit the training rows. Compare with the bias baseline: if it is as good, the interaction part "
        "adds nothing.",
        "Regularise (L2, smaller embeddings), lower the learning rate or raise the batch size so that early "
        "epochs do not overshoot; stop after 1-2 epochs otherwise.",
        {"first_val": float(va[0]), "best_val": float(va[b]), "improve_rel": improve, "best_epoch": float(ep[b])})]


def _oscillation(h: pd.DataFrame) -> list[Finding]:
    t, tname = _train_curve(h)
    if t is None or len(t) < OSC_MIN_FLIPS + 2:
        return []
    d = np.diff(t)
    big = np.abs(d) > OSC_STEP_REL * np.maximum(np.abs(t[:-1]), 1e-12)
    s = np.sign(d)
    flips = (s[1:] != s[:-1]) & big[1:] & big[:-1]
    n = int(flips.sum())
    if n < OSC_MIN_FLIPS or n / max(len(flips), 1) <= OSC_FLIP_FRACTION:
        return []
    lr = _col(h, "lr")
    return [Finding(
        "oscillation", "warning", "Training loss oscillates: learning rate likely too high",
        f"{tname} changes direction {n} times in {len(d)} steps, by up to {_f(float(np.max(np.abs(d))))}"
        + (f" (learning rate {lr[-1]:.2g})" if lr is not None else "") + ".",
        "Each epoch overshoots the minimum and comes back; the model you keep depends on which epoch you stop.",
        "Halve the learning rate (or use a decaying schedule / larger batch).",
        {"flips": float(n), "steps": float(len(d))})]


def _no_progress(h: pd.DataFrame) -> list[Finding]:
    t, tname = _train_curve(h)
    if t is None or len(t) < NO_PROGRESS_MIN_EPOCHS:
        return []
    fall = (float(t[0]) - float(np.nanmin(t))) / max(abs(float(t[0])), 1e-12)
    if fall >= NO_PROGRESS_REL:
        return []
    lr = _col(h, "lr")
    lr_txt = f" at learning rate {lr[0]:.2g}" if lr is not None else ""
    return [Finding(
        "no-progress", "warning", "Training makes no progress: learning rate too low (or model too constrained)",
        f"{tname} {_f(t[0])} at epoch 1 and {_f(float(np.nanmin(t)))} at best over {len(t)} epochs "
        f"(-{fall:.1%}){lr_txt}.",
        "The weights barely move: steps are too small, or regularisation/architecture pins the model "
        "(e.g. a saturated ReLU output).",
        "Raise the learning rate 3-10x; check that the output layer can reach the target range.",
        {"fall_rel": fall})]


def _baselines(h: pd.DataFrame, baselines: dict[str, dict[str, float]] | None, metric: str | None) -> list[Finding]:
    if not baselines or not metric:
        return []
    low = lower_is_better(metric)
    col = _col(h, f"val_{metric}")
    saved = (baselines.get("model") or {}).get(metric)
    if col is not None and np.isfinite(col).any():
        # the best epoch is the most generous reading of the model: if even it loses, the finding stands
        b = int(np.nanargmin(col) if low else np.nanargmax(col))
        model = float(col[b])
        src = f"its best epoch, {int(_epochs(h)[b])}"
        if saved is not None and math.isfinite(saved) and abs(saved - model) > 1e-4 * max(abs(model), 1e-12):
            src += f"; the saved model scores {_f(saved)}"
    elif saved is not None and math.isfinite(saved):
        model, src = float(saved), "the saved model"
    else:
        return []
    lost = []
    for name in sorted((n for n in baselines if n != "model"), key=lambda n: BASELINE_ORDER.get(n, 99)):
        base = baselines[name].get(metric)
        if base is None or not math.isfinite(base):
            continue
        margin = BASELINE_MARGIN_REL * abs(base)
        if (model > base - margin) if low else (model < base + margin):
            lost.append((name, float(base)))
    if not lost:
        return []
    # the weakest baseline the model fails to beat is the finding; the others are listed as evidence
    name, base = lost[0]
    label, sev, meaning = BASELINES_EXPLAINED.get(name, (f"the {name} baseline", "warning",
                                                        "A simple, non-neural method does as well on this data."))
    others = ", ".join(f"{k} {_f(v[metric])}" for k, v in baselines.items()
                       if k not in (name, "model") and v.get(metric) is not None)
    return [Finding(
        f"no-better-than-{name.replace('_', '-')}", sev, f"The model is no better than {label}",
        f"validation {metric}: model {_f(model)} ({src}) vs {name} {_f(base)} on the same validation rows"
        + (f"; also {others}" if others else "") + ".",
        meaning,
        "Treat the baseline (fitted with every run, see metrics.json) as the floor to beat; for ratings add user/item biases and L2 to the neural model, "
        "use a linear output and MSE, smaller embeddings (e.g. 16) and a larger batch (see the "
        "`keras-seed-fixed` preset); for ranking tune lr/epochs/negatives until it beats popularity.",
        {"model": float(model), "baseline": base})]


def _cold(cold: dict[str, float] | None) -> list[Finding]:
    if not cold or not cold.get("n_valid"):
        return []
    rows, n = float(cold.get("rows", 0)), float(cold["n_valid"])
    if rows / n <= COLD_ROWS_REL:
        return []
    return [Finding(
        "cold-validation", "warning", "Validation contains users/items never seen in training",
        f"{int(rows)} of {int(n)} validation rows ({rows / n:.1%}) have a cold user or item: "
        f"{int(cold.get('users', 0))} cold users, {int(cold.get('items', 0))} cold items.",
        "Their embeddings were never trained (random or fallback); their error measures the fallback, not "
        "the model, and it moves the validation curve independently of training.",
        "Use a split stratified by user, filter rare items (min ratings), or report cold rows separately.",
        {"rows": rows, "n_valid": n, "users": float(cold.get("users", 0)), "items": float(cold.get("items", 0))})]


def _audit(audit: dict[str, Any] | None) -> list[Finding]:
    if not audit:
        return []
    timed = audit.get("method") in ("loo", "temporal")  # random splits mix times on purpose

    def leaky(k: str) -> bool:
        k = k.lower()
        return (k.startswith("pairs_") or "leak" in k or "overlap" in k
                or (timed and k in ("test_older_than_train", "test_before_user_train")))

    leaks = {k: v for k, v in audit.items()
             if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 and leaky(k)}
    if not leaks:
        return []
    return [Finding(
        "leakage", "problem", "The split leaks information between train and evaluation",
        "leakage audit: " + ", ".join(f"{k} = {v}" for k, v in leaks.items()) + ".",
        "Evaluation rows (or their future) are visible in training; validation/test numbers are optimistic.",
        "Re-split (ncf's splitters drop duplicates and order by time); check the input for repeated rows.",
        {k: float(v) for k, v in leaks.items()})]
