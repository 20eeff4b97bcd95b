"""Result tables {model: {protocol: {metric: value}}}: aggregation over seeds and plain-text formatting."""

from __future__ import annotations

import math

import numpy as np

Table = dict[str, dict[str, dict[str, float]]]

# columns shown by default (others stay in the JSON)
DEFAULT_COLUMNS = {
    "rating": ["rmse", "mae"],
    "sampled": ["hr@{k}", "ndcg@{k}", "mrr", "auc"],
    "full": ["hr@{k}", "ndcg@{k}", "recall@{k}", "map@{k}", "mrr", "coverage@{k}", "popularity@{k}"],
}


def aggregate(tables: list[Table]) -> tuple[Table, Table]:
    """Mean and (sample, ddof=1) standard deviation per cell over several result tables (e.g. seeds)."""
    mean: Table = {}
    std: Table = {}
    for model in tables[0]:
        mean[model], std[model] = {}, {}
        for proto in tables[0][model]:
            mean[model][proto], std[model][proto] = {}, {}
            for metric in tables[0][model][proto]:
                vals = np.array([t[model][proto][metric] for t in tables], dtype=np.float64)
                mean[model][proto][metric] = float(np.mean(vals))
                std[model][proto][metric] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
    return mean, std


def to_json(tables: list[Table]) -> dict:
    """JSON form: {model: {protocol: {metric: mean}}}; with several tables also `<metric>_std` and n_seeds."""
    if len(tables) == 1:
        return tables[0]
    mean, std = aggregate(tables)
    out: dict = {}
    for model in mean:
        out[model] = {}
        for proto in mean[model]:
            cell = {}
            for metric, v in mean[model][proto].items():
                cell[metric] = v
                cell[f"{metric}_std"] = std[model][proto][metric]
            cell["n_seeds"] = len(tables)
            out[model][proto] = cell
    return out


def _fmt(v: float, s: float | None, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    big = abs(v) >= 100
    d = 1 if big else digits
    text = f"{v:.{d}f}"
    if s is not None:
        text += f"±{s:.{d}f}"
    return text


def format_table(tables: list[Table] | Table, k: int = 10, columns: dict[str, list[str]] | None = None,
                 digits: int = 4) -> str:
    """One plain-text table: rows = models, columns = protocol/metric (mean±std when several tables)."""
    tables = [tables] if isinstance(tables, dict) else tables
    mean, std = aggregate(tables)
    show_std = len(tables) > 1
    columns = columns or DEFAULT_COLUMNS
    cols: list[tuple[str, str]] = []
    for model in mean:
        for proto, metrics in mean[model].items():
            for m in [c.format(k=k) for c in columns.get(proto, list(metrics))]:
                if m in metrics and (proto, m) not in cols:
                    cols.append((proto, m))
    header1 = ["model"] + [p for p, _ in cols]
    header2 = [""] + [m for _, m in cols]
    rows = []
    for model in mean:
        row = [model]
        for proto, m in cols:
            v = mean[model].get(proto, {}).get(m)
            row.append(_fmt(v, std[model][proto][m] if show_std and v is not None else None, digits))
        rows.append(row)
    widths = [max(len(r[j]) for r in [header1, header2, *rows]) for j in range(len(header1))]
    # print the protocol name only where it changes
    h1, last = [], None
    for j, p in enumerate(header1):
        h1.append("" if (j > 0 and p == last) else p)
        last = p
    lines = ["  ".join(c.ljust(w) if j == 0 else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths)))
             for line in (h1, header2, *rows)]
    lines.insert(2, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)
