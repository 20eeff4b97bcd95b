"""Checkpoints and resume for `ncf train --out RUN`: survive Ctrl-C, kill -9 and a full disk.

While a run trains, `RUN.in-progress/` holds only the resolved `config.toml` and `checkpoint/` (the
Trainer's complete state after the latest finished epoch, replaced atomically each epoch: weights,
optimizer, scheduler, every RNG state, sampler state, history). The run directory `RUN/` itself still
appears whole or not at all at the end (it keeps a copy of the final `checkpoint/`), and then
`RUN.in-progress/` is removed. `ncf train --resume RUN` (or `--resume RUN.in-progress`) reloads the saved
config and continues from the last good checkpoint; the result is bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

from ncf.errors import NcfError, UsageError

SUFFIX = ".in-progress"
CHECKPOINT = "checkpoint"
CONFIG = "config.toml"


class RunInterrupted(NcfError):
    """Training was interrupted (Ctrl-C); the last good checkpoint is kept. The CLI exits 130."""

    exit_code = 130
    prefix = "interrupted"


def in_progress_dir(run_dir: str | os.PathLike) -> Path:
    """RUN -> RUN.in-progress (a sibling: the run directory itself is only created, whole, at the end)."""
    run_dir = Path(run_dir)
    return run_dir.with_name(run_dir.name + SUFFIX)


def run_dir_of(path: str | os.PathLike) -> Path:
    """RUN.in-progress -> RUN; RUN -> RUN."""
    path = Path(path)
    if path.name.endswith(SUFFIX) and len(path.name) > len(SUFFIX):
        return path.with_name(path.name[: -len(SUFFIX)])
    return path


def _is_main() -> bool:
    """False on the non-zero ranks of a torchrun job (they must not create or check the directory)."""
    return os.environ.get("RANK", "0") in ("", "0")


def check_writable(run_dir: str | os.PathLike) -> None:
    """Fail before any training when `run_dir` could not be created (a file in the way, a read-only folder)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"--out {run_dir} is a file, not a folder", "pass another --out")
    probe = run_dir.absolute().parent
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UsageError(f"cannot create run directory {run_dir}: {probe} is a file", "pass another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"cannot create run directory {run_dir}: {probe} is not writable",
                         "pass an --out in a folder you can write to")


def checkpoint_epoch(progress: str | os.PathLike) -> int | None:
    """The epoch of the last good checkpoint in an in-progress directory, or None."""
    meta = Path(progress) / CHECKPOINT / "state.json"
    try:
        return int(json.loads(meta.read_text(encoding="utf-8"))["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _leftovers(folder: Path, name: str) -> list[Path]:
    """Temp folders that `ncf._io.atomic_dir` leaves beside `name` when the process is killed (-9)."""
    pattern = re.compile(rf"^\.{re.escape(name)}\.(?:[a-z0-9_]{{8}}\.tmp|old-\d+)$")
    return [p for p in folder.iterdir() if p.is_dir() and pattern.match(p.name)] if folder.is_dir() else []


def recover_checkpoint(progress: Path) -> None:
    """Put back a checkpoint caught between the two renames of an atomic replace (kill -9 at that instant),
    and remove the temp folders of checkpoints and run directories that a killed process left behind."""
    ck = progress / CHECKPOINT
    if not ck.exists():
        old = sorted(progress.glob(f".{CHECKPOINT}.old-*"), key=lambda p: p.stat().st_mtime)
        if old:
            os.replace(old[-1], ck)
    run_dir = run_dir_of(progress)
    for leftover in _leftovers(progress, CHECKPOINT) + _leftovers(run_dir.parent, run_dir.name):
        shutil.rmtree(leftover, ignore_errors=True)


def start(progress: Path, resolved_config: Any, *, resume: bool, overwrite: bool) -> Path:
    """Prepare RUN.in-progress before training; returns its checkpoint folder.

    Fresh run: refuses a leftover in-progress directory (unless overwrite) and writes the resolved config.
    Resume: the directory must exist; a checkpoint torn by kill -9 mid-rename is put back.
    """
    if not _is_main():
        return progress / CHECKPOINT
    run_dir = run_dir_of(progress)
    if resume:
        if not (progress / CONFIG).is_file():
            raise UsageError(f"{progress} holds no {CONFIG}", f"start the run again: ncf train --out {run_dir} ...")
        recover_checkpoint(progress)
    else:
        if progress.exists():
            if not overwrite:
                raise UsageError(f"an interrupted run of {run_dir} is in {progress}",
                                 f"continue it with 'ncf train --resume {run_dir}', or pass --overwrite to start again")
            shutil.rmtree(progress)
        progress.mkdir(parents=True)
        resolved_config.to_file(progress / CONFIG)
    return progress / CHECKPOINT


def discard_if_empty(progress: Path) -> None:
    """Remove RUN.in-progress when it holds no checkpoint yet (a fresh run failed in its first epoch)."""
    if _is_main() and checkpoint_epoch(progress) is None:
        shutil.rmtree(progress, ignore_errors=True)


def finish(progress: Path) -> None:
    """Remove RUN.in-progress once RUN is complete."""
    if _is_main():
        shutil.rmtree(progress, ignore_errors=True)


def resume_target(path: str | os.PathLike) -> tuple[Path, Path]:
    """(RUN, its config file) for `ncf train --resume PATH`, PATH being RUN or RUN.in-progress."""
    run_dir = run_dir_of(path)
    progress = in_progress_dir(run_dir)
    if not progress.is_dir():
        if run_dir.is_dir() and (run_dir / "metrics.json").is_file():
            raise UsageError(f"run {run_dir} is already complete; there is nothing to resume",
                             "start a new run with another --out")
        raise UsageError(f"no interrupted run at {path} (no {progress.name} folder)",
                         "pass the --out of a run that was interrupted")
    if not (progress / CONFIG).is_file():
        raise UsageError(f"{progress} holds no {CONFIG}", f"start the run again: ncf train --out {run_dir} ...")
    return run_dir, progress / CONFIG


def interrupted(run_dir: Path) -> RunInterrupted:
    """The one-line message for Ctrl-C during a run: what is kept and how to continue."""
    progress = in_progress_dir(run_dir)
    if not progress.is_dir():
        return RunInterrupted("before training started; nothing was written", "run the same command again")
    epoch = checkpoint_epoch(progress)
    if epoch is None:
        return RunInterrupted(f"before the first epoch ended; the config is kept in {progress}",
                              f"start it again with: ncf train --resume {run_dir}")
    return RunInterrupted(f"the checkpoint of epoch {epoch} is kept in {progress}",
                          f"continue with: ncf train --resume {run_dir}")


class RunFailed(NcfError):
    """The system failed the run (disk full, permissions) after checkpoints were kept. The CLI exits 1."""

    exit_code = 1


def failed(exc: OSError, run_dir: Path) -> RunFailed | None:
    """For an OSError during a run: a one-line error saying which checkpoint is kept, or None if none is."""
    progress = in_progress_dir(run_dir)
    epoch = checkpoint_epoch(progress)
    if epoch is None:
        return None
    what = exc.strerror or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    return RunFailed(f"{what}{where}; {run_dir} was not written, the checkpoint of epoch {epoch} is kept in {progress}",
                     f"fix that (free disk space, permissions), then continue with: ncf train --resume {run_dir}")
