"""`ncf train`: flags, config file, run directory, one-line errors with exit 2."""

from __future__ import annotations

import json
import tomllib

import pytest

from ncf.cli import main
from tests.test_run import write_csv

SMALL = ["--epochs", "2", "--factors", "8", "--layers", "16,8", "--batch-size", "256", "--n-negatives", "2",
         "--n-candidates", "30", "--threads", "1", "--baselines", "pop"]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv, message", [
    (["--model", "nuemf"], "unknown model 'nuemf'; did you mean 'neumf'?"),
    (["--epochs", "0"], "epochs"),
    (["--task", "ratings"], "task"),
    (["--preset", "no-such-preset"], "unknown preset 'no-such-preset'"),
    (["--dropout", "2"], "dropout"),
])
def test_bad_flags_exit_2_with_one_line(argv, message, capsys, tmp_path):
    code, out, err = run_cli(["train", "--out", str(tmp_path / "r"), *argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "r").exists()


def test_unknown_flag_suggests(capsys):
    code, _, err = run_cli(["train", "--epoch", "3"], capsys)
    assert code == 2 and "--epochs" in err and len(err.strip().splitlines()) == 1


def test_bad_config_key_exits_2(tmp_path, capsys):
    (tmp_path / "run.toml").write_text('model = "gmf"\nbatchsize = 64\n')
    code, _, err = run_cli(["train", "--config", str(tmp_path / "run.toml")], capsys)
    assert code == 2
    assert err.strip() == f"error: unknown key 'batchsize' in {tmp_path / 'run.toml'}; did you mean 'batch_size'?"


def test_missing_data_exits_2(tmp_path, capsys):
    code, _, err = run_cli(["train", "--data", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "does not exist" in err and not (tmp_path / "r").exists()


@pytest.mark.slow
def test_train_then_rerun_from_config(tmp_path, capsys):
    csv = write_csv(tmp_path / "ratings.csv")
    out = tmp_path / "run"
    code, stdout, err = run_cli(["train", "--data", str(csv), "--out", str(out), *SMALL], capsys)
    assert code == 0, err
    for marker in ("data: ratings", "split: loo", "audit:", "epoch   1", "epoch   2", "neumf *", "pop", f"run written to {out}"):
        assert marker in stdout, marker
    cfg = tomllib.loads((out / "config.toml").read_text())
    assert cfg["model"] == "neumf" and cfg["epochs"] == 2 and cfg["layers"] == [16, 8] and cfg["split"] == "loo"
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"neumf", "pop"}

    again = tmp_path / "again"
    code, _, err = run_cli(["train", "--config", str(out / "config.toml"), "--out", str(again), "-q"], capsys)
    assert code == 0, err
    assert json.loads((again / "metrics.json").read_text()) == metrics

    # flags override the file
    third = tmp_path / "third"
    code, _, err = run_cli(["train", "--config", str(out / "config.toml"), "--out", str(third), "--epochs", "1",
                            "--baselines", "none", "-q"], capsys)
    assert code == 0, err
    assert tomllib.loads((third / "config.toml").read_text())["epochs"] == 1
    assert set(json.loads((third / "metrics.json").read_text())) == {"neumf"}

    # an existing run directory is refused (exit 2), and left alone
    code, _, err = run_cli(["train", "--config", str(out / "config.toml"), "--out", str(out)], capsys)
    assert code == 2 and "already exists" in err
    assert json.loads((out / "metrics.json").read_text()) == metrics
