"""Serving benchmark: top-10 requests against a real `ncf serve` on 127.0.0.1; throughput, p50/p99, 5xx count.

Trains (once, cached) or loads an ml-100k model, starts the server in a subprocess on a free loopback port,
fires GET /users/{id}/recommendations?k=10 with a fixed concurrency (bounded: --requests and --time-limit),
and prints a table. Targets: >= 500 req/s, p99 <= 20 ms, zero 5xx.

    python benchmarks/bench_serve.py                         # NeuMF trained by `ncf train` (cached)
    python benchmarks/bench_serve.py --run RUN --requests 5000 --concurrency 8 --client raw|httpx
    python benchmarks/bench_serve.py --profile               # in-process cost of one request, by stage

The default client is a minimal asyncio HTTP/1.1 keep-alive client (cheap, so the numbers measure the
server, not the client); --client httpx uses httpx.AsyncClient.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_RUN = Path(os.environ.get("NCF_BENCH_DIR", "/tmp/ncf-bench")) / "serve-neumf-ml100k"


# ---------------------------------------------------------------- model and server
def ensure_run(run: Path | None, epochs: int = 10) -> Path:
    """The given run/bundle, or a cached ml-100k NeuMF run trained with `ncf train` on first use."""
    if run is not None:
        return run
    if (DEFAULT_RUN / "model" / "model.json").is_file():
        return DEFAULT_RUN
    print(f"training ml-100k NeuMF into {DEFAULT_RUN} (once) ...", flush=True)
    cmd = [sys.executable, "-m", "ncf", "train", "--out", str(DEFAULT_RUN), "--epochs", str(epochs),
           "--threads", "1", "--overwrite", "-q"]
    subprocess.run(cmd, check=True, timeout=1800)
    return DEFAULT_RUN


def sample_ids(run: Path, n_users: int = 500, n_items: int = 300, seed: int = 0) -> tuple[list, list]:
    """Some raw user and item ids of the bundle (read from its JSON, no model load)."""
    from ncf.bundle import read_bundle_meta

    meta = read_bundle_meta(run)
    rng = random.Random(seed)
    users, items = meta["user_map"]["raw_ids"], meta["item_map"]["raw_ids"]
    return rng.sample(users, min(n_users, len(users))), rng.sample(items, min(n_items, len(items)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(run: Path, extra: list[str] | None = None, startup_s: float = 120) -> Iterator[tuple[str, int]]:
    """`ncf serve RUN` in a subprocess on a free loopback port; yields (base_url, pid); stops it afterwards."""
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "ncf", "serve", str(run), "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited ({proc.returncode}): {proc.stderr.read()[-2000:]}")
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not become healthy in time")
            time.sleep(0.2)
        yield url, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- clients
async def _raw_worker(host: str, port: int, paths: Iterator[str], deadline: float, out: list) -> None:
    """Minimal HTTP/1.1 keep-alive GET client: one connection, sequential requests."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        for path in paths:
            if time.monotonic() > deadline:
                return
            t0 = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            out.append((status, time.perf_counter() - t0, len(body)))
    finally:
        writer.close()


async def _httpx_worker(client: Any, paths: Iterator[str], deadline: float, out: list) -> None:
    for path in paths:
        if time.monotonic() > deadline:
            return
        t0 = time.perf_counter()
        r = await client.get(path)
        out.append((r.status_code, time.perf_counter() - t0, len(r.content)))


async def _fire(url: str, paths: list[str], concurrency: int, time_limit: float, client: str) -> tuple[list, float]:
    it = iter(paths)
    out: list = []
    deadline = time.monotonic() + time_limit
    t0 = time.perf_counter()
    if client == "raw":
        host, port = url.removeprefix("http://").split(":")
        await asyncio.gather(*(_raw_worker(host, int(port), it, deadline, out) for _ in range(concurrency)))
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as c:
            await asyncio.gather(*(_httpx_worker(c, it, deadline, out) for _ in range(concurrency)))
    return out, time.perf_counter() - t0


