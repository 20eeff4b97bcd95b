"""Hyperparameter sweep helper for leave-one-out ranking on ml-100k, selecting on validation only.

    python benchmarks/sweep_loo.py --model neumf --seeds 0,1 --set lr=0.005 --set epochs=10 [--nested]

Per seed: fit on train with early stopping on the validation item -> validation HR@10/NDCG@10 at the best
epoch (the selection criterion); test HR@10 of that model and of the refit (train + validation, best epoch
count). --nested also simulates the refit decision without the test item: the last train item of each user
becomes the early-stopping item and the validation item is the held-out one (refit vs no refit on it).
Prints one JSON line per seed and a mean line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import ml100k_loo  # noqa: E402


def build(model: str, params: dict, seed: int):
    from ncf.run import build_estimator
    from ncf.runconfig import RunConfig

    return build_estimator(RunConfig.build(overrides={"task": "ranking", "model": model, "seed": seed, **params}))


def hr(est, test, cands) -> dict:
    from ncf.evaluation.protocols import evaluate_sampled

    s = evaluate_sampled(est, test, cands, ks=(10,))
    return {"hr": round(s["hr@10"], 4), "ndcg": round(s["ndcg@10"], 4)}


def one(model: str, params: dict, seed: int, nested: bool, data, split, cands) -> dict:
    t = time.perf_counter()
    est = build(model, params, seed).fit(split.train, split.valid)
    best = int(est.best_epoch_)
    row = est.history_.iloc[best - 1]
    out = {"seed": seed, "best": best, "n": len(est.history_), "val_hr": round(float(row["val_hr@10"]), 4),
           "val_ndcg": round(float(row["val_ndcg@10"]), 4)}
    out["test"] = hr(est, split.test, cands)
    ref = build(model, params | {"epochs": best, "patience": 0}, seed).fit(split.train_valid())
    out["test_refit"] = hr(ref, split.test, cands)
    if nested:
        from ncf.sampling import eval_candidates, positive_keys
        from ncf.split import split_data

        inner = split_data(split.train, method="loo", seed=0, valid=False)
        vc = eval_candidates(split.valid, positive_keys(data.csr()), n=99, seed=seed)
        e1 = build(model, params, seed).fit(inner.train, inner.test)
        b1 = int(e1.best_epoch_)
        out["nested_valid"] = hr(e1, split.valid, vc)
        e2 = build(model, params | {"epochs": b1, "patience": 0}, seed).fit(split.train)
        out["nested_valid_refit"] = hr(e2, split.valid, vc)
    out["seconds"] = round(time.perf_counter() - t, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="neumf")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--nested", action="store_true")
    args = ap.parse_args()
    params = {}
    for pair in args.set:
        k, _, v = pair.partition("=")
        params[k] = v
    data, split, cands = ml100k_loo()
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        r = one(args.model, params, seed, args.nested, data, split, cands)
        rows.append(r)
        print(json.dumps({"params": params} | r), flush=True)
    mean = {"params": params, "model": args.model, "seeds": len(rows),
            "val_hr": round(statistics.mean(r["val_hr"] for r in rows), 4),
            "test_hr": round(statistics.mean(r["test"]["hr"] for r in rows), 4),
            "test_refit_hr": round(statistics.mean(r["test_refit"]["hr"] for r in rows), 4)}
    if args.nested:
        mean["nested_valid_hr"] = round(statistics.mean(r["nested_valid"]["hr"] for r in rows), 4)
        mean["nested_valid_refit_hr"] = round(statistics.mean(r["nested_valid_refit"]["hr"] for r in rows), 4)
    print("MEAN " + json.dumps(mean), flush=True)


if __name__ == "__main__":
    main()
