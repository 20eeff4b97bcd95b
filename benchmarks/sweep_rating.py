"""MF/NeuMF rating sweep: 5-fold, selection on the inner 5% validation slice (val_rmse at the best epoch).

    python benchmarks/sweep_rating.py mf lr=0.001 l2=0.065
"""
import json, statistics, sys, time
from ncf.data.load import load_data
from ncf.evaluation.protocols import evaluate_rating
from ncf.run import build_estimator
from ncf.runconfig import RunConfig
from ncf.split import split_data

model = sys.argv[1]
params = dict(p.partition("=")[::2] for p in sys.argv[2:])
data = load_data("ml-100k")
vals, tests, bests = [], [], []
t = time.perf_counter()
for fold in range(5):
    part = split_data(data, "kfold", seed=0, k=5, fold=fold)
    inner = split_data(part.train, "random", seed=fold, test_size=0.05, valid_size=0.0, stratify=True)
    est = build_estimator(RunConfig.build(overrides={"task": "rating", "model": model, **params}))
    est.fit(inner.train, inner.test)
    h = est.history_
    vals.append(float(h["val_rmse"].iloc[est.best_epoch_ - 1]))
    tests.append(evaluate_rating(est, part.test)["rmse"])
    bests.append(est.best_epoch_)
print("RATING " + json.dumps({"model": model, "params": params, "val_rmse": round(statistics.mean(vals), 4),
      "test_rmse": round(statistics.mean(tests), 4), "best": bests, "s": round(time.perf_counter() - t)}), flush=True)
