"""Training speed of our NeuMF vs a plain PyTorch tutorial loop, and wall time to test HR@10 >= 0.66.

    python benchmarks/bench_speed.py [--reps 3] [--target 0.66] [--max-epochs 30]

1. Throughput (samples/s, training only), measured in this process, interleaved so load changes hit both:
   - "tutorial": DataLoader(TensorDataset(users, items, labels), batch_size=256, shuffle=True), torch.optim.Adam,
     BCEWithLogitsLoss, the same NeuMF module (ncf.models.modules) on the same ml-100k LOO training data with
     4 negatives per positive (drawn before timing: generous to the tutorial);
   - ours at the default settings of `ncf train` (sampled softmax, 1024 positives x (1 + 20) items per
     batch; whole epochs, negative sampling included in the time);
   - ours with the estimator's BCE setup (batch 4096, 4 negatives) and at the tutorial's batch size and loss
     (BCE, batch 256).
   A sample is one scored (user, item) pair with its loss term: a softmax row of a positive and its 20
   negatives counts 21. All use the same number of torch threads (--threads, default 1: our default here).
2. Time to quality: the `ncf train` defaults on ml-100k leave-one-out, test HR@10 with 99 sampled
   candidates after every epoch (outside the clock); wall time = training + per-epoch validation
   (history_.seconds) until test HR@10 first reaches the target. Then, as `ncf train` does for ranking, a
   refit on train + validation for the validation-chosen epoch count (--no-refit skips it); its time to target
   is the whole early-stopped run plus the refit epochs until test HR@10 reaches the target.
Writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, epoch_hook, ml100k_loo, save, table  # noqa: E402


def training_arrays(train, n_negatives: int, seed: int = 0):
    """Positives + n_negatives uniform negatives per positive (never a training positive), as tensors."""
    from ncf.sampling import positive_keys, sample_negatives

    rng = np.random.default_rng(seed)
    keys = positive_keys(train.csr())
    neg = sample_negatives(train.user_ids, train.n_items, keys, n_negatives, rng)
    users = np.concatenate([train.user_ids, np.repeat(train.user_ids, n_negatives)]).astype(np.int64)
    items = np.concatenate([train.item_ids, neg.reshape(-1)]).astype(np.int64)
    labels = np.concatenate([np.ones(len(train)), np.zeros(neg.size)]).astype(np.float32)
    return torch.from_numpy(users), torch.from_numpy(items), torch.from_numpy(labels)


def same_module(est, n_users: int, n_items: int):
    """The module our estimator would train, freshly initialised."""
    from ncf.models.modules import build_module

    est.n_users_, est.n_items_ = n_users, n_items
    return build_module(est.kind, n_users, n_items, biases=est._biases(), output_activation=est.output_activation,
                        **est._arch())


def tutorial_throughput(est, train, tensors, batch_size: int = 256, max_samples: int = 150_000) -> float:
    """Samples/s of the textbook loop (DataLoader over a TensorDataset)."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    module = same_module(est, train.n_users, train.n_items)
    opt = torch.optim.Adam(module.parameters(), lr=est.lr)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    loader = DataLoader(TensorDataset(*tensors), batch_size=batch_size, shuffle=True)
    module.train()
    n = 0
    t = time.perf_counter()
    for u, i, y in loader:
        opt.zero_grad()
        loss = loss_fn(module(u, i), y)
        loss.backward()
        opt.step()
        n += len(u)
        if n >= max_samples:
            break
    return n / (time.perf_counter() - t)


def train_defaults() -> dict:
    """The NeuMF hyperparameters `ncf train` uses for top-K (ncf.runconfig.TUNED_DEFAULTS over the class's)."""
    from ncf.run import build_estimator
    from ncf.runconfig import RunConfig

    params = build_estimator(RunConfig.build(overrides={"task": "ranking", "model": "neumf"})).get_params()
    return {k: v for k, v in params.items() if k not in ("verbose", "checkpoint_dir", "resume", "threads")}


