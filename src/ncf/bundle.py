"""Model bundle: a directory with weights in safetensors and everything else in JSON/Parquet. No pickle."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf._io import atomic_dir
from ncf.data import IdMap, Interactions
from ncf.errors import BundleError

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
META = "model.json"
ITEMS = "items.parquet"


def _versions() -> dict[str, str]:
    import torch

    import ncf

    return {"ncf": ncf.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def save_bundle(estimator, path: str | Path, train: Interactions | None = None, extra: dict | None = None) -> Path:
    """Write estimator + id maps (+ item metadata) as a bundle directory, atomically (replaces an old one)."""
    from safetensors.numpy import save_file

    path = Path(path)
    arrays = {k: np.ascontiguousarray(v) for k, v in estimator.state_arrays().items()}
    user_map = train.user_map if train is not None else getattr(estimator, "user_map_", None)
    item_map = train.item_map if train is not None else getattr(estimator, "item_map_", None)
    item_meta = train.item_meta if train is not None else getattr(estimator, "item_meta_", None)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "estimator": estimator.name,
        "params": estimator.get_params(),
        "state": estimator.state_meta(),
        "user_map": user_map.to_dict() if user_map is not None else None,
        "item_map": item_map.to_dict() if item_map is not None else None,
        "data": {"name": train.name, "fingerprint": train.fingerprint(), "n_interactions": len(train),
                 "rating_scale": train.rating_scale} if train is not None else getattr(estimator, "data_info_", None),
        "versions": _versions(),
        "extra": extra or {},
    }
    with atomic_dir(path, overwrite=True) as tmp:
        save_file(arrays, str(tmp / WEIGHTS))
        (tmp / META).write_text(json.dumps(meta, indent=1, default=_json_default), encoding="utf-8")
        if item_meta is not None:
            item_meta.reset_index(drop=True).to_parquet(tmp / ITEMS, index=False)
    return path


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_bundle_meta(path: str | Path) -> dict[str, Any]:
    """The JSON half of a bundle, validated for shape."""
    path = Path(path)
    if path.is_dir() and (path / "model").is_dir():  # a run directory: the bundle lives in model/
        path = path / "model"
    if not path.is_dir():
        raise BundleError(f"no model bundle at {path}", "pass a run directory or its model/ folder written by 'ncf train'")
    meta_file = path / META
    if not meta_file.is_file():
        raise BundleError(f"{meta_file} is missing", "the bundle is incomplete; re-run 'ncf train'")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_file} is not valid JSON ({exc})", "the bundle is damaged; re-run 'ncf train'") from None
    for key in ("format_version", "estimator", "params", "state"):
        if not isinstance(meta, dict) or key not in meta:
            raise BundleError(f"{meta_file} lacks '{key}'", "the bundle is damaged; re-run 'ncf train'")
    if meta["format_version"] != FORMAT_VERSION:
        raise BundleError(f"bundle format {meta['format_version']} is not supported (expected {FORMAT_VERSION})",
                          "re-train with this version of ncf")
    meta["_dir"] = str(path)
    return meta


def _load_weights(file: Path) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    if not file.is_file():
        raise BundleError(f"{file} is missing", "the bundle is incomplete; re-run 'ncf train'")
    with open(file, "rb") as fh:
        head = fh.read(9)
    # safetensors: 8-byte little-endian header length, then '{' (the length's first byte may be 0x80)
    if head[8:9] != b"{" and (head[:1] == b"\x80" or head[:2] == b"PK"):
        raise BundleError(f"{file} looks like a pickle/torch.save file, which ncf never loads (it can run code)",
                          "re-create the bundle with 'ncf train' (weights in safetensors)")
    try:
        return load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(f"{file} is not a valid safetensors file ({exc})", "the bundle is damaged; re-run 'ncf train'") from None


def load_bundle(path: str | Path):
    """Load a bundle into a fitted estimator with `user_map_`, `item_map_` and `item_meta_` attached."""
    from ncf.models import REGISTRY

    meta = read_bundle_meta(path)
    bdir = Path(meta["_dir"])
    cls = REGISTRY.get(meta["estimator"])
    if cls is None:
        raise BundleError(f"unknown estimator '{meta['estimator']}' in bundle", f"known: {', '.join(sorted(REGISTRY))}")
    arrays = _load_weights(bdir / WEIGHTS)
    try:
        est = cls(**meta["params"])
        est.load_state(arrays, meta["state"])
    except BundleError:
        raise
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        raise BundleError(f"bundle weights do not match its config ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})",
                          "the bundle is damaged or was edited; re-run 'ncf train'") from None
    est.user_map_ = IdMap.from_dict(meta["user_map"]) if meta.get("user_map") else None
    est.item_map_ = IdMap.from_dict(meta["item_map"]) if meta.get("item_map") else None
    for name, m in (("user", est.user_map_), ("item", est.item_map_)):
        n = getattr(est, f"n_{name}s_")
        if m is not None and len(m) != n:
            raise BundleError(f"bundle {name} id map has {len(m)} ids but the model has {n}",
                              "the bundle is damaged or was edited; re-run 'ncf train'")
    items_file = bdir / ITEMS
    est.item_meta_ = pd.read_parquet(items_file) if items_file.is_file() else None
    est.data_info_ = meta.get("data")
    est.bundle_extra_ = meta.get("extra", {})
    return est
