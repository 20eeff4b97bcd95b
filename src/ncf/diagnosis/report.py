"""The diagnosis of a run directory: findings + curves as one self-contained HTML page, and as plain text.

`write_report(run_dir)` reads the files `ncf train` wrote (config.toml, history.csv, metrics.json,
data.json, audit.json, model/), measures what the history cannot tell (train vs eval mode, baselines on
the validation rows, cold rows; see `ncf.diagnosis.measure`), and writes `curves.png`, `report.html`
(PNG embedded as base64, no external resources) and `diagnosis.json` (measurements + findings), each
atomically. Measurements are cached in diagnosis.json; `remeasure=True` redoes them.
"""

from __future__ import annotations

import base64
import html
import json
import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ncf._io import atomic_write_text
from ncf.diagnosis.findings import Finding, analyse, lower_is_better, primary_metric
from ncf.errors import NcfError, UsageError

REPORT = "report.html"
CURVES = "curves.png"
DIAGNOSIS = "diagnosis.json"
SEVERITY_COLOUR = {"problem": "#c0392b", "warning": "#d68910", "info": "#2471a3"}


@dataclass
class Diagnosis:
    """Everything the report shows, read from one run directory."""

    run_dir: Path
    config: dict[str, Any]
    history: pd.DataFrame
    metrics: dict[str, Any]
    data: dict[str, Any]
    audit: dict[str, Any]
    measurements: dict[str, Any]
    findings: list[Finding]
    metric: str | None
    best_epoch: int | None
    title: str
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid JSON ({exc})", "the run directory is damaged; re-run 'ncf train'") from None


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path} is not valid TOML ({exc})", "the run directory is damaged; re-run 'ncf train'") from None


def _choose_metric(config: dict[str, Any], history: pd.DataFrame) -> str | None:
    """The validation metric that matches the training loss: MAE for an MAE loss, RMSE for MSE, else NDCG."""
    loss = str(config.get("loss") or "").lower()
    if config.get("task", "rating") == "rating":
        want = "mae" if loss == "mae" else "rmse"
        if f"val_{want}" in history.columns:
            return want
    return primary_metric(history)


def _kept_epoch(run_dir: Path) -> int | None:
    """The epoch whose weights the saved model holds (early stopping restores the best; else the last)."""
    meta = _read_json(run_dir / "model" / "model.json")
    best = meta.get("state", {}).get("best_epoch_") if meta else None
    return int(best) if best else None


def _best_epoch(history: pd.DataFrame, metric: str | None) -> int | None:
    """The epoch with the best validation metric (else validation loss)."""
    col = f"val_{metric}" if metric and f"val_{metric}" in history.columns else "val_loss"
    if col not in history.columns or not history[col].notna().any():
        return None
    v = history[col].to_numpy(dtype=float)
    b = int(pd.Series(v).idxmin() if (col == "val_loss" or lower_is_better(metric or "loss")) else pd.Series(v).idxmax())
    return int(history["epoch"].iloc[b]) if "epoch" in history.columns else b + 1


def diagnose_run(run_dir: str | Path, measurements: dict[str, Any] | None = None, *, measure: bool = True,
                 remeasure: bool = False) -> Diagnosis:
    """Read a run directory and compute its findings (measuring the saved model when needed)."""
    from ncf.diagnosis.measure import measure_run

    run_dir = Path(run_dir)
    hist_file = run_dir / "history.csv"
    if not run_dir.is_dir() or not hist_file.is_file():
        raise UsageError(f"{run_dir} is not a run directory (no history.csv)",
                         "pass a folder written by 'ncf train --out RUN'")
    try:
        history = pd.read_csv(hist_file)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        history = pd.DataFrame()
    config = _read_config(run_dir / "config.toml")
    notes: list[str] = []
    saved = _read_json(run_dir / DIAGNOSIS)
    cached = saved.get("measurements")
    if measurements is None and cached is not None and not remeasure and (cached or not measure):
        measurements = cached  # an empty cache (a failed attempt) is retried when measuring is allowed
        notes += list(saved.get("notes") or [])
    if measurements is None and measure and (run_dir / "model").is_dir() and len(history):
        try:
            measurements = measure_run(run_dir)
        except Exception as exc:  # noqa: BLE001 - measurements are optional; the report must still be written
            kind = "" if isinstance(exc, NcfError) else f"{type(exc).__name__}: "
            notes.append(f"measurements skipped ({kind}{str(exc).splitlines()[0][:200] if str(exc) else ''})")
    measurements = measurements or {}
    audit = _read_json(run_dir / "audit.json")
    metric = _choose_metric(config, history)
    findings = analyse(history, baselines=measurements.get("baselines"), mode_effect=measurements.get("mode_effect"),
                       cold=measurements.get("cold"), audit=audit, metric=metric) if len(history) else []
    data = _read_json(run_dir / "data.json")
    best = _best_epoch(history, metric) if len(history) else None
    kept = _kept_epoch(run_dir)
    name = data.get("name") or config.get("data", "data")
    title = f"{config.get('model', 'model')} ({config.get('task', '?')}) on {name}"
    if len(history):
        title += f": {len(history)} epochs" + (f", best validation epoch {best}" if best else "")
        if kept and kept != best:
            title += f", saved weights from epoch {kept}"
    return Diagnosis(run_dir, config, history, _read_json(run_dir / "metrics.json"), data, audit, measurements,
                     findings, metric, best, title, notes)


