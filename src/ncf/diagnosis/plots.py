"""Learning-curve plot: loss curves (running train, eval-mode train, validation) and the validation metric
with the best epoch and the baseline levels marked. One PNG, two panels (matplotlib, Agg backend)."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ncf._io import atomic_write_bytes
from ncf.diagnosis.findings import lower_is_better, primary_metric

# Baseline name -> (label, colour, line style) in the metric panel.
BASELINE_STYLE = {
    "bias": ("bias baseline (user + item averages)", "tab:red", "--"),
    "global_mean": ("global mean", "tab:gray", ":"),
    "pop": ("popularity", "tab:gray", ":"),
}


def build_figure(
    history: pd.DataFrame,
    *,
    baselines: dict[str, dict[str, float]] | None = None,
    metric: str | None = None,
    title: str = "",
    best_epoch: int | None = None,
):
    """The two-panel matplotlib Figure (not saved). Left: losses; right: validation metric vs baselines."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    metric = primary_metric(history, metric)
    ep = history["epoch"].to_numpy() if "epoch" in history.columns else np.arange(1, len(history) + 1)
    fig = Figure(figsize=(11, 4.2), dpi=110, layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)

    series = (
        ("train_loss", "train (running mean, train mode)", "tab:blue", "-", "o"),
        ("train_loss_eval", "train (end-of-epoch weights, eval mode)", "tab:blue", "--", "s"),
        ("val_loss", "validation", "tab:orange", "-", "o"),
    )
    for col, label, colour, style, marker in series:
        if col in history.columns and history[col].notna().any():
            ax_loss.plot(ep, history[col].to_numpy(dtype=float), style, color=colour, marker=marker,
                         markersize=3, label=label)
    if best_epoch is None and "val_loss" in history.columns and history["val_loss"].notna().any():
        best_epoch = int(ep[int(np.nanargmin(history["val_loss"].to_numpy(dtype=float)))])
    if best_epoch is not None:
        ax_loss.axvline(best_epoch, color="tab:green", linestyle=":", linewidth=1.2, label=f"best epoch {best_epoch}")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("Loss")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)

    col = f"val_{metric}" if metric else None
    if col and col in history.columns and history[col].notna().any():
        vals = history[col].to_numpy(dtype=float)
        ax_metric.plot(ep, vals, "-", color="tab:orange", marker="o", markersize=3, label=f"model, validation {metric}")
        fin = np.isfinite(vals)
        if fin.any():
            idx = np.flatnonzero(fin)
            b = idx[np.argmin(vals[fin])] if lower_is_better(metric) else idx[np.argmax(vals[fin])]
            ax_metric.axvline(ep[b], color="tab:green", linestyle=":", linewidth=1.2,
                              label=f"best epoch {ep[b]}: {vals[b]:.4g}")
        for name, scores in (baselines or {}).items():
            if name == "model" or metric not in scores or not math.isfinite(scores[metric]):
                continue
            label, colour, style = BASELINE_STYLE.get(name, (name, "tab:purple", "-."))
            ax_metric.axhline(scores[metric], color=colour, linestyle=style, linewidth=1.3,
                              label=f"{label}: {scores[metric]:.4g}")
        ax_metric.set_ylabel(metric + (" (lower is better)" if lower_is_better(metric) else " (higher is better)"))
        ax_metric.legend(fontsize=8, loc="best")
    else:
        ax_metric.text(0.5, 0.5, "no validation metric recorded", ha="center", va="center",
                       transform=ax_metric.transAxes)
    ax_metric.set_xlabel("epoch")
    ax_metric.set_title(f"Validation {metric or ''}".strip())
    ax_metric.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig


def figure_png(fig) -> bytes:
    """PNG bytes of a figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_curves(
    history: pd.DataFrame,
    path: str | Path,
    *,
    baselines: dict[str, dict[str, float]] | None = None,
    metric: str | None = None,
    title: str = "",
    best_epoch: int | None = None,
) -> Path:
    """Write the learning-curve PNG atomically; returns its path."""
    fig = build_figure(history, baselines=baselines, metric=metric, title=title, best_epoch=best_epoch)
    return atomic_write_bytes(path, figure_png(fig))
