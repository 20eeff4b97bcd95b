"""Interactions: one dataset as contiguous inner ids plus optional ratings, timestamps and item metadata."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ncf.data.idmap import IdMap
from ncf.errors import DataError


@dataclass(eq=False)
class Interactions:
    """User-item interactions over a fixed id space.

    Rows keep the original file order (after duplicate removal); `subset` keeps the id space, so train,
    validation and test parts of one dataset share `user_map`/`item_map`, `n_users` and `n_items`.
    """

    user_ids: np.ndarray  # int32, inner
    item_ids: np.ndarray  # int32, inner
    ratings: np.ndarray | None  # float32 or None (implicit)
    timestamps: np.ndarray | None  # int64 seconds or None
    user_map: IdMap
    item_map: IdMap
    item_meta: pd.DataFrame | None = None  # indexed by inner item id: title, genres, year
    name: str = "data"
    duplicates_dropped: int = 0
    n_catalog_items: int | None = None  # items in the movies file, rated or not
    rating_scale: tuple[float, float] | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.user_ids = np.ascontiguousarray(self.user_ids, dtype=np.int32)
        self.item_ids = np.ascontiguousarray(self.item_ids, dtype=np.int32)
        n = len(self.user_ids)
        if len(self.item_ids) != n:
            raise DataError("user and item columns differ in length", "this is a bug in the loader")
        if self.ratings is not None:
            self.ratings = np.ascontiguousarray(self.ratings, dtype=np.float32)
            if len(self.ratings) != n:
                raise DataError("rating column length differs from ids", "this is a bug in the loader")
            if self.rating_scale is None and n:
                self.rating_scale = (float(self.ratings.min()), float(self.ratings.max()))
        if self.timestamps is not None:
            self.timestamps = np.ascontiguousarray(self.timestamps, dtype=np.int64)
        if n and (self.user_ids.min() < 0 or self.user_ids.max() >= len(self.user_map)):
            raise DataError("user id outside the user id map", "this is a bug in the loader")
        if n and (self.item_ids.min() < 0 or self.item_ids.max() >= len(self.item_map)):
            raise DataError("item id outside the item id map", "this is a bug in the loader")

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_raw(
        cls,
        users: np.ndarray | pd.Series,
        items: np.ndarray | pd.Series,
        ratings: np.ndarray | pd.Series | None = None,
        timestamps: np.ndarray | pd.Series | None = None,
        *,
        item_meta_raw: pd.DataFrame | None = None,
        name: str = "data",
        rating_scale: tuple[float, float] | None = None,
    ) -> "Interactions":
        """Map raw id columns to inner ids, drop duplicate (user, item) pairs and build the container.

        Duplicates: the latest by timestamp is kept (ties and no timestamps: the last row).
        `item_meta_raw` is indexed by raw item id; rows for unrated items only count towards the catalog.
        """
        users = _as_array(users)
        items = _as_array(items)
        if len(users) != len(items):
            raise DataError("user and item columns differ in length", "check the input table")
        user_map, u = IdMap.fit(users, kind="user")
        item_map, i = IdMap.fit(items, kind="item")
        r = None if ratings is None else _as_array(ratings).astype(np.float32, copy=False)
        t = None if timestamps is None else _as_array(timestamps).astype(np.int64, copy=False)
        keep = dedup_latest(u, i, t, len(item_map))
        dropped = len(u) - len(keep)
        if dropped:
            u, i = u[keep], i[keep]
            r = None if r is None else r[keep]
            t = None if t is None else t[keep]
        meta, n_catalog = None, None
        if item_meta_raw is not None:
            n_catalog = int(item_meta_raw.index.nunique())
            meta = item_meta_raw.reindex(pd.Index(item_map.raw_ids))
            meta.index = pd.RangeIndex(len(item_map), name="item")
        return cls(u, i, r, t, user_map, item_map, meta, name=name, duplicates_dropped=dropped,
                   n_catalog_items=n_catalog, rating_scale=rating_scale)

    # ---------------------------------------------------------------- basic facts
    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def n_users(self) -> int:
        """Size of the user id space (not only users present in this part)."""
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        """Size of the item id space."""
        return len(self.item_map)

    @property
    def has_ratings(self) -> bool:
        return self.ratings is not None

    @property
    def has_timestamps(self) -> bool:
        return self.timestamps is not None

    def user_counts(self) -> np.ndarray:
        """Interactions per inner user id (length n_users)."""
        return np.bincount(self.user_ids, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Interactions per inner item id (length n_items)."""
        return np.bincount(self.item_ids, minlength=self.n_items)

    def fingerprint(self) -> str:
        """A short content hash of ids, ratings and timestamps (identifies the data a model saw)."""
        import hashlib

        h = hashlib.sha256()
        for arr in (self.user_ids, self.item_ids, self.ratings, self.timestamps):
            if arr is not None:
                h.update(np.ascontiguousarray(arr).tobytes())
        h.update(str((self.n_users, self.n_items)).encode())
        return h.hexdigest()[:16]

    # ---------------------------------------------------------------- derived views
    def subset(self, rows: np.ndarray, name: str | None = None) -> "Interactions":
        """The rows selected by an index or boolean mask, over the same id space."""
        rows = np.asarray(rows)
        return replace(
            self,
            user_ids=self.user_ids[rows],
            item_ids=self.item_ids[rows],
            ratings=None if self.ratings is None else self.ratings[rows],
            timestamps=None if self.timestamps is None else self.timestamps[rows],
            name=name or self.name,
            duplicates_dropped=0,
            extra={},
        )

    def concat(self, other: "Interactions", name: str | None = None) -> "Interactions":
        """Rows of self followed by rows of other (same id space)."""
        if other.user_map is not self.user_map and other.user_map != self.user_map:
            raise DataError("cannot concatenate interactions over different id maps", "use parts of one dataset")

        def cat(a, b):
            return None if a is None or b is None else np.concatenate([a, b])

        return replace(self, user_ids=np.concatenate([self.user_ids, other.user_ids]),
                       item_ids=np.concatenate([self.item_ids, other.item_ids]),
                       ratings=cat(self.ratings, other.ratings), timestamps=cat(self.timestamps, other.timestamps),
                       name=name or self.name, duplicates_dropped=0, extra={})

    def csr(self, values: str = "ones") -> sp.csr_matrix:
        """User x item CSR matrix (n_users x n_items) with sorted column indices.

        values: "ones" (implicit) or "ratings".
        """
        if values == "ratings":
            if self.ratings is None:
                raise DataError("this dataset has no ratings", "use values='ones' or load a rating column")
            data = self.ratings
        else:
            data = np.ones(len(self), dtype=np.float32)
        m = sp.csr_matrix((data, (self.user_ids, self.item_ids)), shape=(self.n_users, self.n_items), dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        return m

    def to_frame(self, raw: bool = True) -> pd.DataFrame:
        """A DataFrame view (raw ids by default)."""
        df = pd.DataFrame({
            "user": self.user_map.to_raw(self.user_ids) if raw else self.user_ids,
            "item": self.item_map.to_raw(self.item_ids) if raw else self.item_ids,
        })
        if self.ratings is not None:
            df["rating"] = self.ratings
        if self.timestamps is not None:
            df["timestamp"] = self.timestamps
        return df

    def titles(self, inner_items: np.ndarray) -> list[str | None]:
        """Titles for inner item ids (None where unknown)."""
        if self.item_meta is None or "title" not in self.item_meta:
            return [None] * len(inner_items)
        col = self.item_meta["title"].to_numpy()
        return [None if (v is None or (isinstance(v, float) and np.isnan(v))) else str(v) for v in col[inner_items]]


def _as_array(x) -> np.ndarray:
    return x.to_numpy() if isinstance(x, pd.Series) else np.asarray(x)


def dedup_latest(u: np.ndarray, i: np.ndarray, t: np.ndarray | None, n_items: int) -> np.ndarray:
    """Row indices to keep (ascending) so each (user, item) pair appears once: latest timestamp, else last row."""
    key = u.astype(np.int64) * np.int64(max(n_items, 1)) + i.astype(np.int64)
    if len(key) < 2 or bool(np.all(key[1:] > key[:-1])):  # sorted by (user, item) and unique: the common case
        return np.arange(len(u))
    sk = np.sort(key)
    dup = sk[1:][sk[1:] == sk[:-1]]
    if dup.size == 0:
        return np.arange(len(u))
    rows = np.flatnonzero(np.isin(key, dup))  # only rows whose pair repeats need the (key, time) sort
    keep = np.ones(len(u), dtype=bool)
    keep[rows] = False
    keep[rows[_latest(key[rows], None if t is None else t[rows])]] = True
    return np.flatnonzero(keep)


def _latest(key: np.ndarray, t: np.ndarray | None) -> np.ndarray:
    """Positions (into key) of the row kept for each key: latest timestamp, ties and no timestamps: last row."""
    if t is None:
        order = np.argsort(key, kind="stable")
    else:
        order = np.lexsort((t, key))  # stable: among equal (key, t) the later row comes last
    ks = key[order]
    last = np.ones(len(ks), dtype=bool)
    if len(ks) > 1:
        last[:-1] = ks[1:] != ks[:-1]
    return np.sort(order[last])