def our_throughput(train, **params) -> float:
    """Scored (user, item) pairs per second of NeuMFEstimator's training loop (one epoch, no validation)."""
    from ncf.models.ncf_estimator import NeuMFEstimator

    est = NeuMFEstimator(**(params | dict(epochs=1, early_stopping=None, threads=torch.get_num_threads()))).fit(train)
    return float(est.history_["samples_per_s"].median())  # pairs/s: history counts 1 + k per softmax row


def time_to_target(split, cands, target: float, max_epochs: int | None = None, refit: bool = True,
                   **params) -> dict:
    """Train NeuMF (defaults + params) and record test HR@10 after every epoch; time = training + validation.

    Training runs to its own end (early stopping / epochs) so that the validation-chosen best epoch is known too.
    refit: then retrain on train + validation for the best epoch count (ncf train's ranking default), test HR@10
    after each of its epochs; its time to target counts the whole first run plus the refit epochs so far.
    """
    from ncf.models.ncf_estimator import NeuMFEstimator

    params = train_defaults() | params
    est = NeuMFEstimator(**(params | (dict(epochs=max_epochs) if max_epochs else {})))
    curve = _test_curve(est, split.test, cands, split.train, split.valid)
    out = _curve_summary(est, curve, target)
    if refit:  # the ranking default of `ncf train`: retrain on train + validation for the best epoch count
        t_first = float(np.sum([c["seconds"] for c in curve]))
        ref = NeuMFEstimator(**(params | {"epochs": int(est.best_epoch_), "early_stopping": None, "patience": None}))
        rcurve = _test_curve(ref, split.test, cands, split.train_valid())
        rcum = t_first + np.cumsum([c["seconds"] for c in rcurve])
        hit = next((k for k, c in enumerate(rcurve) if c["test_hr@10"] >= target), None)
        out["refit"] = {"curve": rcurve, "first_run_seconds": t_first, "seconds": float(rcum[-1] - t_first),
                        "test_hr@10": rcurve[-1]["test_hr@10"], "test_ndcg@10": rcurve[-1]["test_ndcg@10"],
                        "reached": hit is not None,
                        "seconds_to_target": None if hit is None else float(rcum[hit]),
                        "total_seconds": float(rcum[-1])}
    return out


def _test_curve(est, test, cands, train, valid=None) -> list[dict]:
    """Fit est; after every epoch (outside its clock) record its seconds, test HR/NDCG@10 and val HR@10."""
    from ncf.evaluation.protocols import evaluate_sampled

    curve: list[dict] = []

    def hook(trainer):
        est.module_ = trainer.module
        m = evaluate_sampled(est, test, cands, ks=(10,))
        row = trainer.history[-1]
        curve.append({"epoch": int(row["epoch"]), "seconds": float(row["seconds"]), "test_hr@10": m["hr@10"],
                      "test_ndcg@10": m["ndcg@10"], "val_hr@10": row.get("val_hr@10")})

    with epoch_hook(hook):
        est.fit(train, valid)
    return curve


