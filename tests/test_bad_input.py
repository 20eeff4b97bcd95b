"""Bad input never crashes or corrupts.

Every case runs the real CLI (`ncf.cli.main`, a few in a subprocess) and expects: exactly one line on stderr
that names the problem and the fix, a non-zero exit code, no traceback, and nothing written or changed
anywhere under the test's folder (no run directory, no temp leftovers). Files that only look odd (BOM, CRLF,
blank lines, string/negative/huge ids, a user with one rating) must load and give the exact counts.

Set NCF_SHOW_MESSAGES=1 to print every message (the list in the release notes comes from it).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

FIXTURES = Path(__file__).parent / "fixtures" / "movielens"
HEAD = "userId,movieId,rating,timestamp"
FAST = ["--epochs", "1", "--factors", "4", "--layers", "8,4", "--batch-size", "64", "--n-negatives", "1",
        "--n-candidates", "5", "--val-candidates", "5", "--threads", "1", "--baselines", "pop"]


def _rows() -> list[list]:
    """30 ratings: 6 users x 5 distinct items out of 15, ratings 1-5, increasing timestamps per user."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(1, 7):
        for j, i in enumerate(rng.choice(np.arange(1, 16), 5, replace=False)):
            rows.append([u, int(i), int(rng.integers(1, 6)), 1_000_000 + 100 * u + j])
    return rows


ROWS = _rows()
N_USERS, N_ITEMS, N_RATINGS = 6, len({r[1] for r in ROWS}), 30


def body(rows: list[list], sep: str = ",") -> str:
    return "".join(sep.join(str(x) for x in r) + "\n" for r in rows)


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> str:
    if isinstance(content, str):
        content = content.encode(encoding)
    path.write_bytes(content)
    return str(path)


def good_csv(tmp: Path) -> str:
    return write(tmp / "ratings.csv", HEAD + "\n" + body(ROWS))


def mutated(tmp: Path, row: int, col: int, value) -> str:
    rows = [r[:] for r in ROWS]
    rows[row][col] = value
    return write(tmp / "ratings.csv", HEAD + "\n" + body(rows))


def train(data: str, tmp: Path, *extra: str) -> list[str]:
    return ["train", "--data", data, "--out", str(tmp / "run"), *FAST, *extra]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under root with its size and mtime: 'nothing written' means this does not change."""
    return {str(p.relative_to(root)): (p.stat().st_size if p.is_file() else -1, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def show(case_id: str, line: str, capsys) -> None:
    if os.environ.get("NCF_SHOW_MESSAGES"):
        with capsys.disabled():
            print(f"\n[{case_id}] {line}")


# --------------------------------------------------------------------------------------------- a trained run
@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A tiny finished run (its bundle is what the bundle cases tamper with, on a copy)."""
    from ncf.run import train_run
    from ncf.runconfig import RunConfig

    root = tmp_path_factory.mktemp("trained")
    data = good_csv(root)
    out = root / "run"
    cfg = RunConfig(data=data, epochs=1, factors=4, layers=[8, 4], batch_size=64, n_negatives=1, n_candidates=5,
                    val_candidates=5, threads=1, baselines=[])
    train_run(cfg, out=out)
    return out


def copy_run(trained: Path, tmp: Path) -> Path:
    dst = tmp / "run"
    shutil.copytree(trained, dst)
    return dst


def _edit_json(path: Path, edit: Callable[[dict], None]) -> None:
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