def fire_top10(url: str, users: list, n: int, concurrency: int, time_limit: float, client: str = "raw",
               seed: int = 0) -> dict[str, Any]:
    """n GET top-10 requests over the users; throughput, p50/p99 latency (ms), status counts."""
    rng = random.Random(seed)
    paths = [f"/users/{rng.choice(users)}/recommendations?k=10" for _ in range(n)]
    out, elapsed = asyncio.run(_fire(url, paths, concurrency, time_limit, client))
    lat = sorted(x[1] for x in out)
    statuses: dict[int, int] = {}
    for s, _, _ in out:
        statuses[s] = statuses.get(s, 0) + 1

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))]

    return {"requests": len(out), "seconds": elapsed, "req_per_s": len(out) / elapsed, "p50_ms": pct(0.5),
            "p99_ms": pct(0.99), "max_ms": 1000 * lat[-1], "5xx": sum(v for s, v in statuses.items() if s >= 500),
            "statuses": statuses}


# ---------------------------------------------------------------- in-process profile
def profile(run: Path, users: list, n: int = 2000) -> None:
    """Cost of the stages of one top-10 request in-process (no HTTP)."""
    import numpy as np

    from ncf.serving import Recommender
    from ncf.serving.app import _json

    rec = Recommender.from_path(run)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    inner = rec.user_ids(users)
    stages = {
        "id lookup": lambda u: rec.user_ids([u]),
        "estimator.score_users": lambda u: rec.estimator.score_users(inner[:1]),
        "estimator.recommend": lambda u: rec.estimator.recommend(inner[:1], k=10),
        "Recommender.recommend": lambda u: rec.recommend(u, k=10),
        "recommend + JSON": lambda u: _json(rec.recommend(u, k=10)),
    }
    print(f"in-process, {n} calls each ({rec.estimator.name}, {rec.n_items} items):")
    for name, fn in stages.items():
        for u in users[:50]:
            fn(u)
        t = []
        for i in range(n):
            u = users[i % len(users)]
            t0 = time.perf_counter()
            fn(u)
            t.append(time.perf_counter() - t0)
        t = np.sort(np.array(t)) * 1e6
        print(f"  {name:24s} mean {t.mean():7.0f} us   p50 {np.median(t):7.0f} us   p99 {t[int(0.99 * n)]:7.0f} us")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None, help="run directory or bundle (default: cached ml-100k NeuMF)")
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--client", choices=("raw", "httpx"), default="raw")
    ap.add_argument("--threads", type=int, default=1, help="server --workers-threads")
    ap.add_argument("--profile", action="store_true", help="also time the in-process stages of a request")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args(argv)

    run = ensure_run(args.run)
    users, _ = sample_ids(run)
    if args.profile:
        profile(run, users)
    import psutil

    with running_server(run, ["--workers-threads", str(args.threads)]) as (url, pid):
        fire_top10(url, users, min(300, args.requests), args.concurrency, 30, args.client, seed=1)  # warm-up
        server = psutil.Process(pid)
        cpu0 = sum(server.cpu_times()[:2])
        res = fire_top10(url, users, args.requests, args.concurrency, args.time_limit, args.client)
        cpu1 = sum(server.cpu_times()[:2])
    # server CPU per request: independent of other load on the machine; 1000 / it = req/s one free core sustains
    res["server_cpu_ms_per_req"] = 1000 * (cpu1 - cpu0) / max(res["requests"], 1)
    res.update(run=str(run), concurrency=args.concurrency, client=args.client, cpus=os.cpu_count(),
               load_avg_1min=os.getloadavg()[0])
    if args.json:
        print(json.dumps(res))
    else:
        print(f"{'requests':>9} {'conc':>5} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'5xx':>4} "
              f"{'srv cpu ms/req':>15} {'load':>5}  client")
        print(f"{res['requests']:>9} {args.concurrency:>5} {res['req_per_s']:>8.0f} {res['p50_ms']:>7.2f} "
              f"{res['p99_ms']:>7.2f} {res['max_ms']:>7.1f} {res['5xx']:>4} {res['server_cpu_ms_per_req']:>15.3f} "
              f"{res['load_avg_1min']:>5.1f}  {args.client}")
    ok = res["5xx"] == 0 and res["req_per_s"] >= 500 and res["p99_ms"] <= 20
    print(("targets met" if ok else "targets NOT met") + " (>= 500 req/s, p99 <= 20 ms, 0 5xx)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