def _curve_summary(est, curve: list[dict], target: float) -> dict:
    cum = np.cumsum([c["seconds"] for c in curve])
    hit = next((k for k, c in enumerate(curve) if c["test_hr@10"] >= target), None)
    return {"params": {k: v for k, v in est.get_params().items() if k not in ("verbose", "checkpoint_dir", "resume")},
            "curve": curve, "reached": hit is not None,
            "epochs_to_target": None if hit is None else hit + 1,
            "seconds_to_target": None if hit is None else float(cum[hit]),
            "best_test_hr@10": max(c["test_hr@10"] for c in curve),
            "best_epoch": int(est.best_epoch_), "seconds_to_best_epoch": float(cum[int(est.best_epoch_) - 1]),
            "test_hr@10_at_best_epoch": curve[int(est.best_epoch_) - 1]["test_hr@10"],
            "seconds_per_epoch": float(np.mean([c["seconds"] for c in curve]))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--target", type=float, default=0.66)
    ap.add_argument("--max-epochs", type=int, default=None, help="override the default number of epochs")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--no-refit", action="store_true", help="time to target without the refit on train + validation")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both loops (ours defaults to 1)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ncf.models.ncf_estimator import NeuMFEstimator

    data, split, cands = ml100k_loo()
    defaults = NeuMFEstimator(**train_defaults())
    bce = {k: v for k, v in NeuMFEstimator().get_params().items() if k in train_defaults()}  # the class's BCE setup
    print(f"ml-100k LOO: train {len(split.train):,}, test {len(split.test):,}; torch threads {torch.get_num_threads()}")
    results: dict = {"defaults": {k: v for k, v in defaults.get_params().items()}}
    previous = RESULTS / "speed.json"
    if args.skip_throughput and previous.exists():  # keep the last throughput measurement
        results["throughput"] = json.loads(previous.read_text()).get("throughput")

    if not args.skip_throughput:
        tensors = training_arrays(split.train, 4)
        small_train = split.train.subset(np.arange(len(split.train) // 4))  # ours at batch 256: a quarter epoch
        runs: dict[str, list[float]] = {"tutorial_256": [], "ours_default": [], "ours_bce_4096": [], "ours_256": []}
        for rep in range(args.reps):
            runs["tutorial_256"].append(tutorial_throughput(defaults, split.train, tensors))
            runs["ours_default"].append(our_throughput(split.train, **train_defaults()))
            runs["ours_bce_4096"].append(our_throughput(split.train, **bce))
            runs["ours_256"].append(our_throughput(small_train, **(bce | {"batch_size": 256})))
            print(f"  rep {rep + 1}: " + ", ".join(f"{k} {v[-1] / 1e3:,.0f}k/s" for k, v in runs.items()))
        med = {k: statistics.median(v) for k, v in runs.items()}
        results["throughput"] = {"runs": runs, "median": med,
                                 "ratio_default": med["ours_default"] / med["tutorial_256"],
                                 "ratio_bce_4096": med["ours_bce_4096"] / med["tutorial_256"],
                                 "ratio_equal_batch": med["ours_256"] / med["tutorial_256"]}
        rows = [{"loop": "PyTorch tutorial (DataLoader, batch 256)", "samples/s": med["tutorial_256"], "ratio": 1.0},
                {"loop": f"ncf NeuMF, ncf train defaults (softmax, batch {defaults.batch_size} x 21)",
                 "samples/s": med["ours_default"], "ratio": results["throughput"]["ratio_default"]},
                {"loop": "ncf NeuMF, BCE, batch 4096", "samples/s": med["ours_bce_4096"],
                 "ratio": results["throughput"]["ratio_bce_4096"]},
                {"loop": "ncf NeuMF, BCE, batch 256", "samples/s": med["ours_256"],
                 "ratio": results["throughput"]["ratio_equal_batch"]}]
        print()
        print(table(rows))

    print(f"\ntime to test HR@10 >= {args.target} (NeuMF defaults, ml-100k LOO, 99 sampled candidates):")
    ttt = time_to_target(split, cands, args.target, args.max_epochs, refit=not args.no_refit)
    results["time_to_target"] = {"target": args.target, **ttt}
    print(table(ttt["curve"], ["epoch", "seconds", "val_hr@10", "test_hr@10", "test_ndcg@10"]))
    if ttt["reached"]:
        print(f"reached at epoch {ttt['epochs_to_target']} after {ttt['seconds_to_target']:.1f} s "
              f"(training + per-epoch validation)")
    else:
        print(f"NOT reached in {len(ttt['curve'])} epochs (best {ttt['best_test_hr@10']:.4f})")
    print(f"validation-chosen best epoch {ttt['best_epoch']} (test HR@10 {ttt['test_hr@10_at_best_epoch']:.4f}) "
          f"after {ttt['seconds_to_best_epoch']:.1f} s")
    if "refit" in ttt:
        r = ttt["refit"]
        print(f"\nrefit on train + validation for {ttt['best_epoch']} epochs (ncf train's ranking default):")
        print(table(r["curve"], ["epoch", "seconds", "test_hr@10", "test_ndcg@10"]))
        when = (f"reached after {r['seconds_to_target']:.1f} s (whole early-stopped run + refit epochs)"
                if r["reached"] else "not reached")
        print(f"refit model: test HR@10 {r['test_hr@10']:.4f} NDCG@10 {r['test_ndcg@10']:.4f}; "
              f"total {r['total_seconds']:.1f} s; target {when}")
    print(f"wrote {save('speed', results)}")


if __name__ == "__main__":
    main()
