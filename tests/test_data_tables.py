"""Plain CSV/TSV/Parquet tables through load_data, and every user-caused error as one clear line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ncf.data import load_data
from ncf.data.tables import parse_columns
from ncf.errors import DataError


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("NCF_HOME", str(tmp_path / "home"))


def write(tmp_path, name, data: bytes | str):
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def test_default_column_names_and_row_order(tmp_path):
    p = write(tmp_path, "r.csv", "userId,movieId,rating,timestamp\n5,9,4,30\n1,9,3.5,10\n5,2,1,20\n")
    d = load_data(p)
    f = d.to_frame()
    assert f["user"].tolist() == [5, 1, 5] and f["item"].tolist() == [9, 9, 2]
    assert f["rating"].tolist() == [4, 3.5, 1] and f["timestamp"].tolist() == [30, 10, 20]
    assert d.name == "r" and d.rating_scale == (1.0, 4.0)
    assert d.item_meta is None


def test_columns_spec_sep_and_string_ids(tmp_path):
    p = write(tmp_path, "r.txt", "who;what;stars;when\nalice;m-1;5;2020-01-01\nbob;m-2;3;2020-01-02 12:00:00\n")
    d = load_data(p, columns="user=who,item=what,rating=stars,timestamp=when", sep=";")
    f = d.to_frame()
    assert f["user"].tolist() == ["alice", "bob"] and f["item"].tolist() == ["m-1", "m-2"]
    assert f["timestamp"].tolist() == [1577836800, 1577966400]


def test_sniffed_tab_without_header_and_implicit(tmp_path):
    p = write(tmp_path, "r.tsv", "1\t10\n2\t10\n2\t11\n")
    d = load_data(p)
    assert d.ratings is None and d.timestamps is None and len(d) == 3
    p2 = write(tmp_path, "u.dat", "7|8|2|99\n7|9|5|98\n")  # no header, '|' sniffed, positions 0-3
    f = load_data(p2).to_frame()
    assert f["rating"].tolist() == [2, 5] and f["timestamp"].tolist() == [99, 98]


def test_negative_huge_and_mixed_ids_are_raw_ids(tmp_path):
    p = write(tmp_path, "r.csv", "user,item,rating\n-3,99999999999999999999,1\n7,abc,2\n-3,abc,3\n")
    f = load_data(p).to_frame()
    assert f["user"].tolist() == [-3, 7, -3]
    assert f["item"].tolist() == ["99999999999999999999", "abc", "abc"]


def test_bom_and_crlf_are_transparent(tmp_path):
    p = write(tmp_path, "r.csv", b"\xef\xbb\xbfuserId,movieId,rating\r\n1,2,3\r\n4,5,1\r\n")
    f = load_data(p).to_frame()
    assert f["user"].tolist() == [1, 4] and f["rating"].tolist() == [3, 1]


def test_duplicates_keep_latest(tmp_path):
    p = write(tmp_path, "r.csv", "user,item,rating,timestamp\n1,1,2,50\n1,1,5,10\n2,1,3,1\n")
    d = load_data(p)
    assert d.duplicates_dropped == 1 and d.to_frame()["rating"].tolist() == [2, 3]


def test_parquet(tmp_path):
    df = pd.DataFrame({"uid": ["a", "b", "a"], "iid": [3, 1, 2], "score": [1.0, 2.0, 3.0],
                       "ts": pd.to_datetime(["2021-01-01", "2021-01-02", "2021-01-03"])})
    p = tmp_path / "r.parquet"
    df.to_parquet(p)
    d = load_data(p, columns="user=uid,item=iid,rating=score,timestamp=ts")
    f = d.to_frame()
    assert f["user"].tolist() == ["a", "b", "a"] and f["item"].tolist() == [3, 1, 2]
    assert f["timestamp"].tolist()[0] == 1609459200


@pytest.mark.parametrize("content, columns, sep, pattern", [
    ("", None, None, "is empty"),
    ("userId,movieId,rating\n", None, None, "header but no rows"),
    ("a,b,c\n1,2,3\n", None, None, r"no user or item column; columns present: 'a', 'b', 'c'"),
    ("userId,movieId\n1,2\n", "user=userId,item=film", None, r"no column 'film' \(for item\); columns present"),
    ("userId,movieId,rating\n1,2,4\n1,3,good\n", None, None, r"line 3: 'good', a non-numeric rating"),
    ("userId,movieId,rating\n1,2,4\n1,3,nan\n", None, None, r"line 3: .*non-finite rating"),
    ("userId,movieId,rating\n1,2,inf\n", None, None, r"line 2: .*non-finite rating"),
    ("userId,movieId,rating\n1,2,4\n1,3,\n", None, None, r"line 3: an empty rating"),
    ("userId,movieId,rating\n1,,4\n", None, None, r"line 2: empty item id in column 'movieId'"),
    ("userId,movieId\nx,1\n ,2\n", None, None, r"line 3: empty user id"),
    ("userId;movieId;rating\n1;2;3\n", None, ",", r"one column with separator ','; it looks separated by ';'"),
    ("userId,movieId,rating\n1,2,3\n1,2\n", None, None, r"could not be parsed: Expected 3 columns, got 2"),
    ("user,item,timestamp\n1,2,soon\n", None, None, r"timestamp 'soon' .* is neither seconds nor a date"),
    ("only\n1\n2\n", None, None, "has one column"),
])
def test_user_errors_are_one_line(tmp_path, content, columns, sep, pattern):
    p = write(tmp_path, "bad.csv", content)
    with pytest.raises(DataError, match=pattern) as info:
        load_data(p, columns=columns, sep=sep)
    msg = str(info.value)
    assert "\n" not in msg and "bad.csv" in msg


def test_parse_columns():
    assert parse_columns("user=u, item=i,rating=r") == {"user": "u", "item": "i", "rating": "r"}
    assert parse_columns(None) == {}
    with pytest.raises(DataError, match="did you mean 'rating'"):
        parse_columns("user=u,item=i,ratign=r")
    with pytest.raises(DataError, match="has no '='"):
        parse_columns("user")
    with pytest.raises(DataError, match="gives no column for 'item'"):
        parse_columns("user=u,item=")


def test_missing_file_and_bad_parquet(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_data(tmp_path / "nope.csv")
    p = write(tmp_path, "x.parquet", b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file"):
        load_data(p)


def test_large_ids_fast_path_types(tmp_path):
    rng = np.random.default_rng(0)
    n = 5000
    df = pd.DataFrame({"userId": rng.integers(1, 300, n), "movieId": rng.integers(1, 900, n),
                       "rating": rng.integers(1, 11, n) / 2, "timestamp": rng.integers(0, 10**9, n)})
    p = tmp_path / "r.csv"
    df.to_csv(p, index=False)
    d = load_data(p)
    ref = df.drop_duplicates(["userId", "movieId"], keep=False)
    assert d.user_map.is_int and d.item_map.is_int
    f = d.to_frame()
    merged = f.merge(ref, left_on=["user", "item"], right_on=["userId", "movieId"])
    assert len(merged) == len(ref)
    assert np.allclose(merged["rating_x"], merged["rating_y"]) and (merged["timestamp_x"] == merged["timestamp_y"]).all()


def _dedup_reference(u, i, t, n_items):
    """The straightforward rule: sort by (pair, time) stably, keep the last row of each pair."""
    key = u.astype(np.int64) * n_items + i
    order = np.argsort(key, kind="stable") if t is None else np.lexsort((t, key))
    ks = key[order]
    last = np.ones(len(ks), dtype=bool)
    last[:-1] = ks[1:] != ks[:-1]
    return np.sort(order[last])


@pytest.mark.parametrize("seed", range(4))
def test_fast_dedup_matches_the_rule(seed):
    from ncf.data.interactions import dedup_latest

    rng = np.random.default_rng(seed)
    n = 3000
    u, i = rng.integers(0, 40, n), rng.integers(0, 30, n)
    t = rng.integers(0, 5, n)  # many ties
    for ts in (t, None):
        assert np.array_equal(dedup_latest(u, i, ts, 30), _dedup_reference(u, i, ts, 30))
    order = np.lexsort((i, u))
    su, si = u[order], i[order]
    first = np.ones(n, bool)
    first[1:] = (su[1:] != su[:-1]) | (si[1:] != si[:-1])
    su, si = su[first], si[first]  # sorted and unique: the fast path
    assert np.array_equal(dedup_latest(su, si, None, 30), np.arange(len(su)))


def test_timestamp_errors(tmp_path):
    p = write(tmp_path, "t.csv", "user,item,timestamp\n1,2,100\n1,3,\n")
    with pytest.raises(DataError, match=r"line 3: an empty timestamp in column 'timestamp'"):
        load_data(p)
    p = write(tmp_path, "t2.csv", "user,item,timestamp\n1,2,100\n1,3,1e300\n")
    with pytest.raises(DataError, match=r"line 3: timestamp '1e300'"):
        load_data(p)
    p = write(tmp_path, "t3.csv", "user,item,timestamp\n1,2,100.0\n1,3,7\n")
    assert load_data(p).timestamps.tolist() == [100, 7]
