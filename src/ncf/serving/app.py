"""The HTTP API (FastAPI): recommendations, similar items and scores over one model loaded at start-up.

Every user-caused failure is a 4xx with a one-line JSON `detail`: malformed JSON or wrong types -> 422,
unknown item ids -> 404 (ids named in `unknown_ids`), body over the size limit -> 413.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ncf.errors import NcfError, UnknownIdError, UsageError
from ncf.serving import schemas
from ncf.serving.recommender import Recommender

log = logging.getLogger("ncf.serving")

DEFAULT_MAX_BODY = 1_000_000  # bytes


def _json(obj: Any, status: int = 200) -> Response:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
    return Response(body, status_code=status, media_type="application/json")


def _raw_json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _error(status: int, detail: str, unknown_ids: list | None = None) -> Response:
    body: dict[str, Any] = {"detail": detail}
    if unknown_ids is not None:
        body["unknown_ids"] = [_json_safe_id(i) for i in unknown_ids[:100]]
    return _json(body, status)


def _json_safe_id(x: Any) -> Any:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return x
    if isinstance(x, float):
        return x if math.isfinite(x) else str(x)
    return str(x)


def _validation_detail(exc: RequestValidationError) -> str:
    """One line from pydantic's error list: where and what, plus how many more."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    if first.get("type") == "json_invalid":
        ctx = first.get("ctx") or {}
        return f"malformed JSON body ({ctx.get('error', 'cannot parse')}); send a valid JSON object"
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    msg = " ".join(str(first.get("msg", "invalid value")).split())
    more = f" (+{len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{loc}: {msg}{more}"[:500]


_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}


def _recommend_query(query_string: bytes, max_k: int) -> tuple[int, bool, str | None]:
    """k, exclude_seen, genre from a raw query string; UsageError (-> 422, one line) when malformed."""
    from urllib.parse import parse_qsl

    k, exclude_seen, genre = 10, True, None
    if not query_string:
        return k, exclude_seen, genre
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        raise UsageError("query: cannot parse the query string", "use ?k=10&exclude_seen=true") from None
    for key, value in pairs:
        if key == "k":
            text = value.strip()
            if not (text.isdigit() or (text[:1] == "-" and text[1:].isdigit())) or len(text) > 12:
                raise UsageError(f"query.k: Input should be a valid integer, got {value[:40]!r}", f"pass 1..{max_k}")
            k = int(text)
            if not 1 <= k <= max_k:
                raise UsageError(f"query.k: must be in 1..{max_k}, got {k}", f"pass 1..{max_k}")
        elif key == "exclude_seen":
            low = value.strip().lower()
            if low not in _TRUE and low not in _FALSE:
                raise UsageError(f"query.exclude_seen: Input should be a valid boolean, got {value[:40]!r}",
                                 "pass true or false")
            exclude_seen = low in _TRUE
        elif key == "genre":
            if len(value) > 100:
                raise UsageError("query.genre: longer than 100 characters", "pass a genre name, e.g. Comedy")
            genre = value
    return k, exclude_seen, genre


def _recommend_query_doc(max_k: int) -> list[dict[str, Any]]:
    return [
        {"name": "user_id", "in": "path", "required": True, "description": "raw user id",
         "schema": {"type": "string"}},
        {"name": "k", "in": "query", "required": False, "description": f"list length, 1..{max_k}",
         "schema": {"type": "integer", "minimum": 1, "maximum": max_k, "default": 10}},
        {"name": "exclude_seen", "in": "query", "required": False,
         "description": "leave out items the user rated in training", "schema": {"type": "boolean", "default": True}},
        {"name": "genre", "in": "query", "required": False, "description": "only items of this genre",
         "schema": {"type": "string", "maxLength": 100}},
    ]


class BodyLimit:
    """ASGI middleware: reject request bodies over `max_bytes` with 413 (by header, or while streaming).

    The rejected body is read and dropped (up to `drain_factor` x the limit) before the 413 goes out, so
    the client, still sending, gets the answer instead of a connection reset.
    """

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY, drain_factor: int = 16) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_limit = max_bytes * drain_factor

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        chunked = False
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None:
            try:
                n = int(length)
            except ValueError:
                await _send(send, _error(400, "bad Content-Length header; send a byte count"), close=True)
                return
            if n > self.max_bytes:
                drained = await self._drain(receive, 0)
                await _send(send, _error(413, f"request body of {n} bytes exceeds the limit of {self.max_bytes} bytes; "
                                              "send smaller batches"), close=not drained)
                return
            await self.app(scope, receive, send)
            return
        if not chunked:
            await self.app(scope, receive, send)
            return
        # streamed body without a length: buffer up to the limit, then replay it
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                drained = not message.get("more_body", False) or await self._drain(receive, size)
                await _send(send, _error(413, f"request body exceeds the limit of {self.max_bytes} bytes; "
                                              "send smaller batches"), close=not drained)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _drain(self, receive: Any, size: int) -> bool:
        """Read and drop the rest of the body; False if it ran past the drain limit or the client left."""
        while size <= self.drain_limit:
            message = await receive()
            if message["type"] != "http.request":
                return False
            size += len(message.get("body", b""))
            if not message.get("more_body", False):
                return True
        return False


