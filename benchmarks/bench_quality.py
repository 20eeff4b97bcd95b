"""Quality on MovieLens 100K, with exactly the settings `ncf train` uses (RunConfig defaults + --set overrides).

    python benchmarks/bench_quality.py [--part rating|ranking|all] [--folds 5] [--set model.key=value ...]

Rating: 5-fold cross-validation (ncf.split kfold, seed 0: the same folds for every model); each neural
model early-stops on a 5% random validation slice of its training folds; bias and global mean baselines.
Targets: MF RMSE <= 0.910, NeuMF RMSE <= 0.915 (Surprise SVD 0.934, SVD++ 0.919 on the same protocol).

Ranking: leave-one-out (row-order ties, the latest remaining item is validation), 99 sampled candidates
per test user (never a positive anywhere), plus full ranking over all unseen items. GMF, MLP, NeuMF with and
without pretraining, MF, EASE, popularity. Target: NeuMF HR@10 >= 0.68 (RecBole NeuMF: 0.660 / 0.385).
Writes benchmarks/results/quality.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from _common import ml100k_loo, save, table  # noqa: E402

RATING_MODELS = ("mf", "neumf")
RANKING_MODELS = ("gmf", "mlp", "neumf", "neumf+bce", "neumf+pretrain", "mf", "mf+bce")
# NeuMF's and MF's `ncf train` default is the sampled softmax (ncf.runconfig.TUNED_DEFAULTS); "+bce" is the
# estimator class's own BCE defaults (4 negatives, batch 4096; NeuMF lr 0.01 cosine over 6 epochs, MF lr 0.01 x 10)
SOFTMAX = {"loss": "softmax", "n_negatives": 20, "batch_size": 1024, "lr": 0.005, "epochs": 10, "lr_schedule": "none"}
BCE = {"defaults": "estimator", "refit": True}


def _overrides(pairs: list[str]) -> dict[str, dict[str, Any]]:
    """--set neumf.lr=0.002 --set mf.factors=64 -> {"neumf": {"lr": "0.002"}, "mf": {"factors": "64"}}."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        model, _, name = key.partition(".")
        out.setdefault(model, {})[name] = value
    return out


def estimator(task: str, name: str, extra: dict[str, Any]):
    """The estimator `ncf train --task TASK --model NAME` would build (plus overrides)."""
    from ncf.run import build_estimator
    from ncf.runconfig import RunConfig

    model, _, flag = name.partition("+")
    cfg = RunConfig.build(overrides={"task": task, "model": model, "pretrain": flag == "pretrain",
                                     **{"softmax": SOFTMAX, "bce": BCE}.get(flag, {}), **extra.get(name, {})})
    return build_estimator(cfg), cfg


def _refit(est, cfg, valid, train_valid):
    """ncf.run.refit_estimator on (valid, train + valid)."""
    from types import SimpleNamespace

    from ncf.run import refit_estimator

    split = SimpleNamespace(valid=valid, train_valid=lambda: train_valid)
    return refit_estimator(est, split, cfg, lambda _msg: None)[0]


