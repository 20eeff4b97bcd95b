"""Run the benchmark scripts in benchmarks/ one after another; print one table and one JSON document.

    python benchmarks/run_all.py                    # every bench_*.py with its own defaults (slow: full sizes)
    python benchmarks/run_all.py --quick            # small settings where a script has them
    python benchmarks/run_all.py --only scale,load  # a subset (names without the bench_ prefix)
    python benchmarks/run_all.py --json results.json

Each script runs in its own process (so its peak memory and failures stay its own), with a time limit.
The table shows status, wall time and the script's last lines; the JSON holds the full stdout tail and,
when the script's last stdout line is a JSON object, that object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# small settings for --quick (scripts not listed run with their defaults)
QUICK_ARGS: dict[str, list[str]] = {
    "scale": ["--scale", "0.02"],
    "load": ["--rows", "1000000"],
    "serve": ["--requests", "500", "--time-limit", "20"],
    "speed": ["--reps", "1", "--max-epochs", "5"],
}


def discover() -> dict[str, Path]:
    """bench_<name>.py scripts, by name."""
    return {p.stem[len("bench_"):]: p for p in sorted(HERE.glob("bench_*.py"))}


def run_one(name: str, path: Path, extra: list[str], timeout: float) -> dict:
    """Run one script; status ok | failed | timeout, seconds, stdout tail, and its JSON (if it printed one)."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(path), *extra], capture_output=True, text=True, timeout=timeout,
                              cwd=HERE.parent)
        status = "ok" if proc.returncode == 0 else f"failed ({proc.returncode})"
        out, err = proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        status = "timeout"
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
    seconds = time.perf_counter() - t0
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    result = None
    if lines:
        try:
            parsed = json.loads(lines[-1])
            result = parsed if isinstance(parsed, dict) else None
        except json.JSONDecodeError:
            pass
    text_lines = [ln for ln in lines if not ln.lstrip().startswith("{")]
    return {"name": name, "script": str(path.relative_to(HERE.parent)), "args": extra, "status": status,
            "seconds": round(seconds, 1), "summary": text_lines[-3:], "result": result,
            "stderr_tail": err.strip().splitlines()[-5:] if status != "ok" else []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated names (e.g. scale,load)")
    ap.add_argument("--quick", action="store_true", help="small settings where known")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per script")
    ap.add_argument("--json", default=None, help="also write the JSON document to this file")
    args = ap.parse_args()
    scripts = discover()
    names = list(scripts) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in scripts]
    if unknown:
        sys.exit(f"error: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(scripts)}")
    runs = []
    for name in names:
        extra = QUICK_ARGS.get(name, []) if args.quick else []
        print(f"running {name} {' '.join(extra)}".rstrip(), file=sys.stderr, flush=True)
        runs.append(run_one(name, scripts[name], extra, args.timeout))
    width = max(len(r["name"]) for r in runs) if runs else 4
    print(f"\n{'benchmark':<{width + 2}}{'status':<14}{'seconds':>9}  last line")
    for r in runs:
        last = r["summary"][-1] if r["summary"] else (r["stderr_tail"][-1] if r["stderr_tail"] else "")
        print(f"{r['name']:<{width + 2}}{r['status']:<14}{r['seconds']:>9.1f}  {last[:100]}")
    doc = {"load_avg": os.getloadavg(), "cpus": os.cpu_count(), "quick": args.quick, "runs": runs}
    text = json.dumps(doc, indent=1)
    if args.json:
        Path(args.json).write_text(text, encoding="utf-8")
    print(text)
    if any(r["status"] != "ok" for r in runs):
        sys.exit(1)


if __name__ == "__main__":
    main()
