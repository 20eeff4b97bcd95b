"""`ncf tune`: the space file (one-line errors), the study, and the best.toml round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ncf.errors import ConfigError
from ncf.tuning import Param, parse_space, read_space
from tests.conftest import make_lowrank


def _space(**space) -> dict:
    return {"model": "gmf", "space": space}


@pytest.mark.parametrize("space,message", [
    ({"lrr": {"low": 0.001, "high": 0.1}}, "unknown hyperparameter 'lrr' in [space] of space; did you mean 'lr'?"),
    ({"seed": {"choices": [1, 2]}}, "'seed' in [space] of space is a run setting"),
    ({"lr": {"lo": 0.001, "high": 0.1}}, "unknown option 'lo' for 'lr'"),
    ({"lr": {"low": 0.1, "high": 0.001}}, "low must be below high for 'lr'"),
    ({"lr": {"low": 0.0, "high": 0.1, "log": True}}, "log scale for 'lr' in [space] of space needs low > 0"),
    ({"factors": {"choices": []}}, "choices for 'factors' in [space] of space must be a non-empty list"),
    ({"factors": {"choices": [8], "low": 1, "high": 2}}, "mixes choices with range options"),
    ({"factors": {"low": 1.5, "high": 8}}, "'factors' is an integer but its range"),
    ({"batch_norm": {"low": 0, "high": 1}}, "'batch_norm' in [space] of space is not numeric"),
    ({"factors": {"choices": [8, 0]}}, "value 0 of 'factors' in [space] of space is invalid"),
    ({"lr": "fast"}, "'lr' in [space] of space must be a table or a list"),
])
def test_bad_space_keys_are_one_line_errors(space: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_space(_space(**space))
    text = err.value.one_line()
    assert message in text and "\n" not in text


def test_space_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no \\[space\\] table"):
        parse_space({"model": "gmf"})
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        parse_space({"epoch": 3, "space": {"lr": [0.01]}})
    with pytest.raises(ConfigError, match="unknown key 'metrc' in \\[tune\\]"):
        parse_space({"space": {"lr": [0.01]}, "tune": {"metrc": "val_loss"}})
    with pytest.raises(ConfigError, match="'lr' is both a fixed key"):
        parse_space({"lr": 0.01, "space": {"lr": [0.01]}})
    bad = tmp_path / "bad.toml"
    bad.write_text("[space\nlr = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        read_space(bad)


def test_space_types_and_membership() -> None:
    spec = parse_space(_space(lr={"low": 1e-4, "high": 1e-2, "log": True}, factors={"choices": [8, 16, 32, 64]},
                              n_negatives={"low": 2, "high": 8, "step": 2}, layers=[[64, 32], [32, 16]]))
    lr, factors, neg, layers = (spec.space[k] for k in ("lr", "factors", "n_negatives", "layers"))
    assert (lr.kind, lr.log, factors.kind, neg.kind, layers.kind) == ("float", True, "categorical", "int", "categorical")
    assert lr.contains(0.005) and not lr.contains(0.05)
    assert factors.contains(16) and not factors.contains(12)
    assert neg.contains(4) and not neg.contains(5) and not neg.contains(10)
    assert layers.contains((64, 32)) and not layers.contains([64, 16])
    assert Param("x", "int", low=1, high=4).contains(3) and not Param("x", "int", low=1, high=4).contains(2.5)


@pytest.mark.slow
def test_tune_cli_round_trip(tmp_path: Path, capsys) -> None:
    """The best trial's config, retrained with `ncf train --config best.toml`, logs the same validation metric."""
    from ncf.cli import main
    from ncf.run import train_run
    from ncf.runconfig import RunConfig

    data = make_lowrank(n_users=120, n_items=250, density=0.08, seed=5)
    csv = tmp_path / "data.csv"
    data.to_frame()[["user", "item", "rating", "timestamp"]].to_csv(csv, index=False)
    space = tmp_path / "space.toml"
    space.write_text(f"""data = "{csv.as_posix()}"
model = "gmf"
epochs = 3
batch_size = 256
baselines = ["pop"]

[space]
lr = {{low = 1e-3, high = 5e-2, log = true}}
factors = {{choices = [8, 32]}}

[tune]
seed = 1
n_startup_trials = 1
n_warmup_steps = 0
""", encoding="utf-8")
    out = tmp_path / "tune"
    main(["tune", "--config", str(space), "--trials", "4", "--out", str(out), "--quiet"])
    printed = capsys.readouterr().out
    assert "val_ndcg@10" in printed and "best: trial" in printed and "(defaults, trial 0:" in printed

    table = pd.read_csv(out / "trials.csv")
    assert list(table.columns[:4]) == ["trial", "state", "value", "epochs"]
    assert len(table) == 4 and set(table["state"]) <= {"complete", "pruned"}
    assert table.loc[0, "lr"] == 0.01 and table.loc[0, "factors"] == 32  # trial 0: the estimator's defaults
    study = json.loads((out / "study.json").read_text())
    done = table[table["state"] == "complete"]
    assert study["best_value"] == pytest.approx(done["value"].max())
    assert study["best_value"] >= study["default_value"]

    best = RunConfig.from_file(out / "best.toml")
    assert best.lr == study["best_params"]["lr"] and best.factors == study["best_params"]["factors"]
    result = train_run(best)
    assert result.history["val_ndcg@10"].max() == pytest.approx(study["best_value"], abs=1e-9)