def rating(n_folds: int, extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from ncf.data.load import load_data
    from ncf.evaluation.protocols import evaluate_rating
    from ncf.models import REGISTRY
    from ncf.split import split_data

    data = load_data("ml-100k")
    per: dict[str, list[dict[str, float]]] = {}
    params: dict[str, Any] = {}
    for fold in range(n_folds):
        part = split_data(data, "kfold", seed=0, k=n_folds, fold=fold)
        inner = split_data(part.train, "random", seed=fold, test_size=0.05, valid_size=0.0, stratify=True)
        for name in ("global_mean", "bias"):
            per.setdefault(name, []).append(evaluate_rating(REGISTRY[name]().fit(part.train), part.test))
        for name in RATING_MODELS:
            est, cfg = estimator("rating", name, extra)
            t = time.perf_counter()
            est.fit(inner.train, inner.test)
            hist, best = est.history_, est.best_epoch_
            if cfg.refit_enabled():  # as ncf train --refit: retrain on the whole training folds
                est = _refit(est, cfg, inner.test, part.train)
            m = evaluate_rating(est, part.test) | {"seconds": time.perf_counter() - t, "epochs": len(hist),
                                                   "best_epoch": best, "val_rmse": float(hist["val_rmse"].iloc[best - 1]),
                                                   "refit": cfg.refit_enabled()}
            per.setdefault(name, []).append(m)
            params[name] = est.get_params()
        print(f"  fold {fold + 1}/{n_folds}: " + ", ".join(f"{k} {v[-1]['rmse']:.4f}" for k, v in per.items()), flush=True)
    rows = []
    for name, runs in per.items():
        rmse = [r["rmse"] for r in runs]
        val = [r["val_rmse"] for r in runs if "val_rmse" in r]
        rows.append({"model": name, "val_rmse": statistics.mean(val) if val else None, "rmse": statistics.mean(rmse), "rmse_sd": statistics.stdev(rmse) if len(rmse) > 1 else 0.0,
                     "mae": statistics.mean(r["mae"] for r in runs),
                     "seconds/fold": statistics.mean(r.get("seconds", 0.0) for r in runs) or None,
                     "target": {"mf": "<= 0.910", "neumf": "<= 0.915"}.get(name, "")})
    print(f"\nrating, ml-100k, {n_folds}-fold CV (same folds for all):")
    print(table(rows, ["model", "val_rmse", "rmse", "rmse_sd", "mae", "seconds/fold", "target"]))
    return {"folds": n_folds, "per_fold": per, "summary": rows, "params": params}


def ranking(extra: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from ncf.evaluation.protocols import evaluate_full, evaluate_sampled
    from ncf.models import REGISTRY

    data, split, cands = ml100k_loo()
    seen = split.train_valid().csr()
    rows, params = [], {}

    def score(name: str, est, seconds: float, note: str = "") -> None:
        s = evaluate_sampled(est, split.test, cands, ks=(10,))
        f = evaluate_full(est, split.test, seen, ks=(10,))
        rows.append({"model": name, "hr@10": s["hr@10"], "ndcg@10": s["ndcg@10"], "full_hr@10": f["hr@10"],
                     "full_ndcg@10": f["ndcg@10"], "seconds": seconds, "note": note})
        print(f"  {name}: sampled HR@10 {s['hr@10']:.4f} NDCG@10 {s['ndcg@10']:.4f}; full HR@10 {f['hr@10']:.4f} "
              f"({seconds:.0f}s)", flush=True)

    for name in RANKING_MODELS:
        est, cfg = estimator("ranking", name, extra)
        t = time.perf_counter()
        est.fit(split.train, split.valid)
        params[name] = est.get_params()
        best = est.best_epoch_
        note = f"best epoch {best} of {len(est.history_)}, val HR@10 {est.history_['val_hr@10'].iloc[best - 1]:.4f}"
        if cfg.refit_enabled():  # ncf train's ranking default: retrain on train + validation for `best` epochs
            est = _refit(est, cfg, split.valid, split.train_valid())
            note += "; refit on train + valid"
        score(name, est, time.perf_counter() - t, note)
    for name in ("ease", "pop"):
        t = time.perf_counter()
        est = REGISTRY[name]().fit(split.train_valid())
        score(name, est, time.perf_counter() - t, "fit on train + valid")
    gap = _difficulty_gap(data, split, cands)
    print("\nranking, ml-100k leave-one-out (row-order ties), 99 sampled negatives / full ranking:")
    print(table(rows, ["model", "hr@10", "ndcg@10", "full_hr@10", "full_ndcg@10", "seconds", "note"]))
    print("reference: RecBole 1.2.1 NeuMF 0.660 / 0.385 (PROTOCOLS.md); target NeuMF HR@10 >= 0.68")
    print("\nthe test item (each user's last) is harder than the validation item (the one before), same models:")
    print(table(gap, ["model", "valid_hr@10", "test_hr@10", "drop"]))
    return {"rows": rows, "params": params, "valid_vs_test": gap}


def _difficulty_gap(data, split, cands) -> list[dict[str, Any]]:
    """HR@10 of the baselines on the validation item (fit on train) vs the test item (fit on train + valid)."""
    from ncf.evaluation.protocols import evaluate_sampled
    from ncf.models import REGISTRY
    from ncf.sampling import eval_candidates, positive_keys

    vc = eval_candidates(split.valid, positive_keys(data.csr()), n=99, seed=1)
    rows = []
    for name in ("pop", "itemknn", "ease"):
        v = evaluate_sampled(REGISTRY[name]().fit(split.train), split.valid, vc)["hr@10"]
        t = evaluate_sampled(REGISTRY[name]().fit(split.train_valid()), split.test, cands)["hr@10"]
        rows.append({"model": name, "valid_hr@10": v, "test_hr@10": t, "drop": v - t})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("rating", "ranking", "all"), default="all")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--set", action="append", default=[], metavar="MODEL.KEY=VALUE",
                    help="override a RunConfig key for one model, e.g. neumf.lr=0.002")
    args = ap.parse_args()
    extra = _overrides(args.set)
    out: dict[str, Any] = {"overrides": extra}
    if args.part in ("rating", "all"):
        out["rating"] = rating(args.folds, extra)
    if args.part in ("ranking", "all"):
        out["ranking"] = ranking(extra)
    print(f"wrote {save('quality' if args.part == 'all' else f'quality_{args.part}', out)}")


if __name__ == "__main__":
    main()
