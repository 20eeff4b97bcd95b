"""Checkpoints and resume: `ncf train --out RUN` survives Ctrl-C and kill -9, and `ncf train --resume RUN`
finishes bit-identical (weights and metrics.json) to a run that was never interrupted."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from ncf.cli import main
from ncf.training import read_checkpoint
from tests.conftest import make_lowrank, run_cli

TIMING = ("seconds", "samples_per_s")


def write_data(path: Path, n_users: int, n_items: int, density: float, seed: int = 3) -> Path:
    frame = make_lowrank(n_users=n_users, n_items=n_items, density=density, seed=seed).to_frame(raw=True)
    frame.rename(columns={c: c.split("_")[0] for c in frame.columns}).to_csv(path, index=False)
    return path


def flags(data: Path, epochs: int) -> list[str]:
    # dropout (torch RNG), cosine schedule, early-stopping bookkeeping with best-weight restore: all must resume
    return ["--data", str(data), "--model", "neumf", "--factors", "8", "--layers", "16,8", "--dropout", "0.1",
            "--epochs", str(epochs), "--batch-size", "256", "--n-negatives", "2", "--lr", "0.01", "--lr-schedule",
            "cosine", "--patience", "10", "--n-candidates", "20", "--baselines", "pop", "--seed", "7",
            "--threads", "1"]


def assert_identical(run: Path, ref: Path) -> None:
    """Weights (every tensor, bit for bit), metrics.json (byte for byte), candidates and history match."""
    a, b = load_file(str(run / "model" / "weights.safetensors")), load_file(str(ref / "model" / "weights.safetensors"))
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and a[key].shape == b[key].shape, key
        assert a[key].tobytes() == b[key].tobytes(), f"tensor {key} differs"
    assert (run / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()
    assert (run / "candidates.npy").read_bytes() == (ref / "candidates.npy").read_bytes()
    ha, hb = (np.genfromtxt(p / "history.csv", delimiter=",", names=True) for p in (run, ref))
    cols = [c for c in ha.dtype.names if c not in TIMING]
    assert [c for c in hb.dtype.names if c not in TIMING] == cols
    for c in cols:
        assert np.array_equal(ha[c], hb[c], equal_nan=True), c
    assert (run / "checkpoint" / "state.safetensors").is_file()


def progress_of(run: Path) -> Path:
    return run.with_name(run.name + ".in-progress")


def ckpt_epoch(run: Path) -> int:
    meta = progress_of(run) / "checkpoint" / "state.json"
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0


@pytest.fixture
def no_report(monkeypatch):
    """The HTML report is not the subject here (and costs seconds)."""
    import ncf.run

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: None)


# --------------------------------------------------------------------------------------------- in process (fast)
@pytest.fixture(scope="module")
def small_data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "ratings.csv", n_users=60, n_items=100, density=0.12)


@pytest.fixture(scope="module")
def reference(small_data, tmp_path_factory) -> Path:
    import ncf.run

    out = tmp_path_factory.mktemp("ref") / "run"
    real = ncf.run._report_writer
    ncf.run._report_writer = lambda: None
    try:
        main(["train", *flags(small_data, 4), "--out", str(out), "-q"])
    finally:
        ncf.run._report_writer = real
    return out


def _interrupt_after(monkeypatch, epoch: int, exc: BaseException) -> None:
    """Raise `exc` right after the checkpoint of `epoch` is written (as Ctrl-C or a crash would)."""
    import ncf.models.ncf_estimator as mod

    real = mod.save_checkpoint

    def save(trainer, directory, extra=None):
        path = real(trainer, directory, extra=extra)
        if trainer.epoch == epoch:
            raise exc
        return path

    monkeypatch.setattr(mod, "save_checkpoint", save)


def test_ctrl_c_keeps_the_checkpoint_and_resume_is_bit_identical(small_data, reference, tmp_path, capsys, monkeypatch,
                                                                   no_report):
    run = tmp_path / "run"
    _interrupt_after(monkeypatch, 2, KeyboardInterrupt())
    code, _, err = run_cli(["train", *flags(small_data, 4), "--out", str(run), "-q"], capsys)
    assert code == 130
    assert err.strip() == (f"interrupted: the checkpoint of epoch 2 is kept in {progress_of(run)}; "
                           f"continue with: ncf train --resume {run}")
    assert not run.exists()
    assert sorted(p.name for p in progress_of(run).iterdir()) == ["checkpoint", "config.toml"]
    arrays, meta = read_checkpoint(progress_of(run) / "checkpoint")
    assert meta["epoch"] == 2 and len(meta["history"]) == 2
    # weights, optimizer moments, best weights, RNG states; sampler (numpy) state and scheduler in the JSON
    assert {k.split(".")[0] for k in arrays} >= {"module", "opt", "best", "rng"}
    assert {"numpy_rng", "scheduler", "optimizer", "history", "best_score"} <= set(meta)

    monkeypatch.undo()
    import ncf.run

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: None)
    code, out, err = run_cli(["train", "--resume", str(run)], capsys)
    assert code == 0, err
    assert f"resuming after epoch 2 from {progress_of(run) / 'checkpoint'}" in out
    assert "epoch   3" in out and "epoch   1" not in out
    assert not progress_of(run).exists()
    assert_identical(run, reference)


def test_resume_accepts_the_in_progress_folder_and_recovers_a_torn_checkpoint(small_data, reference, tmp_path, capsys,
                                                                              monkeypatch, no_report):
    """kill -9 between the two renames of the atomic checkpoint swap leaves only `.checkpoint.old-PID`."""
    run = tmp_path / "run"
    _interrupt_after(monkeypatch, 1, KeyboardInterrupt())
    assert run_cli(["train", *flags(small_data, 4), "--out", str(run), "-q"], capsys)[0] == 130
    monkeypatch.undo()
    import ncf.run

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: None)
    progress = progress_of(run)
    os.replace(progress / "checkpoint", progress / ".checkpoint.old-4242")
    (progress / ".checkpoint.abcd1234.tmp").mkdir()  # a half-written new one, abandoned
    (tmp_path / ".run.zz99zz99.tmp").mkdir()  # a half-written run directory, abandoned
    code, out, err = run_cli(["train", "--resume", str(progress)], capsys)
    assert code == 0, err
    assert "resuming after epoch 1" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert_identical(run, reference)


def test_crash_keeps_the_checkpoint_too(small_data, tmp_path, capsys, monkeypatch, no_report):
    run = tmp_path / "run"
    _interrupt_after(monkeypatch, 1, RuntimeError("simulated crash"))
    with pytest.raises(RuntimeError):
        main(["train", *flags(small_data, 3), "--out", str(run), "-q"])
    assert not run.exists() and ckpt_epoch(run) == 1


def test_no_checkpoint_yet_resumes_from_epoch_1(small_data, reference, tmp_path, capsys, no_report):
    run = tmp_path / "run"
    progress_of(run).mkdir()
    (progress_of(run) / "config.toml").write_text((reference / "config.toml").read_text())
    code, out, err = run_cli(["train", "--resume", str(run), "-q"], capsys)
    assert code == 0, err
    assert_identical(run, reference)


@pytest.mark.parametrize("extra, message", [
    (["--epochs", "9"], "--resume continues with the run's saved config, so --epochs cannot be given; drop those flags"),
    (["--out", "x"], "so --out cannot be given"),
    (["--overwrite"], "so --overwrite cannot be given"),
])
def test_resume_refuses_other_flags(extra, message, small_data, tmp_path, capsys):
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "run"), *extra], capsys)
    assert code == 2 and err.strip().startswith("error: ") and message in err and len(err.strip().splitlines()) == 1


def test_resume_errors(reference, tmp_path, capsys):
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "nothing")], capsys)
    assert code == 2 and err.strip() == (f"error: no interrupted run at {tmp_path / 'nothing'} (no nothing.in-progress "
                                         "folder); pass the --out of a run that was interrupted")
    code, _, err = run_cli(["train", "--resume", str(reference)], capsys)
    assert code == 2 and err.strip() == (f"error: run {reference} is already complete; there is nothing to resume; "
                                         "start a new run with another --out")
    progress_of(tmp_path / "bare").mkdir()
    code, _, err = run_cli(["train", "--resume", str(tmp_path / "bare")], capsys)
    assert code == 2 and "holds no config.toml" in err


def test_a_leftover_in_progress_run_is_not_silently_discarded(small_data, tmp_path, capsys, monkeypatch, no_report):
    run = tmp_path / "run"
    _interrupt_after(monkeypatch, 1, KeyboardInterrupt())
    assert run_cli(["train", *flags(small_data, 2), "--out", str(run), "-q"], capsys)[0] == 130
    monkeypatch.undo()
    import ncf.run

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: None)
    code, _, err = run_cli(["train", *flags(small_data, 2), "--out", str(run), "-q"], capsys)
    assert code == 2 and err.strip() == (f"error: an interrupted run of {run} is in {progress_of(run)}; continue it with "
                                         f"'ncf train --resume {run}', or pass --overwrite to start again")
    assert ckpt_epoch(run) == 1
    code, _, err = run_cli(["train", *flags(small_data, 2), "--out", str(run), "--overwrite", "-q"], capsys)
    assert code == 0, err
    assert run.is_dir() and not progress_of(run).exists()


# --------------------------------------------------------------------------------------------- real processes, kill -9
def _start(args: list[str], cwd: Path, tag: str) -> tuple[subprocess.Popen, Path]:
    log = cwd / f"{tag}.err"
    env = {k: v for k, v in os.environ.items() if k != "NCF_DEBUG"}
    # a shell that starts CI in the background ignores SIGINT, and children inherit that: restore the default
    # so that Python turns SIGINT into KeyboardInterrupt as it does in a terminal
    proc = subprocess.Popen([sys.executable, "-m", "ncf", "train", *args], cwd=cwd, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "w"),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, log


def _wait_for_epoch(run: Path, epoch: int, proc: subprocess.Popen, log: Path, timeout: float = 240) -> float:
    """Wait until the checkpoint of `epoch` (or later) exists; returns how long that epoch took (the trainer's
    own per-epoch seconds, from the checkpoint's history)."""
    t_end = time.monotonic() + timeout
    meta = progress_of(run) / "checkpoint" / "state.json"
    while time.monotonic() < t_end:
        if ckpt_epoch(run) >= epoch:
            try:
                return float(json.loads(meta.read_text())["history"][-1]["seconds"])
            except (OSError, ValueError, KeyError, IndexError):  # replaced under our feet: read again
                continue
        if proc.poll() is not None:
            raise AssertionError(f"training ended early (rc {proc.returncode}): {log.read_text()[-2000:]}")
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint of epoch {epoch} within {timeout}s")


def _kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> int:
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(sig)
    return proc.wait(timeout=120)


def _check_after_kill(run: Path) -> int:
    """After kill -9: no run directory, the in-progress folder holds config + a loadable checkpoint."""
    assert not run.exists()
    progress = progress_of(run)
    names = {p.name for p in progress.iterdir() if not p.name.startswith(".")}
    assert names == {"checkpoint", "config.toml"} or names == {"config.toml"}, names
    found = read_checkpoint(progress / "checkpoint")
    return 0 if found is None else int(found[1]["epoch"])


@pytest.mark.slow
def test_kill_9_at_several_points_then_resume_is_bit_identical(tmp_path, capsys, no_report):
    data = write_data(tmp_path / "ratings.csv", n_users=200, n_items=100, density=0.15)
    epochs = 6
    run = tmp_path / "run"
    rng = random.Random(20261204)  # the randomised kill point, reproducible

    # 1. fresh start, kill -9 as soon as the first checkpoint exists (after epoch 1)
    proc, log = _start([*flags(data, epochs), "--out", str(run), "-q"], tmp_path, "a")
    _wait_for_epoch(run, 1, proc, log)
    assert _kill(proc) == -signal.SIGKILL
    kept = [_check_after_kill(run)]
    assert kept[0] >= 1

    # 2. resume, Ctrl-C (SIGINT) after the next checkpoint: a clean stop with one line and exit 130
    proc, log = _start(["--resume", str(run), "-q"], tmp_path, "b")
    _wait_for_epoch(run, kept[-1] + 1, proc, log)
    assert _kill(proc, signal.SIGINT) == 130
    lines = log.read_text().strip().splitlines()
    epoch = _check_after_kill(run)
    assert len(lines) == 1 and lines[0] == (f"interrupted: the checkpoint of epoch {epoch} is kept in {progress_of(run)}; "
                    f"continue with: ncf train --resume {run}")
    kept.append(epoch)

    # 3. resume, kill -9 in the middle of the epoch after epoch 3
    proc, log = _start(["--resume", str(run), "-q"], tmp_path, "c")
    took = _wait_for_epoch(run, max(3, kept[-1] + 1), proc, log)
    time.sleep(0.5 * took)
    _kill(proc)
    kept.append(_check_after_kill(run))

    # 4. resume, kill -9 at a seeded random point (epoch and fraction of it)
    proc, log = _start(["--resume", str(run), "-q"], tmp_path, "d")
    target = rng.randint(kept[-1] + 1, epochs - 1)
    took = _wait_for_epoch(run, target, proc, log)
    time.sleep(rng.random() * took)
    _kill(proc)
    kept.append(_check_after_kill(run))
    assert kept == sorted(kept) and kept[-1] < epochs, kept

    # 5. resume to the end (in process), and an uninterrupted run with the same seed
    code, _, err = run_cli(["train", "--resume", str(run), "-q"], capsys)
    assert code == 0, err
    ref = tmp_path / "ref"
    code, _, err = run_cli(["train", *flags(data, epochs), "--out", str(ref), "-q"], capsys)
    assert code == 0, err
    assert_identical(run, ref)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["ref", "run"]  # no leftovers
