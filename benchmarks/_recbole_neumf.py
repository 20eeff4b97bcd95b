"""Run RecBole 1.2.1 NeuMF on ml-100k leave-one-out; print one JSON line with its timings and test metrics.

Runs INSIDE the separate RecBole venv (see bench_recbole.py); imports nothing from ncf.
Usage: python _recbole_neumf.py OUT.json [--epochs N]
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

# RecBole 1.2.1 reloads its own checkpoints with torch.load(path); torch >= 2.6 defaults to weights_only=True.
_orig_load = torch.load


def _load(*args, **kwargs):
    kwargs.setdefault("weights_only", False)
    return _orig_load(*args, **kwargs)


torch.load = _load

import recbole  # noqa: E402
from recbole.quick_start import run_recbole  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402

EPOCH_LOG: list[dict] = []
_T0: list[float] = []

_orig_train_epoch = Trainer._train_epoch
_orig_valid_epoch = Trainer._valid_epoch


def _train_epoch(self, *args, **kwargs):
    if not _T0:
        _T0.append(time.perf_counter())
    t = time.perf_counter()
    out = _orig_train_epoch(self, *args, **kwargs)
    EPOCH_LOG.append({"epoch": len(EPOCH_LOG) + 1, "train_s": time.perf_counter() - t})
    return out


def _valid_epoch(self, *args, **kwargs):
    t = time.perf_counter()
    score, result = _orig_valid_epoch(self, *args, **kwargs)
    if EPOCH_LOG:
        EPOCH_LOG[-1].update(valid_s=time.perf_counter() - t, valid_score=float(score),
                             elapsed_s=time.perf_counter() - _T0[0],
                             valid={k: float(v) for k, v in result.items()})
    return score, result


Trainer._train_epoch = _train_epoch
Trainer._valid_epoch = _valid_epoch


def main() -> None:
    out = Path(sys.argv[1])
    epochs = int(sys.argv[sys.argv.index("--epochs") + 1]) if "--epochs" in sys.argv else 300
    data_path = Path(recbole.__file__).parent / "dataset_example"
    tmp = tempfile.mkdtemp(prefix="recbole-")
    config = {
        "data_path": str(data_path),
        "checkpoint_dir": tmp,
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni100"},
        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 4},
        "metrics": ["Hit", "NDCG"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": epochs,
        "stopping_step": 10,
        "train_batch_size": 2048,
        "eval_batch_size": 409600,
        "show_progress": False,
        "device": "cpu",
        "use_gpu": False,
        "gpu_id": "",
        "seed": 2020,
        "reproducibility": True,
        "save_dataset": False,
        "save_dataloaders": False,
    }
    t = time.perf_counter()
    res = run_recbole(model="NeuMF", dataset="ml-100k", config_dict=config)
    total = time.perf_counter() - t
    best = max(EPOCH_LOG, key=lambda r: r.get("valid_score", float("-inf")))
    report = {
        "recbole": recbole.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
        "model": "NeuMF (RecBole defaults: mf 64, mlp 64, hidden [128,64], dropout 0.1, batch 2048, 4 neg)",
        "protocol": "ml-100k LOO (RecBole order TO, stable ties), 100 sampled negatives",
        "epochs_run": len(EPOCH_LOG), "best_epoch": best["epoch"],
        "time_to_best_s": best.get("elapsed_s"),
        "train_s_per_epoch": sum(r["train_s"] for r in EPOCH_LOG) / len(EPOCH_LOG),
        "valid_s_per_epoch": sum(r.get("valid_s", 0.0) for r in EPOCH_LOG) / len(EPOCH_LOG),
        "total_s": total,
        "test": {k: float(v) for k, v in res["test_result"].items()},
        "best_valid": {k: float(v) for k, v in res["best_valid_result"].items()},
        "epochs": EPOCH_LOG,
    }
    out.write_text(json.dumps(report, indent=1))
    print(json.dumps({k: v for k, v in report.items() if k != "epochs"}))


if __name__ == "__main__":
    main()