def write_report(run_dir: str | Path, measurements: dict[str, Any] | None = None, *, measure: bool = True,
                 remeasure: bool = False, location: str | None = None) -> Path:
    """Write curves.png, report.html and diagnosis.json into `run_dir`; returns the report path.

    `location` is the run's path as shown in the report (default: run_dir; `ncf train` builds the run in a
    temp folder and passes its final path).
    """
    from ncf.diagnosis.plots import build_figure, figure_png
    from ncf._io import atomic_write_bytes

    d = diagnose_run(run_dir, measurements, measure=measure, remeasure=remeasure)
    png = b""
    if len(d.history):
        fig = build_figure(d.history, baselines=d.measurements.get("baselines"), metric=d.metric, title=d.title,
                           best_epoch=d.best_epoch)
        png = figure_png(fig)
        atomic_write_bytes(d.run_dir / CURVES, png)
    atomic_write_text(d.run_dir / DIAGNOSIS, json.dumps(
        {"measurements": d.measurements, "findings": [f.to_dict() for f in d.findings], "metric": d.metric,
         "notes": d.notes}, indent=1, default=_json_default))
    return atomic_write_text(d.run_dir / REPORT, render_html(d, png, location))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ----------------------------------------------------------------------------- text
def _num(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return "-"
    return f"{v:.4f}" if abs(v) < 1000 else f"{v:,.1f}"


def validation_lines(d: Diagnosis) -> list[str]:
    """The measured numbers as short lines (model vs baselines on validation, train vs eval mode, cold rows)."""
    out = []
    base = d.measurements.get("baselines") or {}
    m = d.metric
    if base and m:
        parts = [f"{'model (saved weights)' if k == 'model' else k} {v[m]:.4f}" for k, v in base.items()
                 if m in v and v[m] is not None]
        out.append(f"validation {m} ({'lower' if lower_is_better(m) else 'higher'} is better): " + ", ".join(parts))
    me = d.measurements.get("mode_effect")
    if me:
        out.append(f"same {me['rows']:,} training rows, final weights: {me['loss']} loss {me['train_mode']:.4f} in "
                   f"train mode vs {me['eval_mode']:.4f} in eval mode (dropout/batch-norm effect "
                   f"{_signed(me['train_mode'] - me['eval_mode'])})")
    cold = d.measurements.get("cold")
    if cold:
        out.append(f"cold validation rows: {cold['rows']:,} of {cold['n_valid']:,} "
                   f"({cold['users']} users, {cold['items']} items unseen in training)")
    return out


def _signed(x: float) -> str:
    return "0.0000" if abs(x) < 5e-5 else f"{x:+.4f}"


def format_text(d: Diagnosis) -> str:
    """The diagnosis for the terminal: title, measured numbers, then each finding (plain text)."""
    lines = [d.title]
    lines += ["  " + s for s in validation_lines(d)]
    lines += ["  note: " + n for n in d.notes]
    if not d.findings:
        lines.append("no findings: the curves look healthy")
    for f in d.findings:
        lines += ["", f.as_text()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- HTML
def _table(rows: list[list[Any]], head: list[str] | None = None) -> str:
    e = html.escape
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{e(str(h))}</th>" for h in head) + "</tr>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td>{e(_num(c))}</td>" for c in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def _kv_table(d: dict[str, Any]) -> str:
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in d.items()]
    return _table(rows) if rows else "<p class=muted>(none)</p>"


def _metrics_table(metrics: dict[str, Any], model: str | None) -> str:
    cols = []
    for prot in ("rating", "sampled", "full"):
        keys = []
        for scores in metrics.values():
            for k in (scores.get(prot) or {}):
                if k not in keys:
                    keys.append(k)
        cols += [(prot, k) for k in keys]
    if not cols:
        return "<p class=muted>(no metrics.json)</p>"
    names = ([model] if model in metrics else []) + [m for m in metrics if m != model]
    rows = [[n + (" (trained)" if n == model else "")] + [metrics[n].get(p, {}).get(k, "-") for p, k in cols]
            for n in names]
    return _table(rows, ["model"] + [f"{p}: {k}" for p, k in cols])


def _validation_table(d: Diagnosis) -> str:
    base = d.measurements.get("baselines") or {}
    if not base:
        return "<p class=muted>(not measured)</p>"
    metrics = sorted({k for v in base.values() for k in v})
    rows = [["model (saved weights)" if n == "model" else n] + [v.get(m, "-") for m in metrics] for n, v in base.items()]
    return _table(rows, ["on the validation rows"] + metrics)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;
color:#222;line-height:1.45;padding:0 16px}
h1{font-size:1.45em;margin-bottom:0}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
.muted{color:#777}.finding{border-left:6px solid;padding:6px 12px;margin:10px 0;background:#fafafa}
.finding h3{margin:2px 0 4px 0;font-size:1.02em}.finding p{margin:3px 0}.sev{font-size:.8em;text-transform:uppercase;
font-weight:700;margin-right:6px}table{border-collapse:collapse;font-size:.88em;margin:6px 0}
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f0f0f0}img{max-width:100%;border:1px solid #eee}details{margin:8px 0}
.code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.85em;color:#555}
"""


def render_html(d: Diagnosis, png: bytes, location: str | None = None) -> str:
    """One self-contained HTML page (inline CSS, PNG as a data URI)."""
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>ncf diagnosis: {e(d.title)}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{e(d.title)}</h1>",
             f"<p class=muted>{e(location or str(d.run_dir))} &middot; report written "
             f"{datetime.now().strftime('%Y-%m-%d %H:%M')}</p>"]
    counts = {s: sum(f.severity == s for f in d.findings) for s in SEVERITY_COLOUR}
    summary = ", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items() if n) or "no findings"
    parts.append(f"<h2>Findings ({e(summary)})</h2>")
    if not d.findings:
        parts.append("<p>The curves look healthy: no finding.</p>")
    for f in d.findings:
        c = SEVERITY_COLOUR.get(f.severity, "#555")
        parts.append(
            f"<div class=finding style='border-color:{c}'><h3><span class=sev style='color:{c}'>{e(f.severity)}</span>"
            f"{e(f.title)} <span class=code>{e(f.code)}</span></h3>"
            f"<p><b>Evidence.</b> {e(f.evidence)}</p><p><b>What it means.</b> {e(f.meaning)}</p>"
            f"<p><b>Try next.</b> {e(f.try_next)}</p></div>")
    for n in d.notes:
        parts.append(f"<p class=muted>{e(n)}</p>")
    parts.append("<h2>Learning curves</h2>")
    if png:
        parts.append(f"<img alt='learning curves' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
        parts.append("<p class=muted>Left: the running training loss (what Keras prints as <i>loss</i>), the loss of "
                     "the end-of-epoch weights on training rows in eval mode, and validation loss. Right: the "
                     "validation metric with the best epoch and the baselines fitted on the same training rows.</p>")
    else:
        parts.append("<p class=muted>(no history)</p>")
    parts.append("<h2>Measured on the validation rows</h2>")
    parts.append(_validation_table(d))
    parts += [f"<p>{e(s)}</p>" for s in validation_lines(d)[1:]]
    parts.append("<h2>Test metrics (metrics.json)</h2>")
    parts.append(_metrics_table(d.metrics, d.config.get("model")))
    if len(d.history):
        parts.append("<details><summary>History (history.csv)</summary>")
        parts.append(_table(d.history.astype(object).values.tolist(), list(d.history.columns)))
        parts.append("</details>")
    parts.append("<h2>Configuration (config.toml)</h2>")
    parts.append(_kv_table(d.config))
    parts.append("<h2>Data (data.json)</h2>")
    parts.append(_kv_table(d.data))
    parts.append("<h2>Leakage audit (audit.json)</h2>")
    parts.append(_kv_table(d.audit))
    parts.append("</body></html>")
    return "\n".join(parts)
