"""Scale benchmark on an ML-25M-shaped synthetic dataset: load + index, loo split, one NeuMF epoch with 4
negatives, sampled evaluation for all users, full ranking for a 10k-user sample, peak memory.

    python benchmarks/bench_scale.py                  # full size: 25M interactions, 162k users, 59k items
    python benchmarks/bench_scale.py --scale 0.1      # a tenth (2.5M rows), a quick check
    python benchmarks/bench_scale.py --batch-size 65536 --lr 0.008 --threads 1 --json

Defaults: the sampled-softmax loss of `ncf train` (each positive against its own 4 negatives: a row of 5
scored pairs whose user-side work is done once, measured ~1.4x the pairs/s of BCE on single pairs here;
`--loss bce` for that), batch 262144 scored pairs (52428 rows of 5) with lr 0.02 (large batches amortise
the dense Adam step over the 14M embedding weights; NVIDIA's NCF reference trains ML-20M with batch
1,048,576), training threads = all cores. The
sampled evaluation is compared with item popularity on the same candidates (the model must beat it).

The data comes from benchmarks/bench_load.py's generator (power-law item popularity, heavy-tailed user
activity, timestamps; cached under bench-out/). Everything is measured in one fresh child process so
peak RSS (ru_maxrss) is that of the pipeline alone, not of the generator.
Targets at full size: epoch <= 3 min, peak RSS <= 6 GB, full ranking of 10k users <= 2 min, sampled
evaluation of all users <= 1 min.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
FULL_ROWS = 25_000_000
N_NEGATIVES = 4  # per positive: a training row (softmax) or 1 + N_NEGATIVES rows (bce) of scored pairs
TARGETS = {"epoch_s": 180.0, "peak_gb": 6.0, "full_10k_s": 120.0, "sampled_all_s": 60.0}


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class _Stop(Exception):
    pass


def _limit_steps(max_steps: int | None) -> dict:
    """With max_steps, make the estimator's Trainer stop after that many batches (timing the loop only)."""
    info: dict = {"steps": 0, "samples": 0, "loop_s": 0.0}
    if not max_steps:
        return info
    import ncf.models.ncf_estimator as ne
    from ncf.training import Trainer

    class LimitedTrainer(Trainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.step_callbacks.append(self._count)
            self._t0 = None

        def _count(self, trainer) -> None:
            if self._t0 is None:  # time from the end of the first step (the epoch's tensors are built by then)
                self._t0 = time.perf_counter()
                return
            info["steps"] += 1
            info["samples"] += self.batch_size * self.samples_per_row
            info["loop_s"] = time.perf_counter() - self._t0
            if info["steps"] >= max_steps:
                raise _Stop()

    ne.Trainer = LimitedTrainer
    return info


def measure(folder: str, args: argparse.Namespace) -> dict:
    """(child process) the pipeline, phase by phase: seconds and peak RSS so far."""
    import torch

    from ncf.data.interactions import Interactions
    from ncf.data.movielens import get_release
    from ncf.data.parsers import parse_release
    from ncf.evaluation.protocols import evaluate_full, evaluate_sampled
    from ncf.models.baselines import Popularity
    from ncf.models.ncf_estimator import NeuMFEstimator
    from ncf.sampling import eval_candidates
    from ncf.split import split_data
    from ncf.training import auto_threads

    out: dict = {"phases": {}}

    def phase(name: str, t0: float, **extra) -> None:
        out["phases"][name] = {"s": round(time.perf_counter() - t0, 2), "peak_gb": round(_peak_gb(), 3), **extra}
        print(f"  {name}: {out['phases'][name]}", file=sys.stderr, flush=True)

    t = time.perf_counter()
    release = get_release("ml-25m")
    raw, meta = parse_release(Path(folder), release)
    data = Interactions.from_raw(raw.users, raw.items, raw.ratings, raw.timestamps, item_meta_raw=meta,
                                 name="ml-25m-synth", rating_scale=release.rating_scale)
    del raw, meta
    phase("load+index", t, rows=len(data), users=data.n_users, items=data.n_items)

    t = time.perf_counter()
    split = split_data(data, "loo", seed=0)
    del data
    phase("split (loo)", t, train=len(split.train), valid=len(split.valid or []), test=len(split.test))

    t = time.perf_counter()
    stopped = _limit_steps(args.max_steps)
    pairs_per_row = 1 + N_NEGATIVES if args.loss == "softmax" else 1
    rows = args.batch_size // pairs_per_row  # --batch-size counts scored pairs
    threads = args.threads or auto_threads(split.train.n_users + split.train.n_items, rows)
    est = NeuMFEstimator(factors=args.factors, layers=tuple(args.layers), epochs=1, n_negatives=N_NEGATIVES, loss=args.loss,
                         batch_size=rows, lr=args.lr, early_stopping=None, seed=0, device=args.device,
                         threads=threads)
    n_samples = len(split.train) * (1 + N_NEGATIVES)  # each positive + its negatives
    try:
        est.fit(split.train)
    except _Stop:  # --max-steps: the epoch's tensors were built, only part of the batch loop ran
        sps = stopped["samples"] / stopped["loop_s"]
        est.module_.eval()
        phase("neumf epoch", t, samples=n_samples, samples_per_s=round(sps), epoch_s=None,
              train_loop_s=round(n_samples / sps, 2), partial_steps=stopped["steps"], partial_loop_s=round(stopped["loop_s"], 2),
              batch_size=args.batch_size, loss=args.loss, threads=threads)
    else:
        row = est.history_.iloc[-1]
        epoch_train_s = float(n_samples / row["samples_per_s"])  # the batch loop alone (history's samples/s)
        phase("neumf epoch", t, samples=n_samples, samples_per_s=round(float(row["samples_per_s"])),
              epoch_s=round(float(row["seconds"]), 2), train_loop_s=round(epoch_train_s, 2),
              train_loss=float(row["train_loss"]), batch_size=args.batch_size, loss=args.loss, threads=threads)

    t = time.perf_counter()
    cands = eval_candidates(split.test, split.all_keys(), n=99, seed=0)
    phase("candidates (99/user)", t, users=len(split.test))
    torch.set_num_threads(args.eval_threads)
    t = time.perf_counter()
    sampled = evaluate_sampled(est, split.test, cands, ks=(10,))
    phase("sampled eval, all users", t, users=len(split.test), **{k: round(v, 4) for k, v in sampled.items()})
    t = time.perf_counter()  # the reference a model must beat: item popularity on the same candidates
    pop = evaluate_sampled(Popularity().fit(split.train), split.test, cands, ks=(10,))
    phase("popularity, sampled", t, **{k: round(v, 4) for k, v in pop.items() if k in ("hr@10", "ndcg@10")})
    del cands

    t = time.perf_counter()
    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(split.test), size=min(args.full_users, len(split.test)), replace=False))
    test_sample = split.test.subset(rows)
    seen = split.train_valid().csr()
    full = evaluate_full(est, test_sample, seen, ks=(10,))
    phase("full ranking, user sample", t, users=len(rows), s_per_10k_users=round((time.perf_counter() - t) / len(rows) * 1e4, 1),
          **{k: round(v, 4) for k, v in full.items() if k in ("hr@10", "ndcg@10", "recall@10")})
    out["peak_gb"] = round(_peak_gb(), 3)
    out["load_avg"] = os.getloadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the 25M rows (users/items shrink too)")
    ap.add_argument("--out", default=str(HERE.parent / "bench-out"), help="cache folder for the generated data")
    ap.add_argument("--batch-size", type=int, default=262144, help="scored (user, item) pairs per batch")
    ap.add_argument("--loss", choices=("softmax", "bce"), default="softmax")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--layers", type=lambda s: [int(x) for x in s.split(",")], default=[64, 32, 16])
    ap.add_argument("--threads", type=int, default=None, help="torch threads during training (default: ncf.training.auto_threads, all cores here)")
    ap.add_argument("--eval-threads", type=int, default=max(1, min(4, os.cpu_count() or 1)))
    ap.add_argument("--full-users", type=int, default=10_000)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-steps", type=int, default=None,
                    help="time only this many training batches (the epoch's tensors are still built in full)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args)))
        return
    from bench_load import generate

    rows = int(round(FULL_ROWS * args.scale))
    folder = Path(args.out) / ("ml-25m-synth" if rows == FULL_ROWS else f"ml-25m-synth-{rows}")
    generate(folder, rows)
    child = [sys.executable, __file__, "--child", str(folder)] + [a for a in sys.argv[1:] if a != "--json"]
    t0 = time.perf_counter()
    proc = subprocess.run(child, stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.exit(f"bench_scale: the measuring process failed (exit {proc.returncode})")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update({"scale": args.scale, "rows_target": rows, "wall_s": round(time.perf_counter() - t0, 1),
                "targets": TARGETS if rows == FULL_ROWS else None})
    if args.json:
        print(json.dumps(res))
        return
    ph = res["phases"]
    ep = ph["neumf epoch"]
    print(f"\nscale benchmark: {ph['load+index']['rows']:,} interactions, {ph['load+index']['users']:,} users, "
          f"{ph['load+index']['items']:,} items (scale {args.scale:g})\n")
    print("| phase | seconds | peak RSS so far (GB) | notes |")
    print("|---|---|---|---|")
    notes = {
        "load+index": "",
        "split (loo)": f"train {ph['split (loo)']['train']:,} / valid {ph['split (loo)']['valid']:,} / test {ph['split (loo)']['test']:,}",
        "neumf epoch": (f"{ep['samples']:,} samples, {ep['samples_per_s']:,} samples/s, training loop {ep['train_loop_s']} s, "
                        f"{ep.get('loss', 'bce')}, batch {ep['batch_size']} pairs, {ep['threads']} thread(s)"),
        "candidates (99/user)": "",
        "sampled eval, all users": (f"hr@10 {ph['sampled eval, all users'].get('hr@10')}, "
                                    f"ndcg@10 {ph['sampled eval, all users'].get('ndcg@10')}"),
        "popularity, sampled": (f"hr@10 {ph['popularity, sampled'].get('hr@10')}, "
                                f"ndcg@10 {ph['popularity, sampled'].get('ndcg@10')}"),
        "full ranking, user sample": (f"{ph['full ranking, user sample']['users']:,} users, "
                                      f"hr@10 {ph['full ranking, user sample'].get('hr@10')}"),
    }
    for name, p in ph.items():
        print(f"| {name} | {p['s']} | {p['peak_gb']} | {notes.get(name, '')} |")
    print(f"\npeak RSS {res['peak_gb']} GB; load average at the end {res['load_avg'][0]:.1f} on {os.cpu_count()} cores")
    if rows != FULL_ROWS:  # linear extrapolation of the times to the full ML-25M shape (same load)
        li, fr, sa = ph["load+index"], ph["full ranking, user sample"], ph["sampled eval, all users"]
        est = {"epoch_s": (1 + N_NEGATIVES) * 24.67e6 / ep["samples_per_s"],  # loop only, at the measured samples/s
               "full_10k_s": fr["s"] / fr["users"] * 10_000 * 59_047 / li["items"],
               "sampled_all_s": sa["s"] * 162_541 / li["users"]}
        res["extrapolated_full_size"] = {k: round(v, 1) for k, v in est.items()}
        print("extrapolated to full size (same machine load): " + ", ".join(
            f"{k} ~{v:,.0f} (target {TARGETS[k]:g})" for k, v in est.items()))
    if rows == FULL_ROWS:
        # partial epoch (--max-steps): setup + the whole loop at the measured rate
        epoch = ep["s"] if ep.get("epoch_s") is not None else ep["s"] - ep["partial_loop_s"] + ep["train_loop_s"]
        checks = {"epoch_s": round(epoch, 1), "peak_gb": res["peak_gb"],
                  "full_10k_s": ph["full ranking, user sample"]["s_per_10k_users"],
                  "sampled_all_s": ph["sampled eval, all users"]["s"]}
        print("targets: " + ", ".join(f"{k} {v} {'<=' if v <= TARGETS[k] else '>'} {TARGETS[k]}"
                                      f" ({'ok' if v <= TARGETS[k] else 'MISSED'})" for k, v in checks.items()))
    print(json.dumps(res))


if __name__ == "__main__":
    main()
