"""Nested check of refit for rating: on folds F, early-stop on a 5% slice of the inner train, then compare
(a) that model and (b) a refit on the whole inner train, both on the inner 5% validation slice (never test)."""
import json, statistics, sys, time
from types import SimpleNamespace
from ncf.data.load import load_data
from ncf.evaluation.protocols import evaluate_rating
from ncf.run import build_estimator, refit_estimator
from ncf.runconfig import RunConfig
from ncf.split import split_data

model = sys.argv[1]
folds = [int(f) for f in sys.argv[2].split(",")]
params = dict(p.partition("=")[::2] for p in sys.argv[3:])
data = load_data("ml-100k")
a, b = [], []
for fold in folds:
    part = split_data(data, "kfold", seed=0, k=5, fold=fold)
    inner = split_data(part.train, "random", seed=fold, test_size=0.05, valid_size=0.0, stratify=True)
    inner2 = split_data(inner.train, "random", seed=100 + fold, test_size=0.05, valid_size=0.0, stratify=True)
    cfg = RunConfig.build(overrides={"task": "rating", "model": model, **params})
    est = build_estimator(cfg).fit(inner2.train, inner2.test)
    a.append(evaluate_rating(est, inner.test)["rmse"])
    ref = refit_estimator(est, SimpleNamespace(valid=inner2.test, train_valid=lambda: inner.train), cfg, lambda m: None)[0]
    b.append(evaluate_rating(ref, inner.test)["rmse"])
print("NESTED " + json.dumps({"model": model, "params": params, "folds": folds, "val_rmse": round(statistics.mean(a), 4),
      "val_rmse_refit": round(statistics.mean(b), 4)}), flush=True)
