"""Recommender: top-N lists, similar items and scores over a saved model, by RAW ids.

Cold-start policy (a user the model never saw):
- with `liked_items` (a few raw item ids the user likes): items ranked by their mean cosine similarity to
  the liked items (item embeddings when the model has them, else co-occurrence cosine over the training
  data); the liked items themselves are excluded. Answer policy: ``"liked-items"``.
- otherwise, with ``cold_start="popular"`` (default): the most popular training items. Policy ``"popular"``.
- with ``cold_start="error"``: an UnknownIdError naming the user.
Known users are always served by the model (policy ``"model"``); `liked_items` is then ignored.
Unknown item ids anywhere in the input raise UnknownIdError naming them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ncf.errors import UnknownIdError, UsageError, closest

Policy = Literal["model", "popular", "liked-items"]
COLD_START = ("popular", "error")


class Recommender:
    """Answers recommendation queries in raw ids over a fitted estimator (see module doc for cold start).

    Answers are plain JSON-ready dicts; item entries carry `item`, `score` and, when the data has them,
    `title`, `genres` (list) and `year`.
    """

    def __init__(self, estimator: Any, cold_start: str = "popular", max_k: int = 1000,
                 bundle_meta: dict[str, Any] | None = None) -> None:
        if cold_start not in COLD_START:
            raise UsageError(f"unknown cold-start policy '{cold_start}'", f"use one of: {', '.join(COLD_START)}")
        if not hasattr(estimator, "n_items_"):
            raise UsageError("the estimator is not fitted", "load a trained bundle with ncf.load(path)")
        if getattr(estimator, "user_map_", None) is None or getattr(estimator, "item_map_", None) is None:
            raise UsageError("the estimator has no id maps", "load it with ncf.load(path) from a bundle saved with train=")
        self.estimator = estimator
        self.cold_start = cold_start
        self.max_k = int(max_k)
        self.bundle_meta = bundle_meta or {}
        self.user_map = estimator.user_map_
        self.item_map = estimator.item_map_
        self.n_users = int(estimator.n_users_)
        self.n_items = int(estimator.n_items_)
        self._user_index = _raw_index(self.user_map.raw_ids)
        self._item_index = _raw_index(self.item_map.raw_ids)
        self._item_raw = self.item_map.raw_ids.tolist()  # python scalars
        self._user_raw = self.user_map.raw_ids.tolist()
        self._meta = _item_meta_columns(getattr(estimator, "item_meta_", None), self.n_items)
        pop = np.asarray(getattr(estimator, "item_popularity_", np.zeros(self.n_items)), dtype=np.float32)
        self._popularity = pop
        # popularity order once: ties broken by inner id (stable)
        self._pop_order = np.argsort(-pop, kind="stable")
        self._genre_masks: dict[str, np.ndarray] = _genre_masks(self._meta.get("genres"), self.n_items)
        self._emb = _normalised_item_embeddings(estimator)
        self._seen_t: sp.csr_matrix | None = None  # items x users, for co-occurrence similarity
        self._item_norm: np.ndarray | None = None
        self._item_frags: tuple[list[str], list[str]] | None = None  # JSON pieces, see recommend_json()
        self._user_cache: tuple[np.ndarray, np.ndarray] | None = None  # see precompute()
        self._item_cache: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_path(cls, path: str | Path, **kwargs: Any) -> "Recommender":
        """Load a bundle (run directory or its model/ folder) and wrap it."""
        from ncf.bundle import load_bundle, read_bundle_meta

        return cls(load_bundle(path), bundle_meta=read_bundle_meta(path), **kwargs)

    def precompute(self, k: int = 100, max_cells: int = 100_000_000, batch_size: int = 512) -> dict[str, bool]:
        """Cache the top-k of every known user (seen items excluded, no filter) and the k most similar items
        of every item, so the common requests are a table look-up. Skipped when users x items (or items x
        items) exceeds `max_cells` (time and memory bound). Other requests still go through the model."""
        from ncf.models import top_k

        k = max(1, min(int(k), self.n_items))
        done = {"users": False, "items": False}
        self._item_json()
        if 0 < self.n_users * self.n_items <= max_cells:
            self._user_cache = self.estimator.recommend(np.arange(self.n_users), k=k, exclude_seen=True,
                                                        batch_size=batch_size)
            done["users"] = True
        if 0 < self.n_items * self.n_items <= max_cells:
            ids = np.empty((self.n_items, k), dtype=np.int64)
            scores = np.empty((self.n_items, k), dtype=np.float32)
            for start in range(0, self.n_items, batch_size):
                block = np.arange(start, min(start + batch_size, self.n_items))
                sims = self.item_similarities(block)
                sims[np.arange(len(block)), block] = -np.inf
                ids[block], scores[block] = top_k(sims, k)
            ids[~np.isfinite(scores)] = -1
            self._item_cache = (ids, scores)
            done["items"] = True
        return done

    # ------------------------------------------------------------------ facts
    @property
    def similarity_source(self) -> str:
        """'embeddings' when the model exposes item embeddings, else 'co-occurrence'."""
        return "embeddings" if self._emb is not None else "co-occurrence"

    @property
    def genres(self) -> list[str]:
        """Known genres (lower case) usable as a candidate filter."""
        return sorted(self._genre_masks)

    def info(self) -> dict[str, Any]:
        """What is being served: estimator, params, data, sizes, versions."""
        est = self.estimator
        return {
            "estimator": est.name,
            "params": _jsonable(est.get_params()),
            "data": _jsonable(getattr(est, "data_info_", None)),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "versions": {"trained_with": _jsonable(self.bundle_meta.get("versions")), "serving": _runtime_versions()},
            "cold_start": self.cold_start,
            "similarity": self.similarity_source,
            "max_k": self.max_k,
            "genres": self.genres,
        }

    def is_known_user(self, user: Any) -> bool:
        """True when the raw user id is in the training data."""
        return self._lookup_one(self._user_index, self.user_map, user) >= 0

    # ------------------------------------------------------------------ id helpers
    @staticmethod
    def _lookup_one(index: dict, idmap, raw: Any) -> int:
        if isinstance(raw, bool):  # True is not user 1
            return -1
        try:
            hit = index.get(raw)
        except TypeError:  # unhashable input
            return -1
        if hit is not None:
            return hit
        if type(raw) is str and idmap.is_int and raw.isdigit() and len(raw) < 19:  # fast path: "196" -> 196
            hit = index.get(int(raw))
            return -1 if hit is None else hit
        try:
            coerced = idmap.coerce([raw])[0]
        except (OverflowError, TypeError, ValueError):
            return -1
        coerced = coerced.item() if hasattr(coerced, "item") else coerced
        hit = index.get(coerced)
        return -1 if hit is None else hit

    @staticmethod
    def _display_id(idmap, raw: Any) -> Any:
        """The raw id as the map would read it (e.g. '42' -> 42 for integer ids), for error messages."""
        try:
            return _py(idmap.coerce([raw])[0])
        except (OverflowError, TypeError, ValueError):
            return raw

    def item_ids(self, raw_items: Any) -> np.ndarray:
        """Inner ids for raw item ids; UnknownIdError naming every unknown one."""
        raw_list = list(raw_items) if not isinstance(raw_items, (str, bytes)) else [raw_items]
        inner = np.fromiter((self._lookup_one(self._item_index, self.item_map, r) for r in raw_list),
                            dtype=np.int64, count=len(raw_list))
        bad = [self._display_id(self.item_map, r) for r, i in zip(raw_list, inner) if i < 0]
        if bad:
            raise UnknownIdError("item", bad, "use item ids that appear in the training data")
        return inner

    def user_ids(self, raw_users: Any) -> np.ndarray:
        """Inner ids for raw user ids; -1 where unknown (vectorised for large batches)."""
        raw_list = list(raw_users) if not isinstance(raw_users, (str, bytes)) else [raw_users]
        if len(raw_list) > 64:
            try:
                return self.user_map.lookup(raw_list)
            except (OverflowError, TypeError, ValueError):
                pass
        return np.fromiter((self._lookup_one(self._user_index, self.user_map, r) for r in raw_list),
                           dtype=np.int64, count=len(raw_list))

    def _check_k(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= self.max_k:
            raise UsageError(f"k must be an integer in 1..{self.max_k}, got {k!r}", "pass a smaller positive k")
        return int(k)

    def candidate_mask(self, genre: str | None = None, candidates: Any = None) -> np.ndarray | None:
        """Boolean mask of allowed items (None = all) from a genre and/or a list of raw item ids."""
        mask = None
        if genre is not None:
            key = str(genre).strip().lower()
            if key not in self._genre_masks:
                if not self._genre_masks:
                    raise UsageError(f"cannot filter by genre '{genre}': the data has no genres",
                                     "drop the genre filter or pass candidate items")
                near = closest(key, self.genres)
                raise UsageError(f"unknown genre '{genre}'",
                                 f"did you mean '{near}'?" if near else f"known: {', '.join(self.genres)}")
            mask = self._genre_masks[key].copy()
        if candidates is not None:
            inner = self.item_ids(candidates)
            cmask = np.zeros(self.n_items, dtype=bool)
            cmask[inner] = True
            mask = cmask if mask is None else (mask & cmask)
        return mask

    # ------------------------------------------------------------------ answers
    def _items(self, inner: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        keep = inner >= 0
        inner, scores = inner[keep], scores[keep]
        out = []
        meta = self._meta
        for i, s in zip(inner.tolist(), scores.tolist()):
            entry = {"item": self._item_raw[i], "score": s if s == s and abs(s) != float("inf") else None}
            for col, values in meta.items():
                entry[col] = values[i]
            out.append(entry)
        return out

    def recommend(self, user: Any, k: int = 10, exclude_seen: bool = True, genre: str | None = None,
                  candidates: Any = None, liked_items: Any = None, _raw: bool = False) -> dict[str, Any]:
        """Top-k for one raw user id: {"user", "policy", "items": [{"item", "score", "title", ...}]}."""
        cache = self._user_cache
        if (cache is not None and exclude_seen and genre is None and candidates is None and type(k) is int
                and 1 <= k <= min(self.max_k, cache[0].shape[1])):
            u = self._lookup_one(self._user_index, self.user_map, user)
            if u >= 0:  # fast path: a known user, the precomputed list
                if _raw:
                    return _dumps(self._user_raw[u]).decode(), "model", cache[0][u, :k], cache[1][u, :k]
                return {"user": self._user_raw[u], "policy": "model", "items": self._items(cache[0][u, :k], cache[1][u, :k])}
        return self.recommend_many([user], k, exclude_seen, genre, candidates, liked_items)[0]

    def recommend_json(self, user: Any, k: int = 10, exclude_seen: bool = True, genre: str | None = None) -> bytes:
        """`recommend` answer as compact JSON bytes (fast path for the HTTP API: precomputed item fragments)."""
        ans = self.recommend(user, k=k, exclude_seen=exclude_seen, genre=genre, _raw=True)
        if isinstance(ans, dict):  # no raw form available: plain encoding
            return _dumps(ans)
        user_json, policy, ids, scores = ans
        frags = self._item_json()
        items = ",".join([f'{{"item":{frags[0][i]},"score":{_score_json(s)}{frags[1][i]}}}'
                          for i, s in zip(ids.tolist(), scores.tolist()) if i >= 0])
        return f'{{"user":{user_json},"policy":"{policy}","items":[{items}]}}'.encode()

    def _item_json(self) -> tuple[list[str], list[str]]:
        """Per item: its raw id as JSON, and the JSON of its metadata fields (',"title":...,"year":...')."""
        if self._item_frags is None:
            ids = [_dumps(r).decode() for r in self._item_raw]
            cols = list(self._meta.items())
            rest = ["".join(f',"{c}":{_dumps(v[i]).decode()}' for c, v in cols)
                    for i in range(self.n_items)]
            self._item_frags = (ids, rest)
        return self._item_frags

    def recommend_many(self, users: Any, k: int = 10, exclude_seen: bool = True, genre: str | None = None,
                       candidates: Any = None, liked_items: Any = None) -> list[dict[str, Any]]:
        """Top-k for many raw user ids (batched through the model); one answer dict per user, in order."""
        k = self._check_k(k)
        users = list(users)
        allowed = self.candidate_mask(genre, candidates)
        inner = self.user_ids(users)
        ids, scores, policies = self._top(users, inner, k, exclude_seen, allowed, liked_items)
        return [{"user": self._user_raw[i] if i >= 0 else _py(u), "policy": p, "items": self._items(ids[r], scores[r])}
                for r, (u, i, p) in enumerate(zip(users, inner.tolist(), policies))]

    def recommend_frame(self, users: Any, k: int = 10, exclude_seen: bool = True, genre: str | None = None,
                        candidates: Any = None) -> pd.DataFrame:
        """Top-k for many raw users as one long table: user, rank, item, score, policy (+ title, genres, year)."""
        k = self._check_k(k)
        users = np.asarray(list(users), dtype=object)
        allowed = self.candidate_mask(genre, candidates)
        inner = self.user_ids(users)
        ids, scores, policies = self._top(users, inner, k, exclude_seen, allowed, None)
        rows, cols = np.nonzero(ids >= 0)
        item_inner = ids[rows, cols]
        frame = pd.DataFrame({
            "user": users[rows],
            "rank": (cols + 1).astype(np.int32),
            "item": self.item_map.raw_ids[item_inner],
            "score": scores[rows, cols],
            "policy": np.asarray(policies, dtype=object)[rows],
        })
        for col, values in self._meta.items():
            arr = np.asarray(values, dtype=object)[item_inner]
            frame[col] = ["|".join(v) for v in arr] if col == "genres" else arr
        if self.user_map.is_int:
            try:
                frame["user"] = frame["user"].astype(np.int64)
            except (TypeError, ValueError, OverflowError):
                frame["user"] = frame["user"].astype(str)
        else:
            frame["user"] = frame["user"].astype(str)
        return frame

    def _top(self, raw_users: Any, inner: np.ndarray, k: int, exclude_seen: bool, allowed: np.ndarray | None,
             liked_items: Any) -> tuple[np.ndarray, np.ndarray, list[str]]:
        n = len(inner)
        ids = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        policies = ["model"] * n
        known = inner >= 0
        if known.any():
            cache = self._user_cache
            if cache is not None and exclude_seen and allowed is None and k <= cache[0].shape[1]:
                ids[known], scores[known] = cache[0][inner[known], :k], cache[1][inner[known], :k]
            else:
                cand = None if allowed is None else np.flatnonzero(allowed)
                kid, ksc = self.estimator.recommend(inner[known], k=k, exclude_seen=exclude_seen, candidates=cand)
                ids[known], scores[known] = kid, ksc
        if (~known).any():
            unknown_rows = np.flatnonzero(~known)
            if liked_items:
                liked = self.item_ids(liked_items)
                cid, csc = self._liked_top(liked, k, allowed)
                policy = "liked-items"
            elif self.cold_start == "popular":
                cid, csc = self._popular_top(k, allowed)
                policy = "popular"
            else:
                raise UnknownIdError("user", [_py(raw_users[r]) for r in unknown_rows.tolist()],
                                     "use user ids from the training data or pass liked_items")
            ids[unknown_rows], scores[unknown_rows] = cid, csc
            for r in unknown_rows.tolist():
                policies[r] = policy
        return ids, scores, policies

    def _popular_top(self, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        order = self._pop_order if allowed is None else self._pop_order[allowed[self._pop_order]]
        top = order[:k]
        ids = np.full(k, -1, dtype=np.int64)
        sc = np.full(k, -np.inf, dtype=np.float32)
        ids[:len(top)] = top
        sc[:len(top)] = self._popularity[top]
        return ids, sc

    def _liked_top(self, liked: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        from ncf.models import top_k

        sims = self.item_similarities(liked).mean(axis=0)
        sims[liked] = -np.inf
        if allowed is not None:
            sims[~allowed] = -np.inf
        ids, sc = top_k(sims[None, :], k)
        ids[~np.isfinite(sc)] = -1
        return ids[0], sc[0]

    # ------------------------------------------------------------------ similarity
    def item_similarities(self, inner_items: np.ndarray) -> np.ndarray:
        """Cosine similarity of the given inner items to every item: float32 (len, n_items)."""
        inner_items = np.asarray(inner_items, dtype=np.int64)
        if self._emb is not None:
            return (self._emb[inner_items] @ self._emb.T).astype(np.float32)
        if self._seen_t is None:  # co-occurrence cosine over binary training interactions
            seen = self.estimator.seen_.tocsr().astype(np.float32)
            seen.data[:] = 1.0
            self._seen_t = seen.T.tocsr()
            self._item_norm = np.sqrt(np.asarray(self._seen_t.sum(axis=1)).ravel()).astype(np.float32)
        co = (self._seen_t[inner_items] @ self._seen_t.T).toarray().astype(np.float32)
        denom = self._item_norm[inner_items][:, None] * self._item_norm[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            sims = np.where(denom > 0, co / np.where(denom > 0, denom, 1.0), 0.0)
        return sims.astype(np.float32)

    def similar(self, item: Any, k: int = 10, genre: str | None = None, candidates: Any = None) -> dict[str, Any]:
        """The k items most similar to one raw item id (cosine), itself excluded: {"item", "similarity", "items"}."""
        from ncf.models import top_k

        k = self._check_k(k)
        inner = self.item_ids([item])
        allowed = self.candidate_mask(genre, candidates)
        cache = self._item_cache
        if cache is not None and allowed is None and k <= cache[0].shape[1]:
            ids, sc = cache[0][inner, :k], cache[1][inner, :k]
        else:
            sims = self.item_similarities(inner)[0]
            sims[inner[0]] = -np.inf
            if allowed is not None:
                sims[~allowed] = -np.inf
            ids, sc = top_k(sims[None, :], k)
            ids[~np.isfinite(sc)] = -1
        head = {"item": self._item_raw[int(inner[0])]}
        for col, values in self._meta.items():
            head[col] = values[int(inner[0])]
        return {**head, "similarity": self.similarity_source, "items": self._items(ids[0], sc[0])}

    def score(self, user: Any, items: Any, liked_items: Any = None) -> dict[str, Any]:
        """Scores of raw items for one raw user (model; cold start: popularity or liked-items similarity)."""
        inner_items = self.item_ids(items)
        if len(inner_items) == 0:
            raise UsageError("no items to score", "pass at least one item id")
        u = self._lookup_one(self._user_index, self.user_map, user)
        if u >= 0:
            values = self.estimator.predict(np.full(len(inner_items), u, dtype=np.int64), inner_items)
            policy = "model"
        elif liked_items:
            liked = self.item_ids(liked_items)
            values = self.item_similarities(liked).mean(axis=0)[inner_items]
            policy = "liked-items"
        elif self.cold_start == "popular":
            values = self._popularity[inner_items]
            policy = "popular"
        else:
            raise UnknownIdError("user", [_py(user)], "use user ids from the training data or pass liked_items")
        values = np.asarray(values, dtype=np.float32)
        return {"user": self._user_raw[u] if u >= 0 else _py(user), "policy": policy,
                "items": [{"item": self._item_raw[i], "score": (s if s == s and abs(s) != float("inf") else None)}
                          for i, s in zip(inner_items.tolist(), values.tolist())]}


# ---------------------------------------------------------------------- helpers
def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _score_json(s: float) -> str:
    return repr(s) if s == s and abs(s) != float("inf") else "null"


def _py(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def _raw_index(raw_ids: np.ndarray) -> dict:
    return {r: i for i, r in enumerate(raw_ids.tolist())}


def _item_meta_columns(meta: pd.DataFrame | None, n_items: int) -> dict[str, list]:
    """Per-item python lists of title (str|None), genres (list[str]) and year (int|None)."""
    if meta is None or len(meta) != n_items:
        return {}
    out: dict[str, list] = {}
    if "title" in meta:
        out["title"] = [None if _missing(v) else str(v) for v in meta["title"].tolist()]
    if "genres" in meta:
        out["genres"] = [[] if _missing(v) else [g for g in str(v).split("|") if g] for v in meta["genres"].tolist()]
    if "year" in meta:
        out["year"] = [None if _missing(v) else int(v) for v in meta["year"].tolist()]
    return out


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NA or v is pd.NaT


def _genre_masks(genres: list[list[str]] | None, n_items: int) -> dict[str, np.ndarray]:
    masks: dict[str, np.ndarray] = {}
    if not genres:
        return masks
    for i, gs in enumerate(genres):  # once at start-up
        for g in gs:
            masks.setdefault(g.strip().lower(), np.zeros(n_items, dtype=bool))[i] = True
    return masks


def _normalised_item_embeddings(estimator: Any) -> np.ndarray | None:
    """Row-normalised item embeddings from `estimator.item_embeddings()` when it has them, else None."""
    fn = getattr(estimator, "item_embeddings", None)
    if callable(fn):
        try:
            emb = fn()
        except (NotImplementedError, AttributeError):
            emb = None
    else:
        emb = _module_item_embeddings(estimator)
    if emb is None:
        return None
    if hasattr(emb, "detach"):  # a torch tensor
        emb = emb.detach().cpu().numpy()
    emb = np.asarray(emb, dtype=np.float32)
    if emb.ndim != 2 or emb.shape[0] != estimator.n_items_:
        return None
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norm > 0, norm, 1.0)


# Fallback for neural estimators without an `item_embeddings()` method: read the item embedding tables of
# their torch module by the names ncf.models.modules uses (NeuMF: GMF and MLP tables side by side).
_ITEM_TABLES = (("gmf_item_embedding", "mlp_item_embedding"), ("item_embedding",))


def _module_item_embeddings(estimator: Any) -> np.ndarray | None:
    module = getattr(estimator, "module_", None)
    if module is None:
        return None
    for names in _ITEM_TABLES:
        tables = [getattr(module, n, None) for n in names]
        if all(t is not None and hasattr(t, "weight") for t in tables):
            return np.concatenate([t.weight.detach().cpu().numpy() for t in tables], axis=1)
    return None


def _runtime_versions() -> dict[str, str]:
    import platform

    import ncf

    out = {"ncf": ncf.__version__, "numpy": np.__version__, "python": platform.python_version()}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:  # pragma: no cover
        pass
    return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, float) and (obj != obj or abs(obj) == float("inf")):
        return None
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    return str(obj)


# ---------------------------------------------------------------------- text output
def format_answer(answer: dict[str, Any], title_width: int = 44) -> str:
    """An aligned text table of a recommend/similar/score answer (for terminals)."""
    if "user" in answer:
        head = f"user {answer['user']}  (policy: {answer['policy']})"
    else:
        title = f"  {answer['title']}" if answer.get("title") else ""
        head = f"items similar to {answer['item']}{title}  (similarity: {answer['similarity']})"
    rows = answer["items"]
    if not rows:
        return head + "\n  (no items)"
    has_meta = "title" in rows[0]
    cols = [("#", [str(r + 1) for r in range(len(rows))], ">"),
            ("item", [str(e["item"]) for e in rows], ">"),
            ("score", _format_scores([e["score"] for e in rows]), ">")]
    if has_meta:
        cols.append(("title", [_clip(e.get("title") or "", title_width) for e in rows], "<"))
        cols.append(("year", ["" if e.get("year") is None else str(e["year"]) for e in rows], ">"))
        cols.append(("genres", ["|".join(e.get("genres") or []) for e in rows], "<"))
    widths = [max(len(name), *(len(v) for v in values)) for name, values, _ in cols]
    lines = [head, "  ".join(f"{name:{al}{w}}" for (name, _, al), w in zip(cols, widths)).rstrip()]
    for r in range(len(rows)):
        lines.append("  ".join(f"{values[r]:{al}{w}}" for (_, values, al), w in zip(cols, widths)).rstrip())
    return "\n".join(lines)


def _format_scores(scores: list[float | None]) -> list[str]:
    """Counts (all integral, e.g. popularity) as integers, else 4 decimals."""
    integral = all(s is None or float(s).is_integer() for s in scores)
    return ["-" if s is None else (f"{s:.0f}" if integral else f"{s:.4f}") for s in scores]


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