async def _send(send: Any, response: Response, close: bool = False) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(response.body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def _set_threads(threads: int) -> None:
    try:
        import torch

        torch.set_num_threads(max(1, int(threads)))
    except ImportError:  # pragma: no cover
        pass
    except RuntimeError:  # interop threads already started; intra-op setting still applies
        pass


def _no_telemetry() -> dict[str, Any]:
    """FastAPI >= 0.16x checks OpenTelemetry providers on every request; switch that off where supported."""
    import inspect

    if "telemetry" in inspect.signature(FastAPI.__init__).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def create_app(model: str | Path | Recommender, max_k: int = 1000, max_body: int = DEFAULT_MAX_BODY,
               threads: int = 1, cold_start: str = "popular", precompute: bool = True,
               precompute_k: int = 100, max_batch_cells: int = 200_000) -> FastAPI:
    """Build the app. `model` is a Recommender or a bundle path (loaded once, at start-up).

    With `precompute` the top-`precompute_k` lists of every user and item are cached at start-up
    (see Recommender.precompute); other requests go through the model.
    """
    state: dict[str, Recommender] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _set_threads(threads)
        if isinstance(model, Recommender):
            rec = model
            rec.max_k = max_k
        else:
            rec = Recommender.from_path(model, cold_start=cold_start, max_k=max_k)
        if precompute:
            rec.precompute(k=min(precompute_k, max_k))
        elif rec.n_items:
            rec.item_similarities([0])  # warm the similarity path once
        state["rec"] = rec
        state["info"] = rec.info()
        yield
        state.clear()

    app = FastAPI(title="ncf recommender", version=__import__("ncf").__version__, lifespan=lifespan,
                  **_no_telemetry(),
                  description="Top-N recommendations, similar items and scores from a trained ncf model. "
                              "Raw ids as in the training data. Errors: 4xx with a one-line `detail`.")
    app.add_middleware(BodyLimit, max_bytes=max_body)
    errors = {404: {"model": schemas.Error}, 413: {"model": schemas.Error}, 422: {"model": schemas.Error}}

    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError) -> Response:
        return _error(422, _validation_detail(exc))

    @app.exception_handler(UnknownIdError)
    async def _on_unknown(request: Request, exc: UnknownIdError) -> Response:
        return _error(404, exc.one_line(), list(exc.ids))

    @app.exception_handler(NcfError)
    async def _on_ncf(request: Request, exc: NcfError) -> Response:
        return _error(422, exc.one_line())

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        return _error(exc.status_code, detail)

    @app.exception_handler(Exception)
    async def _on_bug(request: Request, exc: Exception) -> Response:  # safety net only: tests assert no 5xx
        log.exception("unexpected error serving %s", request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); please report it")

    def rec() -> Recommender:
        return state["rec"]

    @app.get("/health", response_model=schemas.Health)
    async def health() -> Response:
        """Liveness: the model is loaded."""
        r = rec()
        return _json({"status": "ok", "estimator": r.estimator.name, "n_users": r.n_users, "n_items": r.n_items})

    @app.get("/model", response_model=schemas.ModelInfo)
    async def model_info() -> Response:
        """Estimator, parameters, data fingerprint, sizes and versions."""
        return _json(state["info"])

    # The hottest endpoint reads its query by hand (FastAPI's per-parameter machinery costs more than the
    # answer); the parameters are documented through openapi_extra and validated by _recommend_query.
    @app.get("/users/{user_id}/recommendations", response_model=schemas.Recommendations, responses=errors,
             openapi_extra={"parameters": _recommend_query_doc(max_k)})
    async def user_recommendations(request: Request) -> Response:
        """Top-k for one user (unknown users get the cold-start policy, named in `policy`)."""
        scope = request.scope
        k, exclude_seen, genre = _recommend_query(scope.get("query_string", b""), max_k)
        r = rec()
        return _raw_json(r.recommend_json(scope["path_params"]["user_id"], k=k, exclude_seen=exclude_seen, genre=genre))

    @app.post("/recommendations", response_model=schemas.BatchResponse, responses=errors)
    async def batch_recommendations(body: schemas.BatchRequest) -> Response:
        """Top-k for several users; `liked_items` serves unknown users, `candidates`/`genre` filter items."""
        if isinstance(body.k, int) and len(body.users) * body.k > max_batch_cells:
            raise UsageError(f"users x k = {len(body.users)} x {body.k} is over the limit of {max_batch_cells} items "
                             "per request", "send fewer users per request or a smaller k")
        results = rec().recommend_many(body.users, k=body.k, exclude_seen=body.exclude_seen, genre=body.genre,
                                       candidates=body.candidates, liked_items=body.liked_items)
        return _json({"results": results})

    @app.get("/items/{item_id}/similar", response_model=schemas.Similar, responses=errors)
    async def similar(item_id: str, k: int = Query(10, ge=1, le=max_k, description=f"list length, 1..{max_k}"),
                      genre: str | None = Query(None, max_length=100)) -> Response:
        """Items most similar to one item (cosine over item embeddings, or co-occurrence)."""
        return _json(rec().similar(item_id, k=k, genre=genre))

    @app.post("/scores", response_model=schemas.Scores, responses=errors)
    async def scores(body: schemas.ScoreRequest) -> Response:
        """Scores of the given items for one user."""
        return _json(rec().score(body.user, body.items, liked_items=body.liked_items))

    return app


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8000, threads: int = 1, max_k: int = 1000,
          max_body: int = DEFAULT_MAX_BODY, cold_start: str = "popular", log_level: str = "warning",
          precompute: bool = True) -> None:
    """Run the API with uvicorn until interrupted (the model is loaded once, before serving)."""
    import uvicorn

    # fail fast, as a one-line CLI error, if the bundle cannot be loaded
    recommender = Recommender.from_path(model, cold_start=cold_start, max_k=max_k)
    app = create_app(recommender, max_k=max_k, max_body=max_body, threads=threads, precompute=precompute)
    # idle keep-alive connections are closed after 5 s; past 1024 open connections new ones get a 503 at once
    # instead of queueing without bound
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False, http="auto",
                lifespan="on", timeout_graceful_shutdown=5, timeout_keep_alive=5, limit_concurrency=1024)
