"""Measurements (train vs eval mode, baselines, cold rows), the HTML report, and `ncf diagnose`."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ncf.cli import main
from ncf.data import Interactions
from ncf.diagnosis.measure import cold_counts, mode_effect, validation_scores
from ncf.diagnosis.report import diagnose_run, format_text, write_report
from ncf.models.ncf_estimator import NeuMFEstimator
from ncf.split import split_data
from tests.conftest import make_lowrank


@pytest.fixture(scope="module")
def parts():
    s = split_data(make_lowrank(n_users=120, n_items=90, density=0.2), "random", seed=0, test_size=0.2, valid_size=0.2)
    return s.train, s.valid


def fit(train, valid, **kw) -> NeuMFEstimator:
    params = dict(factors=8, layers=(16, 8), task="rating", epochs=2, batch_size=128, lr=0.01, threads=1,
                  target_scaling="minmax", loss="mae")
    return NeuMFEstimator(**(params | kw)).fit(train, valid)


# --------------------------------------------------------------------------- measure
@pytest.mark.slow
def test_mode_effect_is_zero_without_dropout_and_positive_with_it(parts):
    train, valid = parts
    plain = fit(train, valid)
    m = mode_effect(plain, train)
    assert m["train_mode"] == pytest.approx(m["eval_mode"], abs=1e-7)  # no dropout/BN: modes identical
    noisy = fit(train, valid, dropout=0.5, loss="mse")
    m = mode_effect(noisy, train)
    assert m["train_mode"] > m["eval_mode"] and m["delta"] == pytest.approx(m["train_mode"] - m["eval_mode"])
    assert m["batch_size"] == 128 and m["rows"] == len(train) and m["dropout"] == 0.5 and m["loss"] == "mse"
    assert mode_effect(noisy, train) == m  # fixed seed: same dropout masks
    bn = fit(train, valid, dropout=0.2, batch_norm=True)
    before = {k: v.clone() for k, v in bn.module_.state_dict().items()}
    mode_effect(bn, train)
    after = bn.module_.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # batch-norm running stats untouched
    assert not bn.module_.training


def test_cold_counts_hand_computed():
    data = Interactions.from_raw(np.array([1, 1, 2, 2, 3, 3]), np.array([10, 11, 10, 12, 13, 11]),
                                 np.ones(6, dtype=np.float32))
    train, valid = data.subset(np.array([0, 1, 2])), data.subset(np.array([3, 4, 5]))
    # valid rows: (2,12) cold item; (3,13) cold user + item; (3,11) cold user
    assert cold_counts(train, valid) == {"users": 1, "items": 2, "rows": 3, "n_valid": 3}


def test_validation_scores_fit_baselines_on_train_only(parts):
    train, valid = parts
    scores = validation_scores(fit(train, valid), train, valid)
    assert set(scores) == {"model", "bias", "global_mean"}
    mean = float(train.ratings.mean())
    # the global mean predicts the training mean everywhere: its MAE is computable by hand
    assert scores["global_mean"]["mae"] == pytest.approx(np.abs(valid.ratings - mean).mean(), rel=1e-5)
    assert scores["bias"]["rmse"] < scores["global_mean"]["rmse"]


# --------------------------------------------------------------------------- report from files
def seed_like_run(tmp_path: Path) -> Path:
    """A run directory with the seed's curves (files only, no model)."""
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"epoch": [1, 2, 3, 4], "train_loss": [0.210, 0.12, 0.09, 0.07],
                  "train_loss_eval": [0.133, 0.10, 0.08, 0.06], "val_loss": [0.155, 0.153, 0.157, 0.161],
                  "val_mae": [0.70, 0.69, 0.71, 0.73], "val_rmse": [0.9, 0.89, 0.91, 0.93], "lr": 1e-3,
                  "seconds": 1.0, "samples_per_s": 1e5}).to_csv(run / "history.csv", index=False)
    (run / "config.toml").write_text('model = "neumf"\ntask = "rating"\nloss = "mae"\ndata = "ml-100k"\n')
    (run / "metrics.json").write_text(json.dumps({"neumf": {"rating": {"rmse": 0.95, "mae": 0.75}},
                                                  "bias": {"rating": {"rmse": 0.94, "mae": 0.74}}}))
    (run / "data.json").write_text(json.dumps({"name": "ml-100k", "n_users": 943}))
    (run / "audit.json").write_text(json.dumps({"method": "random", "pairs_train_test": 0, "cold_items_valid": 3}))
    return run


