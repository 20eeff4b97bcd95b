"""The learning-curve PNG: the expected line series on each panel, and a real image on disk."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ncf.diagnosis.plots import build_figure, plot_curves


def history(n: int = 6) -> pd.DataFrame:
    e = np.arange(1, n + 1)
    return pd.DataFrame({"epoch": e, "train_loss": 0.2 / e, "train_loss_eval": 0.13 / e,
                         "val_loss": 0.155 + 0.001 * e, "val_mae": 0.62 + 0.004 * e, "lr": 1e-3})


def lines(ax) -> list[Line2D]:
    return [obj for obj in ax.get_children() if isinstance(obj, Line2D)]


def test_panels_hold_the_expected_series():
    base = {"bias": {"mae": 0.588}, "global_mean": {"mae": 0.73}, "model": {"mae": 0.6}}
    fig = build_figure(history(), baselines=base, title="neumf on ml-100k")
    loss_ax, metric_ax = fig.axes
    # loss: running train, eval-mode train, validation + the best-epoch marker
    assert len(lines(loss_ax)) == 4
    labels = [ln.get_label() for ln in lines(loss_ax)]
    assert labels[3] == "best epoch 1"
    # metric: model curve + best epoch + bias + global mean ("model" is not drawn as a baseline)
    metric_lines = lines(metric_ax)
    assert len(metric_lines) == 4
    levels = sorted(ln.get_ydata()[0] for ln in metric_lines[2:])
    assert levels == [0.588, 0.73]
    assert fig.texts[0].get_text() == "neumf on ml-100k"


def test_missing_columns_drop_their_series():
    h = history().drop(columns=["train_loss_eval", "val_mae"])
    fig = build_figure(h)
    assert len(lines(fig.axes[0])) == 3
    assert len(lines(fig.axes[1])) == 0


def test_png_written(tmp_path):
    out = plot_curves(history(), tmp_path / "curves.png", baselines={"bias": {"mae": 0.6}}, title="t")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000  # two panels of curves and text, not an empty canvas
    assert not list(tmp_path.glob(".*tmp"))  # atomic: no temp file left
