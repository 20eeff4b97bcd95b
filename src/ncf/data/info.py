"""A dataset summary: sizes, density, rating scale and histogram, activity per user/item, time span."""

from __future__ import annotations

import datetime as _dt

import numpy as np

from ncf.data.interactions import Interactions


def _stats(counts: np.ndarray) -> dict:
    counts = counts[counts > 0]
    if counts.size == 0:
        return {"min": 0, "median": 0.0, "mean": 0.0, "max": 0}
    return {"min": int(counts.min()), "median": float(np.median(counts)), "mean": round(float(counts.mean()), 2),
            "max": int(counts.max())}


def _date(ts: int) -> str:
    return _dt.datetime.fromtimestamp(int(ts), tz=_dt.UTC).strftime("%Y-%m-%d")


def summarize(data: Interactions) -> dict:
    """A JSON-ready summary of a dataset (what `ncf data info` prints; a run's data.json)."""
    uc, ic = data.user_counts(), data.item_counts()
    users, items = int((uc > 0).sum()), int((ic > 0).sum())
    out: dict = {
        "name": data.name,
        "users": users,
        "items": items,
        "catalog_items": data.n_catalog_items,
        "ratings": len(data),
        "density": round(len(data) / (users * items), 6) if users and items else 0.0,
        "duplicates_dropped": int(data.duplicates_dropped),
        "interactions_per_user": _stats(uc),
        "interactions_per_item": _stats(ic),
        "has_ratings": data.has_ratings,
        "rating_scale": list(data.rating_scale) if data.rating_scale else None,
        "fingerprint": data.fingerprint(),
    }
    if data.ratings is not None and len(data):
        values, counts = np.unique(data.ratings, return_counts=True)
        if len(values) <= 20:
            out["rating_histogram"] = {f"{v:g}": int(c) for v, c in zip(values, counts)}
        else:
            edges = np.linspace(values.min(), values.max(), 11)
            hist, _ = np.histogram(data.ratings, bins=edges)
            out["rating_histogram"] = {f"{a:.3g}..{b:.3g}": int(c) for a, b, c in zip(edges[:-1], edges[1:], hist)}
        out["rating_mean"] = round(float(data.ratings.mean(dtype=np.float64)), 4)
    if data.timestamps is not None and len(data):
        lo, hi = int(data.timestamps.min()), int(data.timestamps.max())
        try:
            out["time_span"] = {"first": _date(lo), "last": _date(hi), "days": round((hi - lo) / 86400, 1)}
        except (OverflowError, OSError, ValueError):  # not seconds since 1970
            out["time_span"] = {"first": lo, "last": hi}
    return out


def format_summary(s: dict) -> str:
    """The summary as aligned text lines."""
    rows = [("dataset", s["name"]), ("users", f"{s['users']:,}")]
    items = f"{s['items']:,} rated"
    if s.get("catalog_items") is not None:
        items += f" (catalog {s['catalog_items']:,})"
    rows += [("items", items), ("ratings", f"{s['ratings']:,}"), ("density", f"{s['density'] * 100:.3f}%")]
    if s.get("rating_scale"):
        lo, hi = s["rating_scale"]
        rows.append(("rating scale", f"{lo:g}..{hi:g} (mean {s.get('rating_mean', float('nan')):.3f})"))
    if s.get("rating_histogram"):
        total = max(sum(s["rating_histogram"].values()), 1)
        for k, (value, count) in enumerate(s["rating_histogram"].items()):
            bar = "#" * max(1, round(40 * count / total)) if count else ""
            rows.append(("rating histogram" if k == 0 else "", f"{value:>5}  {count:>10,}  {bar}"))
    for key, label in (("interactions_per_user", "per user"), ("interactions_per_item", "per item")):
        st = s[key]
        rows.append((label, f"min {st['min']:,}  median {st['median']:g}  mean {st['mean']:g}  max {st['max']:,}"))
    if s.get("time_span"):
        ts = s["time_span"]
        span = f"{ts['first']} .. {ts['last']}" + (f" ({ts['days']:,.0f} days)" if "days" in ts else "")
        rows.append(("time span", span))
    rows.append(("duplicates dropped", f"{s['duplicates_dropped']:,}"))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)
