"""The findings engine names each planted pathology, with this run's numbers, and nothing on a healthy run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncf.diagnosis.findings import Finding, analyse, lower_is_better, primary_metric


def hist(train, train_eval, val, val_mae=None, lr=1e-3) -> pd.DataFrame:
    n = len(train)
    df = pd.DataFrame({"epoch": np.arange(1, n + 1), "train_loss": train, "train_loss_eval": train_eval,
                       "val_loss": val, "lr": [lr] * n, "seconds": [1.0] * n, "samples_per_s": [1e5] * n})
    if val_mae is not None:
        df["val_mae"] = val_mae
    return df


def healthy() -> pd.DataFrame:
    """Both curves fall and flatten; train (either measure) below val; small running-mean lag."""
    e = np.arange(10)
    train = 0.80 + 0.20 * np.exp(-0.5 * e)
    val = 0.86 + 0.16 * np.exp(-0.5 * e)
    return hist(train, train * 0.98, val, val_mae=val * 0.8)


def codes(findings: list[Finding]) -> list[str]:
    return [f.code for f in findings]


def by_code(findings: list[Finding], code: str) -> Finding:
    [f] = [f for f in findings if f.code == code]
    return f


def test_healthy_history_has_no_finding():
    base = {"bias": {"mae": 0.80}, "global_mean": {"mae": 0.95}}  # model best val_mae 0.69: clearly better
    mode = {"train_mode": 0.801, "eval_mode": 0.800, "batches": 4}
    cold = {"users": 0, "items": 1, "rows": 1, "n_valid": 1000}
    assert analyse(healthy(), baselines=base, mode_effect=mode, cold=cold, audit={"method": "loo", "pairs_train_test": 0, "tied_users": 3}) == []
    assert analyse(healthy()) == []
    assert analyse(pd.DataFrame()) == []


def test_running_mean_gap_explains_val_below_train_with_measured_sizes():
    # The seed replay: epoch 1 running loss 0.210, same weights in eval mode 0.133, val 0.155.
    h = hist([0.210, 0.120, 0.100, 0.090], [0.133, 0.110, 0.095, 0.088], [0.155, 0.150, 0.149, 0.1485])
    mode = {"train_mode": 0.138, "eval_mode": 0.133, "batches": 8}
    f = analyse(h, mode_effect=mode)
    assert {"running-mean-gap", "val-below-train"} <= set(codes(f))
    vbt = by_code(f, "val-below-train")
    assert vbt.severity == "info" and "explained" in vbt.title
    assert vbt.numbers["running_part"] == pytest.approx(0.077)
    assert vbt.numbers["mode_part"] == pytest.approx(0.005)
    assert "0.077" in vbt.meaning and "+0.0050" in vbt.meaning and "0.072" in vbt.meaning
    gap = by_code(f, "running-mean-gap")
    assert gap.numbers["epoch"] == 1 and gap.numbers["gap"] == pytest.approx(0.077)
    assert "0.210" in gap.evidence and "0.133" in gap.evidence
    # the dropout effect is 4% of the eval loss: below MODE_EFFECT_REL, so no separate dropout finding
    assert "dropout-effect" not in codes(f)


def test_no_dropout_model_attributes_the_whole_gap_to_the_running_mean():
    h = hist([0.210, 0.120, 0.100, 0.090], [0.133, 0.110, 0.095, 0.088], [0.155, 0.150, 0.149, 0.1485])
    mode = {"train_mode": 0.1, "eval_mode": 0.1, "batches": 8, "dropout": 0.0, "batch_norm": False}
    f = analyse(h, mode_effect=mode)
    assert "All of it is the running mean: the model has no dropout or batch-norm" in by_code(f, "running-mean-gap").evidence
    assert "(and dropout)" not in by_code(f, "val-below-train").meaning


def test_val_below_train_not_explained_when_eval_train_also_above_val():
    h = hist([0.30, 0.28, 0.27], [0.29, 0.275, 0.268], [0.20, 0.19, 0.185])
    f = by_code(analyse(h), "val-below-train")
    assert f.severity == "warning" and "even measured the same way" in f.title


def test_large_dropout_effect_is_named():
    f = analyse(healthy(), mode_effect={"train_mode": 0.90, "eval_mode": 0.80, "batches": 4})
    d = by_code(f, "dropout-effect")
    assert d.numbers["delta"] == pytest.approx(0.10)
    assert "+12%" in d.evidence


def test_overfitting_from_epoch_2():
    val = [0.153, 0.154, 0.156, 0.158, 0.159, 0.161]
    train_eval = [0.133, 0.10, 0.08, 0.065, 0.055, 0.050]
    f = by_code(analyse(hist(np.array(train_eval) + 0.01, train_eval, val)), "overfitting")
    assert f.numbers["best_epoch"] == 1 and f.numbers["onset_epoch"] == 2
    assert f.numbers["val_rise_rel"] == pytest.approx(0.161 / 0.153 - 1)
    assert "epoch 2" in f.title and "0.153" in f.evidence and "0.161" in f.evidence


def test_plateau():
    val = [0.500, 0.497, 0.496, 0.498, 0.497, 0.497]
    train = [0.48, 0.44, 0.41, 0.39, 0.37, 0.36]
    f = analyse(hist(train, train, val))
    p = by_code(f, "val-plateau")
    assert p.numbers["improve_rel"] == pytest.approx(0.004 / 0.5)
    assert "overfitting" not in codes(f)  # val rose by < 2% after its best


def test_divergence_nan_and_rising():
    nan = hist([1.0, 0.9, np.nan, np.nan], [0.95, 0.85, np.nan, np.nan], [1.0, 0.95, np.nan, np.nan], lr=0.5)
    f = analyse(nan)
    assert codes(f) == ["divergence"]
    assert f[0].numbers["epoch"] == 3 and "0.5" in f[0].evidence
    rising = hist([1.0, 0.8, 1.1, 1.6, 2.5], [0.9, 0.7, 1.0, 1.5, 2.4], [1.0, 0.85, 1.1, 1.6, 2.5], lr=0.1)
    d = by_code(analyse(rising), "divergence")
    assert d.numbers["epoch_min"] == 2 and d.numbers["last"] == pytest.approx(2.4)


def test_oscillation_and_no_progress():
    osc = [1.0, 0.80, 0.95, 0.78, 0.93, 0.77, 0.92]
    f = analyse(hist(osc, osc, np.array(osc) + 0.1))
    assert "oscillation" in codes(f)
    flat = [1.000, 0.998, 0.996, 0.995, 0.994]
    f = analyse(hist(flat, flat, np.array(flat) + 0.05, lr=1e-6))
    assert "no-progress" in codes(f) and "1e-06" in by_code(f, "no-progress").evidence
    assert "val-plateau" not in codes(f)  # both flat: one finding, about the learning rate


def test_no_better_than_bias_and_global_mean():
    h = healthy()
    h["val_mae"] = [0.160, 0.155, 0.153, 0.154, 0.155, 0.156, 0.157, 0.157, 0.158, 0.158]
    base = {"bias": {"mae": 0.147}, "global_mean": {"mae": 0.183}}
    f = analyse(h, baselines=base)
    b = by_code(f, "no-better-than-bias")
    assert b.severity == "problem" and b.numbers == {"model": 0.153, "baseline": 0.147}
    assert "0.153" in b.evidence and "0.147" in b.evidence and "0.183" in b.evidence
    # the best epoch is judged; the saved model's own score is quoted beside it
    f = analyse(h, baselines={**base, "model": {"mae": 0.158}})
    assert "its best epoch, 3; the saved model scores 0.158" in by_code(f, "no-better-than-bias").evidence
    f = analyse(h.drop(columns="val_mae"), baselines={**base, "model": {"mae": 0.140}}, metric="mae")
    assert not [c for c in codes(f) if c.startswith("no-better")]
    # worse than even the global mean: that is the finding
    f = analyse(h, baselines={"bias": {"mae": 0.12}, "global_mean": {"mae": 0.15}})
    assert [c for c in codes(f) if c.startswith("no-better")] == ["no-better-than-global-mean"]
    # ranking metrics are higher-is-better
    assert not lower_is_better("hr@10") and lower_is_better("rmse")
    r = healthy().drop(columns="val_mae")
    r["val_hr@10"] = np.linspace(0.3, 0.4, 10)
    assert primary_metric(r) == "hr@10"
    f = analyse(r, baselines={"ease": {"hr@10": 0.60}, "pop": {"hr@10": 0.45}, "model": {"hr@10": 0.4}})
    pop = by_code(f, "no-better-than-pop")  # the weakest baseline it loses to is the finding
    assert pop.numbers == {"model": pytest.approx(0.4), "baseline": 0.45} and "ease 0.600" in pop.evidence
    assert analyse(r, baselines={"pop": {"hr@10": 0.30}}) == []


def test_cold_and_leakage():
    f = analyse(healthy(), cold={"users": 3, "items": 40, "rows": 120, "n_valid": 2000},
                audit={"method": "random", "pairs_train_test": 5, "tied_users": 415,
                       "test_before_user_train": 900})
    c = by_code(f, "cold-validation")
    assert "120 of 2000" in c.evidence and "6.0%" in c.evidence
    leak = by_code(f, "leakage")
    assert leak.numbers == {"pairs_train_test": 5.0}  # time order does not matter in a random split
    assert codes(f)[0] == "leakage"  # problems sort first


def test_finding_serialises_and_prints():
    f = analyse(hist([0.21, 0.12, 0.1], [0.133, 0.11, 0.095], [0.155, 0.15, 0.149]))[0]
    d = f.to_dict()
    assert set(d) == {"code", "severity", "title", "evidence", "meaning", "try_next", "numbers"}
    assert f.as_text().startswith(f"[{f.severity}] {f.code}:")
