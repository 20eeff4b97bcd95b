"""`ncf data info|fetch|list`: output and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ncf.cli import main

FIX = Path(__file__).parent / "fixtures" / "movielens"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("NCF_HOME", str(tmp_path / "home"))


def run(args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args)
        raise SystemExit(0)
    out = capsys.readouterr()
    return info.value.code or 0, out.out, out.err


def test_info_text_and_json(capsys):
    code, out, _ = run(["data", "info", str(FIX / "ml-latest-small")], capsys)
    assert code == 0
    assert "users               3" in out and "8 rated" not in out and "5 rated (catalog 8)" in out
    assert "0.5..5" in out and "time span" in out and "duplicates dropped  0" in out
    code, out, _ = run(["data", "info", str(FIX / "ml-latest-small"), "--json"], capsys)
    s = json.loads(out)
    assert s["users"] == 3 and s["items"] == 5 and s["catalog_items"] == 8 and s["ratings"] == 6
    assert s["density"] == round(6 / 15, 6)
    assert s["rating_histogram"] == {"0.5": 1, "2.5": 1, "3.5": 1, "4": 2, "5": 1}
    assert s["interactions_per_user"] == {"min": 1, "median": 2.0, "mean": 2.0, "max": 3}
    assert s["time_span"]["first"] == "2000-07-30" and s["time_span"]["last"] == "2019-09-29"


def test_info_plain_table_with_columns_and_sep(tmp_path, capsys):
    p = tmp_path / "r.txt"
    p.write_text("a;b;c\nu1;i1;3\nu2;i1;4\n")
    code, out, _ = run(["data", "info", str(p), "--columns", "user=a,item=b,rating=c", "--sep", ";", "--json"],
                       capsys)
    assert code == 0 and json.loads(out)["ratings"] == 2


@pytest.mark.parametrize("args, needle", [
    (["data", "info", "ml-100"], "unknown dataset 'ml-100'; did you mean 'ml-100k'?"),
    (["data", "info", "missing.csv"], "missing.csv does not exist"),
    (["data", "info", "x.csv", "--columns", "usr=a"], "did you mean 'user'?"),
    (["data", "fetch", "ml-2m"], "unknown dataset 'ml-2m'"),
])
def test_errors_are_one_line_exit_2(args, needle, capsys):
    code, out, err = run(args, capsys)
    assert code == 2 and needle in err and err.count("\n") == 1 and err.startswith("error: ")


def test_list(capsys):
    code, out, _ = run(["data", "list"], capsys)
    assert code == 0 and "ml-25m" in out and "ml-latest-small" in out
