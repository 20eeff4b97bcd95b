"""Request and response models of the HTTP API (pydantic; they also drive the OpenAPI docs at /docs)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

RawId = Annotated[StrictInt | Annotated[str, StringConstraints(min_length=1, max_length=256)],
                  Field(description="a raw id as in the training data (integer or string)")]
Policy = Literal["model", "popular", "liked-items"]

MAX_BATCH_USERS = 10_000
MAX_LIST_ITEMS = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Item(BaseModel):
    """One recommended / similar item: raw id, score and (when the data has them) title, genres, year."""

    item: int | str
    score: float | None = Field(None, description="model score (higher is better); popularity count for 'popular'")
    title: str | None = None
    genres: list[str] | None = None
    year: int | None = None


class Recommendations(BaseModel):
    """Top-k items for one user, with the policy that served it."""

    user: int | str
    policy: Policy = Field(description="'model' for known users; 'popular' or 'liked-items' for cold start")
    items: list[Item]


class BatchRequest(_Strict):
    """Recommendations for several users at once."""

    users: list[RawId] = Field(min_length=1, max_length=MAX_BATCH_USERS)
    k: int = Field(10, description="list length (bounded by the server's max_k)")
    exclude_seen: bool = True
    genre: str | None = Field(None, max_length=100, description="only items of this genre")
    candidates: list[RawId] | None = Field(None, max_length=MAX_LIST_ITEMS,
                                           description="only these raw item ids")
    liked_items: list[RawId] | None = Field(None, max_length=1000,
                                            description="raw item ids an unknown user likes (cold start)")


class BatchResponse(BaseModel):
    """One Recommendations entry per requested user, in request order."""

    results: list[Recommendations]


class Similar(BaseModel):
    """Items most similar to one item."""

    item: int | str
    title: str | None = None
    genres: list[str] | None = None
    year: int | None = None
    similarity: Literal["embeddings", "co-occurrence"]
    items: list[Item]


class ScoreRequest(_Strict):
    """Scores of given items for one user."""

    user: RawId
    items: list[RawId] = Field(min_length=1, max_length=MAX_LIST_ITEMS)
    liked_items: list[RawId] | None = Field(None, max_length=1000,
                                            description="raw item ids an unknown user likes (cold start)")


class ScoredItem(BaseModel):
    item: int | str
    score: float | None


class Scores(BaseModel):
    user: int | str
    policy: Policy
    items: list[ScoredItem]


class Health(BaseModel):
    status: Literal["ok"]
    estimator: str
    n_users: int
    n_items: int


class ModelInfo(BaseModel):
    """What is being served."""

    estimator: str
    params: dict[str, Any]
    data: dict[str, Any] | None
    n_users: int
    n_items: int
    versions: dict[str, Any]
    cold_start: str
    similarity: str
    max_k: int
    genres: list[str]


class Error(BaseModel):
    """Every 4xx answer: a one-line message (and the unknown ids, when that was the problem)."""

    detail: str
    unknown_ids: list[int | str] | None = None
