"""Our NeuMF's wall time to test HR@10 >= 0.66 vs RecBole 1.2.1 NeuMF's wall time to its best epoch (ml-100k LOO).

    python benchmarks/bench_recbole.py [--venv /work/recbole-venv] [--timeout 900] [--reference]

RecBole runs in its own virtualenv (created here when missing, outside the repo) with
    torch==2.13.0 recbole==1.2.1 "numpy<2" "setuptools>=77.0.3,<81" scipy==1.11.4
through benchmarks/_recbole_neumf.py (it patches torch.load(weights_only=False) for RecBole's checkpoints and
times every epoch). Our side comes from benchmarks/results/speed.json (run bench_speed.py first) or is
measured here. If RecBole cannot run (no venv, no network, timeout) the reference figure from PROTOCOLS.md
is used and the output says so: 13 epochs to the best epoch x ~2.6 s (2.29 s training + validation) ~ 34 s.
Writes benchmarks/results/recbole.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, save, table  # noqa: E402

PINS = ["torch==2.13.0", "recbole==1.2.1", "numpy<2", "setuptools>=77.0.3,<81", "scipy==1.11.4"]
HELPER = Path(__file__).parent / "_recbole_neumf.py"
REFERENCE = {"source": "reference figure, /work/shared/PROTOCOLS.md (same kind of machine, Dec 2026)",
             "best_epoch": 13, "train_s_per_epoch": 2.29, "time_to_best_s": 34.0,
             "test": {"hit@10": 0.660, "ndcg@10": 0.385}}


def ensure_venv(venv: Path) -> Path:
    """The venv's python, creating the venv and installing the pinned packages when missing."""
    py = venv / "bin" / "python"
    if py.exists():
        ok = subprocess.run([str(py), "-c", "import recbole, torch"], capture_output=True).returncode == 0
        if ok:
            return py
    print(f"creating {venv} with {' '.join(PINS)} (one-off; large download) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "-q", *PINS], check=True)
    return py


def run_recbole(venv: Path, timeout: float) -> dict:
    py = ensure_venv(venv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "recbole.json"
        proc = subprocess.run([str(py), str(HELPER), str(out)], cwd=tmp, capture_output=True, text=True,
                              timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise RuntimeError("RecBole run failed: " + " | ".join(tail))
        result = json.loads(out.read_text())
    result["source"] = "measured now"
    return result


def ours() -> dict:
    path = RESULTS / "speed.json"
    if path.exists():
        found = json.loads(path.read_text()).get("time_to_target")
        if found:
            return found | {"source": str(path)}
    import bench_speed
    from _common import ml100k_loo

    _, split, cands = ml100k_loo()
    return bench_speed.time_to_target(split, cands, 0.66) | {"target": 0.66, "source": "measured now"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=Path("/work/recbole-venv"))
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds allowed for the RecBole run")
    ap.add_argument("--reference", action="store_true", help="skip RecBole; use the PROTOCOLS.md reference figure")
    args = ap.parse_args()

    if args.reference:
        theirs = dict(REFERENCE)
    else:
        try:
            theirs = run_recbole(args.venv, args.timeout)
        except (subprocess.SubprocessError, RuntimeError, OSError) as exc:
            print(f"RecBole could not run here ({' '.join(str(exc).split())[:300]}); using the reference figure")
            theirs = dict(REFERENCE)
    mine = ours()
    refit = mine.get("refit") or {}
    # the early-stopped run's own curve first; else the refit (ncf train's model: whole first run + refit epochs)
    seconds = mine.get("seconds_to_target") or refit.get("seconds_to_target")
    via = "early-stopped run" if mine.get("seconds_to_target") else "refit on train + valid"
    ratio = seconds / theirs["time_to_best_s"] if seconds and theirs.get("time_to_best_s") else None
    rows = [
        {"system": "RecBole 1.2.1 NeuMF (to its best epoch)", "epochs": theirs.get("best_epoch"),
         "seconds": theirs.get("time_to_best_s"), "test_hr@10": theirs.get("test", {}).get("hit@10"),
         "source": theirs["source"]},
        {"system": f"ncf NeuMF defaults (to test HR@10 >= 0.66, {via})", "epochs": mine.get("epochs_to_target"),
         "seconds": seconds, "test_hr@10": refit.get("test_hr@10") if via.startswith("refit") else mine.get("best_test_hr@10"),
         "source": mine["source"]},
    ]
    rows.append({"system": "ncf NeuMF defaults (to its best epoch)", "epochs": mine.get("best_epoch"),
                 "seconds": mine.get("seconds_to_best_epoch"), "test_hr@10": mine.get("test_hr@10_at_best_epoch"),
                 "source": mine["source"]})
    best_ratio = (mine["seconds_to_best_epoch"] / theirs["time_to_best_s"]
                  if mine.get("seconds_to_best_epoch") and theirs.get("time_to_best_s") else None)
    print(table(rows))
    if best_ratio is not None:
        print(f"time to best epoch, ours / RecBole = {best_ratio:.3f}")
    if ratio is None:
        print("ours did not reach the target, so there is no time ratio")
    else:
        print(f"time ratio ours / RecBole = {ratio:.3f} (target <= 0.100): {'met' if ratio <= 0.1 else 'NOT met'}")
    print(f"wrote {save('recbole', {'recbole': theirs, 'ours': mine, 'ratio': ratio, 'ratio_best_epoch': best_ratio})}")


if __name__ == "__main__":
    main()
