"""Fuzzing every parser: arbitrary bytes give a dataset or a clean NcfError, never another exception."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ncf.data import Interactions, load_data
from ncf.errors import NcfError

FIX = Path(__file__).parent / "fixtures" / "movielens"
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes biased towards the formats' own alphabet, so that many inputs get past the first checks.
ALPHABET = st.sampled_from([b"1", b"2", b"5", b"0.5", b"-", b",", b"\t", b"|", b"::", b":", b"\n", b"\r\n", b'"',
                            b" ", b"a", b"\xe9", b"\xef\xbb\xbf", b"nan", b"inf", b"", b"\x00", b"99999999999999999999"])
TEXTY = st.lists(ALPHABET, max_size=60).map(b"".join)
DATA = st.one_of(st.binary(max_size=300), TEXTY)


def _check(folder_or_file: Path) -> None:
    try:
        out = load_data(folder_or_file)
    except NcfError as exc:
        assert "\n" not in str(exc)
        return
    assert isinstance(out, Interactions)


def _release_with(fixture: str, replace: dict[str, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / fixture
        shutil.copytree(FIX / fixture, folder)
        for name, data in replace.items():
            (folder / name).write_bytes(data)
        _check(folder)


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("NCF_HOME", str(tmp_path / "home"))


@pytest.mark.slow
@FUZZ
@given(ratings=DATA, items=DATA)
def test_fuzz_ml100k(ratings, items):
    _release_with("ml-100k", {"u.data": ratings, "u.item": items})


@pytest.mark.slow
@FUZZ
@given(ratings=DATA, movies=DATA)
def test_fuzz_dat(ratings, movies):
    _release_with("ml-1m", {"ratings.dat": ratings, "movies.dat": movies})


@pytest.mark.slow
@FUZZ
@given(ratings=DATA, movies=DATA)
def test_fuzz_csv_release(ratings, movies):
    _release_with("ml-latest-small", {"ratings.csv": b"userId,movieId,rating,timestamp\n" + ratings,
                                      "movies.csv": b"movieId,title,genres\n" + movies})


@pytest.mark.slow
@FUZZ
@given(inter=DATA, item=DATA)
def test_fuzz_recbole(inter, item):
    _release_with("recbole-ml-100k", {"ml-100k.inter": inter, "ml-100k.item": item})


@pytest.mark.slow
@FUZZ
@given(data=DATA, suffix=st.sampled_from([".csv", ".tsv", ".txt", ".parquet", ".zip"]))
def test_fuzz_plain_table(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"table{suffix}"
        p.write_bytes(data)
        _check(p)
