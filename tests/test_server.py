"""The HTTP API against a REAL uvicorn server on 127.0.0.1 (a free port, in a thread), talked to with httpx."""

from __future__ import annotations

import importlib.util
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from ncf.serving import Recommender
from tests.test_recommender import make_bundle, registered_test_models  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parents[1]


class ServerThread:
    """uvicorn serving `app` on a pre-bound loopback socket, in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("srv") / "model")


@pytest.fixture(scope="module")
def base_url(bundle):
    from ncf.serving import create_app

    with ServerThread(create_app(bundle, max_k=100, max_body=10_000, max_batch_cells=1000)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    with httpx.Client(base_url=base_url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def rec(bundle) -> Recommender:
    r = Recommender.from_path(bundle)
    r.precompute(k=100)  # as the server does at start-up
    return r


def _one_line_4xx(r: httpx.Response, status: int) -> str:
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    return detail


# ---------------------------------------------------------------- happy paths
def test_health_model_docs(client):
    assert client.get("/health").json() == {"status": "ok", "estimator": "_test_svd", "n_users": 60, "n_items": 30}
    info = client.get("/model").json()
    assert info["estimator"] == "_test_svd" and info["params"] == {"dim": 3} and info["max_k"] == 100
    assert len(info["data"]["fingerprint"]) == 16 and "ncf" in info["versions"]["serving"]
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/health", "/model", "/users/{user_id}/recommendations", "/recommendations",
            "/items/{item_id}/similar", "/scores"} <= set(paths)


def test_user_recommendations_match_library(client, rec):
    r = client.get("/users/101/recommendations", params={"k": 4})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == rec.recommend(101, k=4)
    body = r.json()
    assert body["policy"] == "model" and body["items"][0]["title"].startswith("Movie ")
    with_seen = client.get("/users/101/recommendations?k=10&exclude_seen=false").json()
    assert with_seen == rec.recommend(101, k=10, exclude_seen=False)
    drama = client.get("/users/101/recommendations?k=3&genre=Drama").json()
    assert all(e["genres"] == ["Drama"] for e in drama["items"])


def test_unknown_user_gets_popular(client):
    body = client.get("/users/nobody/recommendations?k=3").json()
    assert body["user"] == "nobody" and body["policy"] == "popular" and len(body["items"]) == 3


def test_batch_recommendations_and_cold_start(client, rec):
    r = client.post("/recommendations", json={"users": [101, "150", 999], "k": 2})
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["policy"] for x in res] == ["model", "model", "popular"]
    assert res[1] == rec.recommend(150, k=2)
    liked = client.post("/recommendations", json={"users": ["new"], "k": 3, "liked_items": [1021, 1022]}).json()
    assert liked["results"][0]["policy"] == "liked-items"
    assert all(1021 <= e["item"] <= 1030 for e in liked["results"][0]["items"])
    cands = client.post("/recommendations", json={"users": [101], "k": 5, "candidates": [1030, 1001]}).json()
    assert {e["item"] for e in cands["results"][0]["items"]} <= {1030, 1001}


def test_similar_and_scores(client, rec):
    body = client.get("/items/1012/similar?k=9").json()
    assert body == rec.similar(1012, k=9) and body["similarity"] == "embeddings"
    assert {e["item"] for e in body["items"]} == set(range(1011, 1021)) - {1012}
    s = client.post("/scores", json={"user": 101, "items": [1001, 1030]}).json()
    assert s == rec.score(101, [1001, 1030]) and s["policy"] == "model"


# ---------------------------------------------------------------- errors: always 4xx, one line
def test_unknown_items_named(client):
    d = _one_line_4xx(client.get("/items/777777/similar"), 404)
    assert "777777" in d
    r = client.post("/scores", json={"user": 101, "items": [1001, 555, "zzz"]})
    assert "555" in _one_line_4xx(r, 404) and r.json()["unknown_ids"] == [555, "zzz"]
    r = client.post("/recommendations", json={"users": [101], "candidates": [424242]})
    assert r.json()["unknown_ids"] == [424242]
    _one_line_4xx(client.post("/recommendations", json={"users": ["x"], "liked_items": [31337]}), 404)


@pytest.mark.parametrize("query", ["k=0", "k=101", "k=-5", "k=abc", "k=1.5", "exclude_seen=maybe", "genre=Westernz"])
def test_bad_query_params(client, query):
    d = _one_line_4xx(client.get(f"/users/101/recommendations?{query}"), 422)
    assert query.split("=")[0] in d or "genre" in d


@pytest.mark.parametrize("body", [
    b"{not json", b"", b"[1,2", b"null", b"[]", b'"users"', b'{"users": 5}', b'{"users": []}',
    b'{"users": [1.5]}', b'{"users": [true]}', b'{"users": [{}]}', b'{"users": [null]}', b'{"users": [1], "k": 0}',
    b'{"users": [1], "k": 5000}', b'{"users": [1], "k": "ten"}', b'{"users": [1], "colour": "red"}',
    b'{"users": [1], "candidates": "1001"}', b'{"users": [1], "exclude_seen": "perhaps"}', b'\xff\xfe\x00',
    b'{"users": [1], "k": 1e400}', b'{"users": [""]}',
])
def test_malformed_batch_bodies_are_4xx(client, body):
    r = client.post("/recommendations", content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (body, r.status_code, r.text)
    _one_line_4xx(r, r.status_code)


def test_batch_size_bounded(client):
    users = list(range(101, 161))  # this server allows 1,000 listed items per request
    d = _one_line_4xx(client.post("/recommendations", json={"users": users, "k": 20}), 422)
    assert "users x k = 60 x 20 is over the limit of 1000" in d
    r = client.post("/recommendations", json={"users": users, "k": 10})
    assert r.status_code == 200 and len(r.json()["results"]) == 60


def test_malformed_json_message(client):
    d = _one_line_4xx(client.post("/recommendations", content=b"{not json",
                                  headers={"content-type": "application/json"}), 422)
    assert "malformed JSON" in d
    d = _one_line_4xx(client.post("/scores", json={"user": 1, "items": [1001], "k": 3}), 422)
    assert "k" in d
    _one_line_4xx(client.post("/scores", json={"user": 1, "items": []}), 422)


def test_oversized_body_413(client):
    big = json.dumps({"users": list(range(5000))}).encode()  # > 10 kB limit of this server
    d = _one_line_4xx(client.post("/recommendations", content=big, headers={"content-type": "application/json"}), 413)
    assert "limit" in d

    def chunks():  # streamed without a Content-Length
        for _ in range(20):
            yield b" " * 1000

    r = client.post("/recommendations", content=chunks(), headers={"content-type": "application/json"})
    _one_line_4xx(r, 413)


def test_odd_paths_and_methods(client):
    assert client.get("/nope").status_code == 404
    assert client.delete("/health").status_code == 405
    for uid in ("%00", "x" * 3000, "99999999999999999999999", "-1", "1.0", "%F0%9F%98%80"):
        r = client.get(f"/users/{uid}/recommendations")
        assert r.status_code == 200 and r.json()["policy"] == "popular", (uid, r.text)
    for iid in ("%00", "1e3", "99999999999999999999999"):
        _one_line_4xx(client.get(f"/items/{iid}/similar"), 404)


@pytest.mark.slow
def test_small_load_no_5xx(base_url):
    """500 mixed good/malformed requests: no 5xx, every malformed one a 4xx, every good one a 200."""
    spec = importlib.util.spec_from_file_location("load_test", ROOT / "benchmarks" / "load_test.py")
    lt = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lt)
    reqs = lt.request_mix(500, users=list(range(101, 161)), items=list(range(1001, 1031)), seed=1, max_k=100,
                          big_body=20_000)
    stats = lt.fire(base_url, reqs, concurrency=8, time_limit=60)
    assert stats["sent"] == 500 and stats["5xx"] == 0 and stats["errors"] == 0
    assert stats["wrong"] == 0, stats["wrong_examples"]
