"""IdMap: raw ids (as the file had them, ints or strings) <-> contiguous inner ids (int32 from 0)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ncf._io import atomic_path, atomic_write_text
from ncf.errors import DataError, UnknownIdError


class IdMap:
    """A bijection between raw ids and inner ids 0..n-1, vectorised both ways.

    `raw_ids[i]` is the raw id of inner id `i`. Raw ids are either all integers (int64) or all strings.
    """

    def __init__(self, raw_ids: np.ndarray | list, kind: str = "id") -> None:
        arr = np.asarray(raw_ids)
        if arr.dtype.kind in "iu":
            arr = arr.astype(np.int64, copy=False)
        elif arr.dtype.kind in "OUS":
            arr = _str_objects(arr)
        elif arr.size == 0:
            arr = arr.astype(np.int64)
        else:
            raise DataError(f"{kind} ids must be integers or strings, got dtype {arr.dtype}",
                            "convert the id column to int or str")
        self.raw_ids = arr
        self.kind = kind
        self._index = pd.Index(arr)
        if not self._index.is_unique:
            raise DataError(f"{kind} id map has duplicate raw ids", "raw ids must be unique")

    @classmethod
    def fit(cls, raw: np.ndarray | pd.Series, kind: str = "id") -> tuple["IdMap", np.ndarray]:
        """Build a map from a raw id column (sorted unique ids) and return it with the inner-id column."""
        codes, uniques = pd.factorize(pd.Series(raw) if not isinstance(raw, pd.Series) else raw, sort=True)
        if (codes < 0).any():
            raise DataError(f"{kind} id column has missing values", "drop or fill the empty ids")
        return cls(np.asarray(uniques), kind=kind), codes.astype(np.int32)

    def __len__(self) -> int:
        return len(self.raw_ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self.is_int == other.is_int and np.array_equal(self.raw_ids, other.raw_ids)

    @property
    def is_int(self) -> bool:
        """True when raw ids are integers."""
        return self.raw_ids.dtype.kind in "iu"

    def coerce(self, raw: Any) -> np.ndarray:
        """Raw input (e.g. CLI strings) converted to this map's id type where possible."""
        arr = np.atleast_1d(np.asarray(raw, dtype=object))
        if self.is_int:
            try:
                return arr.astype(np.int64)
            except (TypeError, ValueError):
                out = np.empty(len(arr), dtype=object)
                for i, v in enumerate(arr):  # only on the error path
                    try:
                        out[i] = int(v)
                    except (TypeError, ValueError):
                        out[i] = v
                return out
        return _str_objects(arr)

    def lookup(self, raw: Any) -> np.ndarray:
        """Inner ids for raw ids; -1 where unknown."""
        return self._index.get_indexer(self.coerce(raw)).astype(np.int64)

    def to_inner(self, raw: Any) -> np.ndarray:
        """Inner ids (int32) for raw ids; raises UnknownIdError naming the unknown ones."""
        raw_arr = self.coerce(raw)
        inner = self._index.get_indexer(raw_arr)
        bad = inner < 0
        if bad.any():
            raise UnknownIdError(self.kind, [x.item() if hasattr(x, "item") else x for x in raw_arr[bad]])
        return inner.astype(np.int32)

    def to_raw(self, inner: Any) -> np.ndarray:
        """Raw ids for inner ids."""
        inner = np.asarray(inner, dtype=np.int64)
        if inner.size and (inner.min() < 0 or inner.max() >= len(self)):
            raise DataError(f"inner {self.kind} id out of range 0..{len(self) - 1}", "this is a bug in the caller")
        return self.raw_ids[inner]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"kind": self.kind, "type": "int" if self.is_int else "str", "raw_ids": self.raw_ids.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "IdMap":
        """Inverse of to_dict."""
        ids = data["raw_ids"]
        arr = np.asarray(ids, dtype=np.int64) if data.get("type") == "int" else np.asarray(ids, dtype=object)
        return cls(arr, kind=data.get("kind", "id"))

    def save(self, path: str | Path) -> Path:
        """Save as .json or .parquet (by suffix), atomically."""
        path = Path(path)
        if path.suffix == ".parquet":
            with atomic_path(path) as tmp:
                pd.DataFrame({"raw_id": self.raw_ids}).to_parquet(tmp, index=False)
            return path
        return atomic_write_text(path, json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: str | Path, kind: str = "id") -> "IdMap":
        """Load what save() wrote."""
        path = Path(path)
        if path.suffix == ".parquet":
            col = pd.read_parquet(path)["raw_id"].to_numpy()
            return cls(col, kind=kind)
        return cls.from_dict(json.loads(path.read_text(encoding="utf-8")))


def _str_objects(arr: np.ndarray) -> np.ndarray:
    """Ids as an object array of Python str. Object input goes through pandas (str() of each element), not
    NumPy's fixed-width unicode dtype, which drops trailing NUL characters ('a\\x00' would become 'a')."""
    if arr.dtype.kind == "O":
        return np.asarray(pd.Series(arr, copy=False).astype(str), dtype=object)
    return arr.astype(str).astype(object)
