"""Shared helpers for the benchmark scripts (not part of the ncf package; not a test)."""

from __future__ import annotations

import json
import os
import platform
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"


def machine() -> dict[str, Any]:
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(), "loadavg": load, "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, indent=1, default=_default))
    return path


def _default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def table(rows: list[dict[str, Any]], cols: list[str] | None = None) -> str:
    """Fixed-width text table of dict rows."""
    if not rows:
        return "(empty)"
    cols = cols or list(rows[0])

    def fmt(v: Any) -> str:
        if v is None:
            return "-"
        if isinstance(v, float):
            return f"{v:.4f}" if abs(v) < 100 else f"{v:,.0f}"
        return str(v)

    cells = [[fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) + 2 for i, c in enumerate(cols)]
    lines = ["".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)


@contextmanager
def epoch_hook(hook):
    """Call hook(trainer) after every training epoch of ncf's neural estimators (benchmark-only patch).

    Time spent inside the hook is accumulated in `hook.seconds` so callers can subtract it.
    """
    import ncf.models.ncf_estimator as ne

    original = ne.Trainer

    class HookedTrainer(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args, callbacks=(), **kwargs):
            def timed(trainer):
                t = time.perf_counter()
                hook(trainer)
                hook.seconds = getattr(hook, "seconds", 0.0) + time.perf_counter() - t

            super().__init__(*args, callbacks=[*callbacks, timed], **kwargs)

    ne.Trainer = HookedTrainer
    try:
        yield
    finally:
        ne.Trainer = original


def ml100k_loo(seed: int = 0):
    """ml-100k, leave-one-out (row-order ties), 99 fixed sampled candidates per test user."""
    from ncf.data.load import load_data
    from ncf.sampling import eval_candidates, positive_keys
    from ncf.split import split_data

    data = load_data("ml-100k")
    split = split_data(data, method="loo", seed=seed)
    cands = eval_candidates(split.test, positive_keys(data.csr()), n=99, seed=seed)
    return data, split, cands