class Evil:
    """Unpickling this creates a marker folder: proof that a pickle was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


# --------------------------------------------------------------------------------------------- the corpus
@dataclass
class Case:
    id: str
    build: Callable[[Path], list[str]]  # tmp folder -> argv (may create files in it)
    expect: tuple[str, ...]  # substrings of the one line (problem and fix)
    code: int = 2
    needs_run: bool = False
    extra_check: Callable[[Path], None] | None = field(default=None)


def _truncated_zip(tmp: Path) -> list[str]:
    z = tmp / "ml-100k.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in (FIXTURES / "ml-100k").iterdir():
            zf.write(f, f"ml-100k/{f.name}")
    data = z.read_bytes()
    z.write_bytes(data[: len(data) // 2])
    return train(str(z), tmp)


def _ragged(tmp: Path) -> list[str]:
    rows = [r[:] for r in ROWS]
    rows[7] = rows[7] + ["x", "y"]
    return train(write(tmp / "ratings.csv", HEAD + "\n" + body(rows)), tmp)


def _config(text: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        cfg = tmp / "run.toml"
        cfg.write_text(text)
        return train(good_csv(tmp), tmp, "--config", str(cfg))
    return build


def _bundle(tamper: Callable[[Path], None], *flags: str) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        run = tmp / "run"
        tamper(run / "model")
        return ["recommend", str(run), "--user", "1", *flags]
    return build


def _pickle_weights(protocol: int) -> Callable[[Path], None]:
    def tamper(model: Path) -> None:
        (model / "weights.safetensors").write_bytes(pickle.dumps(Evil(model.parent.parent / "PWNED"), protocol=protocol))
    return tamper


def _no_pwned(tmp: Path) -> None:
    assert not (tmp / "PWNED").exists(), "the planted pickle was executed"


def _out_under_file(tmp: Path) -> list[str]:
    data = good_csv(tmp)
    return ["train", "--data", data, "--out", str(Path(data) / "run"), *FAST]


def _out_is_file(tmp: Path) -> list[str]:
    data = good_csv(tmp)
    (tmp / "taken").write_text("not a folder")
    return ["train", "--data", data, "--out", str(tmp / "taken"), *FAST]


CASES = [
    # ---- data files
    Case("truncated-zip", _truncated_zip, ("ml-100k.zip is not a valid zip", "download it again")),
    Case("utf16-file", lambda t: train(write(t / "r.csv", HEAD + "\n" + body(ROWS), "utf-16"), t),
         ("is UTF-16/UTF-32 text, not UTF-8", "save it as UTF-8")),
    Case("binary-file", lambda t: train(write(t / "r.csv", bytes(range(256)) * 4), t),
         ("is not a text table", "UTF-8 CSV")),
    Case("ragged-row", _ragged, ("could not be parsed", "got 6", "every row has the same number of fields")),
    Case("wrong-separator", lambda t: train(good_csv(t), t, "--sep", ";"),
         ("parsed as one column with separator ';'", "pass --sep ','")),
    Case("empty-file", lambda t: train(write(t / "r.csv", ""), t), ("r.csv is empty", "check the file")),
    Case("header-only", lambda t: train(write(t / "r.csv", HEAD + "\n"), t), ("has a header but no rows",)),
    Case("no-user-column", lambda t: train(write(t / "r.csv", "who,what,stars\n" + body([r[:3] for r in ROWS])), t),
         ("has no user or item column", "--columns user=COL,item=COL")),
    Case("unknown-column-mapping", lambda t: train(good_csv(t), t, "--columns", "user=uid,item=movieId"),
         ("has no column 'uid' (for user)",)),
    Case("nan-rating", lambda t: train(mutated(t, 4, 2, "nan"), t),
         ("line 6: 'nan', a non-finite rating", "ratings must be finite numbers")),
    Case("inf-rating", lambda t: train(mutated(t, 4, 2, "inf"), t), ("line 6: 'inf', a non-finite rating",)),
    Case("huge-rating", lambda t: train(mutated(t, 4, 2, "1e300"), t),
         ("line 6: '1e+300', a rating too large to store", "fix or drop that row")),
    Case("text-rating", lambda t: train(mutated(t, 4, 2, "five"), t), ("line 6: 'five', a non-numeric rating",)),
    Case("empty-rating", lambda t: train(mutated(t, 4, 2, ""), t), ("line 6: an empty rating",)),
    Case("text-timestamp", lambda t: train(mutated(t, 4, 3, "yesterday"), t),
         ("timestamp 'yesterday'", "is not a number")),
    Case("missing-data-file", lambda t: train(str(t / "nope.csv"), t), ("nope.csv does not exist",)),
    Case("unknown-dataset-name", lambda t: train("ml-100", t), ("ml-100",)),
    Case("rating-task-without-ratings",
         lambda t: train(write(t / "r.csv", "user,item\n" + body([r[:2] for r in ROWS])), t, "--task", "rating"),
         ("has no ratings, so the rating task is impossible", "use --task ranking")),
    Case("too-few-items-for-candidates", lambda t: train(good_csv(t), t, "--n-candidates", "99"),
         ("fewer than 99 items", "use fewer candidates")),
    # ---- config files
    Case("config-unknown-key", _config('model = "gmf"\nbatchsize = 64\n'),
         ("unknown key 'batchsize'", "did you mean 'batch_size'?")),
    Case("config-wrong-type", _config('epochs = "ten"\n'), ("bad value for 'epochs'", "got 'ten'", "fix the value")),
    Case("config-out-of-range", _config("dropout = 1.5\n"), ("bad value for 'dropout'", "less than 1", "got 1.5")),
    Case("config-invalid-toml", _config("epochs = = 3\n"), ("is not valid toml", "fix the syntax")),
    Case("config-missing-file", lambda t: train(good_csv(t), t, "--config", str(t / "none.toml")),
         ("none.toml does not exist", "check the path")),
    # ---- flags
    Case("epochs-0", lambda t: train(good_csv(t), t, "--epochs", "0"), ("'epochs'", "greater than or equal to 1")),
    Case("model-typo", lambda t: train(good_csv(t), t, "--model", "nuemf"),
         ("unknown model 'nuemf'", "did you mean 'neumf'?")),
    Case("split-typo", lambda t: train(good_csv(t), t, "--split", "lo"), ("bad value for 'split'", "'loo'")),
    Case("ks-0", lambda t: train(good_csv(t), t, "--ks", "0"), ("bad value for 'ks'", ">= 1")),
    Case("lr-not-a-number", lambda t: train(good_csv(t), t, "--lr", "fast"), ("Invalid value for '--lr'",)),
    Case("unknown-flag", lambda t: train(good_csv(t), t, "--epoch", "3"), ("--epoch", "ncf --help")),
    Case("unknown-baseline", lambda t: train(good_csv(t), t, "--baselines", "popp"),
         ("unknown baseline 'popp'", "did you mean 'pop'?")),
    Case("unknown-preset", lambda t: train(good_csv(t), t, "--preset", "nope"), ("unknown preset 'nope'",)),
    Case("recommend-k-0", _bundle(lambda m: None, "-k", "0"), ("k",), needs_run=True),
    # ---- bundles
    Case("bundle-missing-weights", _bundle(lambda m: (m / "weights.safetensors").unlink()),
         ("weights.safetensors is missing", "re-run 'ncf train'"), needs_run=True),
    Case("bundle-missing-json", _bundle(lambda m: (m / "model.json").unlink()),
         ("model.json is missing", "re-run 'ncf train'"), needs_run=True),
    Case("bundle-truncated-json", _bundle(lambda m: (m / "model.json").write_text((m / "model.json").read_text()[:100])),
         ("model.json is not valid JSON", "the bundle is damaged"), needs_run=True),
    Case("bundle-shape-mismatch", _bundle(lambda m: _edit_json(m / "model.json", lambda d: d["params"].update(factors=16))),
         ("do not fit a neumf", "size mismatch for", "re-run 'ncf train'"), needs_run=True),
    Case("bundle-id-map-mismatch", _bundle(lambda m: _edit_json(m / "model.json", lambda d: d["user_map"]["raw_ids"].pop())),
         ("bundle user id map has 5 ids but the model has 6", "re-run 'ncf train'"), needs_run=True),
    Case("bundle-json-lacks-state", _bundle(lambda m: _edit_json(m / "model.json", lambda d: d.pop("state"))),
         ("model.json lacks 'state'", "the bundle is damaged"), needs_run=True),
    Case("bundle-pickle-protocol-4", _bundle(_pickle_weights(4)), ("looks like a pickle", "never loads"),
         needs_run=True, extra_check=_no_pwned),
    Case("bundle-pickle-protocol-0", _bundle(_pickle_weights(0)), ("is not a valid safetensors file",),
         needs_run=True, extra_check=_no_pwned),
    Case("bundle-not-a-run", lambda t: ["recommend", str(t), "--user", "1"], ("model.json is missing", "re-run 'ncf train'")),
    # ---- output paths
    Case("out-under-a-file", _out_under_file, ("cannot create run directory", "is a file", "pass another --out")),
    Case("out-is-a-file", _out_is_file, ("taken already exists", "pass another --out")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(case: Case, request, tmp_path, capsys):
    if case.needs_run:
        copy_run(request.getfixturevalue("trained_run"), tmp_path)
    argv = case.build(tmp_path)
    before = snapshot(tmp_path)
    code, out, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == case.code, (code, err)
    assert len(lines) == 1, err
    line = lines[0]
    show(case.id, line, capsys)
    assert line.startswith("error: ") and ";" in line, line  # "error: <problem>; <fix>"
    assert "Traceback" not in err + out
    for part in case.expect:
        assert part in line, (part, line)
    assert snapshot(tmp_path) == before  # nothing written, nothing half-written, no temp leftovers
    if case.extra_check is not None:
        case.extra_check(tmp_path)


def test_bundle_pickle_is_never_unpickled_by_the_loader(tmp_path, trained_run):
    """The library path too (ncf.load), not only the CLI."""
    import ncf
    from ncf.errors import BundleError

    run = copy_run(trained_run, tmp_path)
    for protocol in (0, 2, 5):
        _pickle_weights(protocol)(run / "model")
        with pytest.raises(BundleError):
            ncf.load(run)
        _no_pwned(tmp_path)


# --------------------------------------------------------------------------------------------- files that load
LOADS = {
    "utf8-bom": lambda t: write(t / "r.csv", b"\xef\xbb\xbf" + (HEAD + "\n" + body(ROWS)).encode()),
    "crlf-line-ends": lambda t: write(t / "r.csv", (HEAD + "\n" + body(ROWS)).replace("\n", "\r\n")),
    "bom-and-crlf": lambda t: write(t / "r.csv", b"\xef\xbb\xbf" + (HEAD + "\n" + body(ROWS)).replace("\n", "\r\n").encode()),
    "blank-lines": lambda t: write(t / "r.csv", HEAD + "\n\n" + body(ROWS[:10]) + "\n\n" + body(ROWS[10:]) + "\n\n"),
    "no-header": lambda t: write(t / "r.csv", body(ROWS)),
    "extra-columns": lambda t: write(t / "r.csv", HEAD + ",genre\n" + body([r + ["Drama"] for r in ROWS])),
    "semicolon-sniffed": lambda t: write(t / "r.csv", HEAD.replace(",", ";") + "\n" + body(ROWS, ";")),
    "tab-separated": lambda t: write(t / "r.tsv", HEAD.replace(",", "\t") + "\n" + body(ROWS, "\t")),
    "string-ids": lambda t: write(t / "r.csv", HEAD + "\n" + body([[f"u{r[0]}", f"m{r[1]}", *r[2:]] for r in ROWS])),
    "negative-ids": lambda t: write(t / "r.csv", HEAD + "\n" + body([[-r[0], -r[1], *r[2:]] for r in ROWS])),
    "huge-ids": lambda t: write(t / "r.csv", HEAD + "\n" + body([[r[0] + 2**70, r[1] + 2**62, *r[2:]] for r in ROWS])),
    "latin1-id": lambda t: write(t / "r.csv", (HEAD + "\n" + body([[f"Jos\xe9{r[0]}", *r[1:]] for r in ROWS])).encode("latin-1")),
}


@pytest.mark.parametrize("name", list(LOADS))
def test_odd_but_valid_files_load_with_exact_counts(name, tmp_path, capsys):
    path = LOADS[name](tmp_path)
    code, out, err = run_cli(["data", "info", "--json", path], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert (summary["users"], summary["items"], summary["ratings"]) == (N_USERS, N_ITEMS, N_RATINGS)
    assert summary["rating_scale"] == [1.0, 5.0]


def test_user_with_one_rating_stays_in_train_under_leave_one_out(tmp_path, capsys, monkeypatch):
    import ncf.run

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: None)  # the report is not the subject here
    path = write(tmp_path / "r.csv", HEAD + "\n" + body(ROWS + [[99, 3, 4, 2_000_000]]))
    code, out, err = run_cli(train(path, tmp_path), capsys)
    assert code == 0, err
    split = json.loads((tmp_path / "run" / "data.json").read_text())["split"]
    # 6 users with 5 ratings: 1 test + 1 valid + 3 train each; user 99 keeps its only rating in train
    assert (split["train"], split["valid"], split["test"]) == (6 * 3 + 1, 6, 6)


# --------------------------------------------------------------------------------------------- failures while writing
def test_disk_full_while_writing_the_run_leaves_no_run_dir(tmp_path, capsys, monkeypatch):
    """ENOSPC from a write inside the run directory: one line, exit 1, no RUN and no temp folder; the checkpoint
    in RUN.in-progress is kept and --resume finishes the run once there is space again."""
    import ncf.run

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: None)
    real = ncf.run._write_json

    def full(path, obj):
        Path(path).write_text('{"half": ')
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(ncf.run, "_write_json", full)
    data = good_csv(tmp_path)
    code, _, err = run_cli(train(data, tmp_path), capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    show("disk-full", lines[0], capsys)
    assert lines[0].startswith("error: No space left on device: ")
    assert "run was not written, the checkpoint of epoch 1 is kept in" in lines[0] or \
        "was not written, the checkpoint of epoch 1 is kept in" in lines[0]
    assert f"continue with: ncf train --resume {tmp_path / 'run'}" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ratings.csv", "run.in-progress"]
    assert sorted(p.name for p in (tmp_path / "run.in-progress").iterdir()) == ["checkpoint", "config.toml"]

    monkeypatch.setattr(ncf.run, "_write_json", real)
    code, out, err = run_cli(["train", "--resume", str(tmp_path / "run"), "-q"], capsys)
    assert code == 0, err
    assert (tmp_path / "run" / "metrics.json").is_file() and not (tmp_path / "run.in-progress").exists()


def test_disk_full_in_the_first_epoch_leaves_nothing(tmp_path, capsys, monkeypatch):
    """ENOSPC while writing the first checkpoint: one line, exit 1, nothing left at all."""
    import ncf.training

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "state.safetensors")

    monkeypatch.setattr("safetensors.numpy.save_file", full)
    data = good_csv(tmp_path)
    before = snapshot(tmp_path)
    code, _, err = run_cli(train(data, tmp_path), capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    show("disk-full-first-epoch", lines[0], capsys)
    assert lines[0] == "error: No space left on device: state.safetensors; free disk space or write somewhere else, then run again"
    assert snapshot(tmp_path) == before
    assert ncf.training  # imported: the checkpoint writer is the one that failed


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write to read-only folders")
def test_read_only_parent_is_refused_before_training(tmp_path, capsys):
    data = good_csv(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, _, err = run_cli(["train", "--data", data, "--out", str(locked / "run"), *FAST], capsys)
    finally:
        locked.chmod(0o755)
    assert code == 2 and err.strip() == (f"error: cannot create run directory {locked / 'run'}: {locked} is not "
                                         "writable; pass an --out in a folder you can write to")
    assert list(locked.iterdir()) == []


def test_permission_denied_while_writing_is_one_line(tmp_path, capsys, monkeypatch):
    """What a read-only folder does to the writer (simulated, so that it also holds when tests run as root)."""
    import tempfile

    import ncf.run

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: None)
    real = tempfile.mkdtemp

    def denied(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) == tmp_path:  # the run directory's temp folder, not the checkpoint's
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    code, _, err = run_cli(train(good_csv(tmp_path), tmp_path), capsys)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    show("permission-denied", lines[0], capsys)
    assert lines[0].startswith(f"error: Permission denied: {tmp_path}; ")
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------------------------------- real processes
def _ncf(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "NCF_DEBUG"}
    return subprocess.run([sys.executable, "-m", "ncf", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_end_to_end_exit_code_and_one_line(tmp_path):
    data = mutated(tmp_path, 4, 2, "nan")
    proc = _ncf("train", "--data", data, "--out", str(tmp_path / "run"), "--epochs", "1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"error: {data} line 6: 'nan', a non-finite rating in column 'rating'; ratings "
                                   "must be finite numbers; fix or drop that row (or load without a rating column)")
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(tmp_path):
    proc = _ncf("--debug", "train", "--data", good_csv(tmp_path), "--model", "nuemf", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ConfigError: unknown model 'nuemf'; did you mean 'neumf'?" in proc.stderr
