"""Load test: many requests mixing good and malformed ones against a real `ncf serve` on 127.0.0.1.

Pass criteria: 0 responses with status 5xx, 0 connection errors, every malformed request answered 4xx and
every good one 200, and RSS growth of the server process under 10% (after warm-up). Bounded in time.

    python benchmarks/load_test.py                      # trains/reuses an ml-100k NeuMF run (see bench_serve.py)
    python benchmarks/load_test.py --run RUN --requests 10000 --concurrency 16 --time-limit 600
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx

# (method, path, body, expectation): expectation "ok" = 200, "4xx" = any 400..499
Request = tuple[str, str, bytes | None, str]


def request_mix(n: int, users: list, items: list, seed: int = 0, max_k: int = 1000, bad_fraction: float = 0.4,
                big_body: int = 1_100_000) -> list[Request]:
    """n requests: ~60% good (known/unknown users, similar, batch, scores, health), ~40% malformed."""
    rng = random.Random(seed)
    big = json.dumps({"users": [users[0]] * (big_body // 4)}).encode()

    def good() -> Request:
        kind = rng.random()
        u = rng.choice(users)
        k = rng.choice((1, 5, 10, 10, 10, 20))
        if kind < 0.45:
            return "GET", f"/users/{u}/recommendations?k={k}", None, "ok"
        if kind < 0.55:
            return "GET", f"/users/stranger-{rng.randrange(10**6)}/recommendations?k={k}", None, "ok"
        if kind < 0.70:
            return "GET", f"/items/{rng.choice(items)}/similar?k={k}", None, "ok"
        if kind < 0.82:
            body = {"users": rng.sample(users, min(3, len(users))) + ["cold-user"], "k": k,
                    "liked_items": rng.sample(items, 2)}
            return "POST", "/recommendations", json.dumps(body).encode(), "ok"
        if kind < 0.95:
            return "POST", "/scores", json.dumps({"user": u, "items": rng.sample(items, 3)}).encode(), "ok"
        return "GET", "/health", None, "ok"

    bad_bodies = [b"{not json", b"", b"[1,2", b"null", b'{"users": 5}', b'{"users": []}', b'{"users": [1.5]}',
                  b'{"users": [{}]}', b'{"users": [1], "k": 0}', b'{"users": [1], "k": "ten"}',
                  b'{"users": [1], "colour": 1}', b"\xff\xfe\x00\x00", b'{"users": [1], "k": 1e400}',
                  b'{"users": [1], "candidates": [-987654321]}', b'{"users": ["x"], "liked_items": [-987654321]}']

    def bad() -> Request:
        kind = rng.random()
        u = rng.choice(users)
        if kind < 0.15:
            k = rng.choice(("0", "-3", str(max_k + 1), "abc", "1.5", "", "1e9"))
            return "GET", f"/users/{u}/recommendations?k={k}", None, "4xx"
        if kind < 0.25:
            return "GET", f"/items/-987654321/similar?k=5", None, "4xx"
        if kind < 0.30:
            return "GET", f"/users/{u}/recommendations?genre=NoSuchGenre", None, "4xx"
        if kind < 0.65:
            return "POST", "/recommendations", rng.choice(bad_bodies), "4xx"
        if kind < 0.80:
            body = rng.choice([b'{"user": 1}', b'{"user": 1, "items": []}', b'{"user": [], "items": [1]}',
                               json.dumps({"user": u, "items": [items[0], -987654321]}).encode()])
            return "POST", "/scores", body, "4xx"
        if kind < 0.85:
            return "POST", "/recommendations", big, "4xx"
        if kind < 0.92:
            return "GET", f"/no/such/path/{rng.randrange(1000)}", None, "4xx"
        if kind < 0.96:
            return "PUT", "/scores", b"{}", "4xx"
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        return "POST", "/scores", junk, "4xx"

    return [bad() if rng.random() < bad_fraction else good() for _ in range(n)]


async def _fire(base_url: str, reqs: list[Request], concurrency: int, time_limit: float) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    latencies: list[float] = []
    wrong: list[str] = []
    errors: list[str] = []
    queue = iter(enumerate(reqs))
    deadline = time.monotonic() + time_limit
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        async def worker() -> None:
            for _, (method, path, body, expect) in queue:
                if time.monotonic() > deadline:
                    return
                headers = {"content-type": "application/json"} if body is not None else None
                t0 = time.perf_counter()
                try:
                    r = await client.request(method, path, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    errors.append(f"{method} {path}: {type(exc).__name__}")
                    continue
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                ok = r.status_code == 200 if expect == "ok" else 400 <= r.status_code < 500
                if not ok:
                    wrong.append(f"{method} {path} {body[:80] if body else ''!r} -> {r.status_code} {r.text[:120]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")

    return {"sent": len(latencies) + len(errors), "seconds": elapsed, "req_per_s": len(latencies) / elapsed,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "statuses": dict(sorted(statuses.items())),
            "5xx": sum(v for s, v in statuses.items() if s >= 500), "errors": len(errors),
            "error_examples": errors[:5], "wrong": len(wrong), "wrong_examples": wrong[:5]}


def fire(base_url: str, reqs: list[Request], concurrency: int = 16, time_limit: float = 120) -> dict[str, Any]:
    """Send the requests with `concurrency` keep-alive connections; counts, status histogram, latencies."""
    return asyncio.run(_fire(base_url, reqs, concurrency, time_limit))


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import psutil
    from bench_serve import ensure_run, running_server, sample_ids

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=None, help="run directory or bundle (default: train/reuse ml-100k NeuMF)")
    ap.add_argument("--requests", type=int, default=10_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds for the firing phase (bound)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    run = ensure_run(args.run)
    users, items = sample_ids(run)
    with running_server(run) as (base_url, pid):
        proc = psutil.Process(pid)
        warm = request_mix(max(200, args.requests // 10), users, items, seed=args.seed + 1)
        fire(base_url, warm, args.concurrency, args.time_limit / 4)
        rss0 = proc.memory_info().rss
        reqs = request_mix(args.requests, users, items, seed=args.seed)
        stats = fire(base_url, reqs, args.concurrency, args.time_limit)
        rss1 = proc.memory_info().rss
    growth = (rss1 - rss0) / rss0
    n_bad = sum(1 for r in reqs if r[3] == "4xx")
    print(f"requests {stats['sent']} ({n_bad} malformed) in {stats['seconds']:.1f}s = {stats['req_per_s']:.0f} req/s, "
          f"concurrency {args.concurrency}")
    print(f"statuses {stats['statuses']}")
    print(f"5xx {stats['5xx']}, connection errors {stats['errors']}, wrong status {stats['wrong']}")
    print(f"latency p50 {stats['p50_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms")
    print(f"server RSS {rss0 / 2**20:.1f} MiB -> {rss1 / 2**20:.1f} MiB ({100 * growth:+.1f}%)")
    for line in stats["wrong_examples"] + stats["error_examples"]:
        print("  e.g.", line)
    ok = (stats["5xx"] == 0 and stats["errors"] == 0 and stats["wrong"] == 0 and growth < 0.10
          and stats["sent"] == args.requests)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
