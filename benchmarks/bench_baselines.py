"""Baselines on MovieLens 100K against published/reference figures (docs: /work/shared/PROTOCOLS.md).

1. Rating: 5-fold RMSE/MAE of global mean and bias (Surprise BaselineOnly: 0.944 / 0.748).
2. Ranking: leave-one-out HR@10 / NDCG@10 of pop, itemknn, ease, sampled (99 negatives) and full ranking,
   validation kept in train, under three timestamp tie rules: row order (RecBole's stable sort, our
   default), inner item id, and first appearance of the item in the file (RecBole's remapped item ids).
   Reference (pop / ease): sampled HR@10 0.326 / 0.600, full 0.059 / 0.099 -- reproduced by first_seen.

Usage: python benchmarks/bench_baselines.py [--data ml-100k] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time

from ncf.data import load_data
from ncf.evaluation.protocols import evaluate_models
from ncf.evaluation.tables import aggregate, format_table

REF_RATING = {"bias": {"rmse": 0.944, "mae": 0.748}}
REF_RANK = {"pop": {"sampled": 0.326, "full": 0.059}, "ease": {"sampled": 0.600, "full": 0.099}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="ml-100k")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    data = load_data(args.data)
    print(f"{data.name}: {len(data):,} ratings, {data.n_users} users, {data.n_items} items")
    out: dict = {}

    t = time.perf_counter()
    rating = evaluate_models(data, ["global_mean", "bias"], task="rating", split="kfold", seeds=[0])
    dt = time.perf_counter() - t
    print(f"\n5-fold rating ({dt:.1f} s; Surprise BaselineOnly: RMSE 0.944, MAE 0.748)")
    print(format_table(rating))
    out["rating_5fold"] = rating[0]

    for tie in ("row", "item", "first_seen"):
        t = time.perf_counter()
        rank = evaluate_models(data, ["pop", "itemknn", "ease"], task="ranking", split="loo", seeds=[0],
                               split_params={"tie_break": tie}, valid_in_train=True)
        dt = time.perf_counter() - t
        print(f"\nleave-one-out ranking, ties by {tie} ({dt:.1f} s; reference pop/ease: sampled HR@10 0.326/0.600, "
              f"full 0.059/0.099)")
        cols = {"sampled": ["hr@10", "ndcg@10"], "full": ["hr@10", "ndcg@10", "coverage@10"]}
        print(format_table(rank, columns=cols))
        out[f"loo_{tie}"] = rank[0]

    mean, _ = aggregate([out["rating_5fold"]])
    b = mean["bias"]["rating"]
    print(f"\nbias vs Surprise BaselineOnly: RMSE {b['rmse']:.4f} (ref 0.944, diff {b['rmse'] - 0.944:+.4f}), "
          f"MAE {b['mae']:.4f} (ref 0.748, diff {b['mae'] - 0.748:+.4f})")
    if args.json:
        from ncf._io import atomic_write_text

        atomic_write_text(args.json, json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
