"""The download path against a local HTTP server: verified, atomic, locked, and cleaned up on failure."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import threading
import zipfile
from pathlib import Path

import pytest

from ncf.data import load_data
from ncf.data.fetch import MARKER, dataset_dir, fetch, is_fetched
from ncf.errors import DataError, DownloadError

FIX = Path(__file__).parent / "fixtures" / "movielens"


def release_zip(folder: str, top: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted((FIX / folder).iterdir()):
            zf.write(p, f"{top}/{p.name}")
    return buf.getvalue()


class Server:
    """Serves `files` (path -> bytes); `lie` paths announce more bytes than they send."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.lie: set[str] = set()
        self.hits: dict[str, int] = {}
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body) * (2 if self.path in server.lie else 1)))
                self.end_headers()
                self.wfile.write(body)
                if self.path in server.lie:
                    self.wfile.flush()
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path, monkeypatch):
    s = Server()
    monkeypatch.setenv("NCF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NCF_GROUPLENS_URL", s.url + "/movielens")
    monkeypatch.setenv("NCF_GROUPLENS_TIMEOUT", "5")
    yield s
    s.close()


def publish(server: Server, name: str, body: bytes, md5_of: bytes | None = None) -> None:
    md5 = hashlib.md5(md5_of if md5_of is not None else body).hexdigest()
    server.files[f"/movielens/{name}.zip"] = body
    server.files[f"/movielens/{name}.zip.md5"] = f"MD5 ({name}.zip) = {md5}\n".encode()


def downloads(name: str) -> list[Path]:
    folder = dataset_dir(name).parent / ".downloads" / name
    return sorted(folder.iterdir()) if folder.exists() else []


def test_good_file_is_verified_extracted_and_cached(server):
    good = release_zip("ml-latest-small", "ml-latest-small")
    publish(server, "ml-latest-small", good)
    path = fetch("ml-latest-small", progress=False, log=lambda m: None)
    assert path == dataset_dir("ml-latest-small") and (path / "ratings.csv").is_file()
    record = json.loads((path / MARKER).read_text())
    assert record["source"] == "grouplens" and record["md5"] == hashlib.md5(good).hexdigest()
    assert downloads("ml-latest-small") == []  # the zip is removed after extraction
    fetch("ml-latest-small", progress=False, log=lambda m: None)  # no-op
    assert server.hits["/movielens/ml-latest-small.zip"] == 1
    d = load_data("ml-latest-small")
    assert len(d) == 6 and d.name == "ml-latest-small"


@pytest.mark.parametrize("damage", ["truncated", "tampered"])
def test_bad_download_is_rejected_and_removed(server, damage):
    good = release_zip("ml-latest-small", "ml-latest-small")
    bad = good[: len(good) // 2] if damage == "truncated" else good[:-30] + bytes(30)
    publish(server, "ml-latest-small", bad, md5_of=good)
    with pytest.raises(DownloadError, match="checksum mismatch .* the bad file was removed"):
        fetch("ml-latest-small", progress=False, log=lambda m: None)
    assert downloads("ml-latest-small") == []
    assert not is_fetched("ml-latest-small") and not dataset_dir("ml-latest-small").exists()
    publish(server, "ml-latest-small", good)  # the next try starts cleanly
    assert (fetch("ml-latest-small", progress=False, log=lambda m: None) / "movies.csv").is_file()


def test_connection_cut_short_leaves_nothing(server):
    good = release_zip("ml-latest-small", "ml-latest-small")
    publish(server, "ml-latest-small", good)
    server.lie.add("/movielens/ml-latest-small.zip")
    with pytest.raises(DownloadError):
        fetch("ml-latest-small", progress=False, log=lambda m: None)
    assert downloads("ml-latest-small") == [] and not dataset_dir("ml-latest-small").exists()


def test_pinned_md5_wins_over_served_md5(server):
    fake = release_zip("ml-1m", "ml-1m")  # not the real ml-1m: the pinned md5 refuses it
    publish(server, "ml-1m", fake)
    with pytest.raises(DownloadError, match="checksum mismatch .*c4d9eecfca2ab87c1945afe126590906"):
        fetch("ml-1m", progress=False, log=lambda m: None)
    assert "/movielens/ml-1m.zip.md5" not in server.hits


def test_interrupted_download_and_half_extraction_restart_cleanly(server):
    good = release_zip("ml-latest-small", "ml-latest-small")
    publish(server, "ml-latest-small", good)
    target = dataset_dir("ml-latest-small")
    stale = target.parent / ".downloads" / "ml-latest-small" / "tmpabc123"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"half a download")
    target.mkdir(parents=True)
    (target / "ratings.csv").write_text("userId,movieId\n")  # an extraction without its marker
    assert not is_fetched("ml-latest-small")
    fetch("ml-latest-small", progress=False, log=lambda m: None)
    assert not stale.exists()
    assert len(load_data("ml-latest-small")) == 6


def test_two_fetches_at_once_download_once(server):
    publish(server, "ml-latest-small", release_zip("ml-latest-small", "ml-latest-small"))
    errors: list[BaseException] = []

    def run():
        try:
            fetch("ml-latest-small", progress=False, log=lambda m: None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert server.hits["/movielens/ml-latest-small.zip"] == 1
    assert len(load_data("ml-latest-small")) == 6


def test_unreachable_release_without_mirror(server, monkeypatch):
    monkeypatch.setenv("NCF_GROUPLENS_URL", "http://127.0.0.1:9/nothing")  # discard port: refused
    with pytest.raises(DownloadError, match="could not"):
        fetch("ml-20m", progress=False, log=lambda m: None)


def test_zip_without_the_ratings_file(server):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-latest-small/README.txt", "hello")
    publish(server, "ml-latest-small", buf.getvalue())
    with pytest.raises(DataError, match="holds no ratings.csv"):
        fetch("ml-latest-small", progress=False, log=lambda m: None)
    assert not dataset_dir("ml-latest-small").exists()


def test_mirror_from_a_local_wheel_copy(server, tmp_path, monkeypatch):
    """The mirror path without the network: a fabricated wheel fails its sha256 and is refused."""
    wheel = tmp_path / "recbole-1.2.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("recbole/dataset_example/ml-100k/ml-100k.inter", "user_id:token\titem_id:token\n1\t2\n")
    monkeypatch.setenv("NCF_MIRROR_WHEEL", str(wheel))
    with pytest.raises(DownloadError, match="checksum mismatch for the mirror wheel"):
        fetch("ml-100k", source="mirror", progress=False, log=lambda m: None)
    assert not dataset_dir("ml-100k").exists()