MEASURED = {"mode_effect": {"train_mode": 0.138, "eval_mode": 0.133, "delta": 0.005, "batches": 8,
                            "batch_size": 32, "rows": 256, "loss": "mae"},
            "baselines": {"model": {"mae": 0.73, "rmse": 0.93}, "bias": {"mae": 0.66, "rmse": 0.86},
                          "global_mean": {"mae": 0.82, "rmse": 1.03}},
            "cold": {"users": 0, "items": 3, "rows": 4, "n_valid": 2000}}


def test_report_is_self_contained_and_explains(tmp_path):
    run = seed_like_run(tmp_path)
    path = write_report(run, MEASURED)
    page = path.read_text()
    assert path == run / "report.html"
    png = base64.b64decode(re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page).group(1))
    assert png[:4] == b"\x89PNG" and png == (run / "curves.png").read_bytes()
    assert not re.search(r"(src|href)=['\"]?https?:", page)  # nothing fetched from outside
    for text in ("val-below-train", "running-mean-gap", "no-better-than-bias", "overfitting",
                 "0.210", "0.133", "+0.0050", "0.690", "0.660", "ml-100k", "pairs_train_test"):
        assert text in page, text
    saved = json.loads((run / "diagnosis.json").read_text())
    assert saved["metric"] == "mae" and saved["measurements"] == MEASURED
    assert {f["code"] for f in saved["findings"]} >= {"val-below-train", "no-better-than-bias"}
    # a rebuild reuses the cached measurements (no model or data needed)
    d = diagnose_run(run)
    assert d.measurements == MEASURED and "best validation epoch 2" in d.title
    text = format_text(d)
    assert "model (saved weights) 0.7300, bias 0.6600, global_mean 0.8200" in text
    assert not list(run.glob(".*tmp"))


def test_healthy_run_reports_no_finding(tmp_path):
    run = seed_like_run(tmp_path)
    e = np.arange(8)
    pd.DataFrame({"epoch": e + 1, "train_loss": 0.8 + 0.2 * np.exp(-e), "train_loss_eval": 0.79 + 0.2 * np.exp(-e),
                  "val_loss": 0.86 + 0.16 * np.exp(-e), "val_mae": 0.7 + 0.1 * np.exp(-e)}).to_csv(
        run / "history.csv", index=False)
    write_report(run, {"baselines": {"bias": {"mae": 0.75}, "global_mean": {"mae": 0.9}}})
    assert diagnose_run(run).findings == []
    assert "no finding" in (run / "report.html").read_text()


# --------------------------------------------------------------------------- end to end, CLI
@pytest.mark.slow
def test_train_writes_report_and_diagnose_prints_findings(tmp_path, capsys):
    from tests.test_run import write_csv

    csv = write_csv(tmp_path / "ratings.csv")
    run = tmp_path / "seed"
    main(["train", "--preset", "keras-seed", "--data", str(csv), "--epochs", "3", "--batch-size", "64",
          "--factors", "8", "--layers", "16,8", "--threads", "1", "--out", str(run), "--quiet"])
    for name in ("report.html", "curves.png", "diagnosis.json"):
        assert (run / name).is_file(), name
    meas = json.loads((run / "diagnosis.json").read_text())["measurements"]
    assert set(meas) == {"mode_effect", "baselines", "cold"}
    assert meas["mode_effect"]["batch_size"] == 64 and meas["mode_effect"]["dropout"] == 0.2
    capsys.readouterr()
    main(["diagnose", str(run), "--remeasure"])
    out = capsys.readouterr().out
    assert "validation mae (lower is better): model (saved weights)" in out
    assert f"report: {run / 'report.html'}" in out
    main(["diagnose", str(run), "--json"])
    assert json.loads(capsys.readouterr().out)["measurements"] == json.loads((run / "diagnosis.json").read_text())["measurements"]


def test_diagnose_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "not a run directory" in err and len(err.splitlines()) == 1


def test_report_is_written_even_when_measuring_fails(tmp_path):
    run = seed_like_run(tmp_path)
    (run / "model").mkdir()  # a bundle folder that cannot be loaded
    path = write_report(run)
    d = diagnose_run(run, measure=False)
    assert path.is_file() and d.notes and d.notes[0].startswith("measurements skipped")
    assert "measurements skipped" in path.read_text()
    assert {f.code for f in d.findings} >= {"val-below-train", "overfitting"}  # from the history alone
