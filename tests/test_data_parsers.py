"""Each MovieLens release format, parsed from small hand-written files in the exact real format."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf.data import load_data
from ncf.data.movielens import RELEASES, detect_release, get_release
from ncf.errors import DataError

FIX = Path(__file__).parent / "fixtures" / "movielens"


@pytest.fixture(autouse=True)
def _home(tmp_path, monkeypatch):
    monkeypatch.setenv("NCF_HOME", str(tmp_path / "home"))


def frame(d):
    return d.to_frame()


def meta_by_raw(d) -> pd.DataFrame:
    m = d.item_meta.copy()
    m.index = d.item_map.raw_ids
    return m


def test_ml100k_u_data_and_latin1_u_item():
    d = load_data(FIX / "ml-100k")
    f = frame(d)
    assert f["user"].tolist() == [196, 186, 22, 244, 196, 22]  # file order kept
    assert f["item"].tolist() == [242, 302, 377, 51, 377, 242]
    assert f["rating"].tolist() == [3, 3, 1, 2, 5, 4]
    assert f["timestamp"].tolist() == [881250949, 891717742, 878887116, 880606923, 881250949, 878887117]
    assert d.name == "ml-100k" and d.rating_scale == (1.0, 5.0)
    assert d.n_catalog_items == 6  # u.item lists movies nobody rated here
    m = meta_by_raw(d)
    assert m.loc[242, "title"] == "Kolya (1996)" and m.loc[242, "genres"] == "Comedy" and m.loc[242, "year"] == 1996
    assert m.loc[302, "genres"] == "Crime|Film-Noir|Mystery|Thriller"
    assert m.loc[377, "genres"] == "Children's|Comedy"
    assert d.titles(d.item_map.to_inner([51])) == ["Legends of the Fall (1994)"]


def test_ml100k_item_meta_reads_latin1_and_unknown_year(tmp_path):
    from ncf.data.parsers import read_u_item

    m = read_u_item(FIX / "ml-100k" / "u.item")
    assert m.loc[1449, "title"] == "Misérables, Les (1995)"
    assert m.loc[1449, "genres"] == "Drama|War"
    assert m.loc[267, "title"] == "unknown" and m.loc[267, "genres"] == "unknown"
    assert pd.isna(m.loc[267, "year"])
    assert m.index.dtype == np.int64 and len(m) == 6


def test_ml1m_dat_latin1_titles_with_colons():
    d = load_data(FIX / "ml-1m")
    f = frame(d)
    assert f["user"].tolist() == [1, 1, 2, 2, 3]
    assert f["item"].tolist() == [1193, 661, 1193, 3578, 260]
    assert f["rating"].tolist() == [5, 3, 4, 1, 5]
    assert f["timestamp"].tolist()[0] == 978300760
    assert d.name == "ml-1m" and d.rating_scale == (1.0, 5.0) and d.n_catalog_items == 5
    m = meta_by_raw(d)
    assert m.loc[260, "title"] == "Star Wars: Episode IV - A New Hope (1977)"
    assert m.loc[260, "genres"] == "Action|Adventure|Fantasy|Sci-Fi" and m.loc[260, "year"] == 1977
    from ncf.data.parsers import read_movies_dat

    allm = read_movies_dat(FIX / "ml-1m" / "movies.dat", "latin-1")
    assert allm.loc[1936, "title"] == "Misérables, Les (1998)"


def test_ml10m_half_stars_utf8_and_no_genres():
    d = load_data(FIX / "ml-10m")
    f = frame(d)
    assert f["rating"].tolist() == [5.0, 4.5, 0.5, 3.5]
    assert f["item"].tolist() == [122, 185, 122, 64997]
    assert d.name == "ml-10m" and d.rating_scale == (0.5, 5.0)
    from ncf.data.parsers import read_movies_dat

    m = read_movies_dat(FIX / "ml-10m" / "movies.dat", "utf-8")
    assert m.loc[4466, "title"] == "Misérables, Les (1935)"
    assert m.loc[8606, "genres"] == ""  # "(no genres listed)"
    assert m.loc[27751, "title"] == "'Salem's Lot (2004)"


def test_csv_release_quoted_titles_half_stars():
    d = load_data(FIX / "ml-latest-small")
    f = frame(d)
    assert f["user"].tolist() == [1, 1, 1, 2, 2, 3]
    assert f["item"].tolist() == [1, 3, 11, 1, 114074, 176329]
    assert f["rating"].tolist() == [4.0, 4.0, 2.5, 0.5, 5.0, 3.5]
    assert f["timestamp"].tolist()[-1] == 1569791380
    assert d.rating_scale == (0.5, 5.0) and d.n_catalog_items == 8
    m = meta_by_raw(d)
    assert m.loc[11, "title"] == "American President, The (1995)"
    assert m.loc[114074, "title"] == '"Great Performances" Cats (1998)'
    assert m.loc[176329, "title"] == "Misérables (2019)"
    from ncf.data.parsers import read_movies_csv

    allm = read_movies_csv(FIX / "ml-latest-small" / "movies.csv")
    assert allm.loc[181413, "genres"] == ""
    assert allm.loc[181413, "title"].startswith("Too Funny to Fail: The Life")
    assert allm.loc[160980, "title"] == "Sully, Chesley (2016)"
    assert allm.loc[171749, "year"] == 2006  # "(2006–2007)"


def test_recbole_mirror_format_titles_rebuilt():
    d = load_data(FIX / "recbole-ml-100k")
    f = frame(d)
    assert d.name == "ml-100k"
    assert f["user"].tolist() == [196, 186, 22] and f["item"].tolist() == [242, 302, 267]
    assert f["timestamp"].dtype == np.int64 and f["timestamp"].tolist()[0] == 881250949
    m = meta_by_raw(d)
    assert m.loc[242, "title"] == "Kolya (1996)"
    assert m.loc[302, "genres"] == "Crime|Film-Noir|Mystery|Thriller"
    assert m.loc[267, "title"] == "unknown" and pd.isna(m.loc[267, "year"])


def test_zip_of_a_release_and_parent_folder(tmp_path):
    z = tmp_path / "ml-latest-small.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for p in (FIX / "ml-latest-small").iterdir():
            zf.write(p, f"ml-latest-small/{p.name}")
    d = load_data(z)
    assert d.name == "ml-latest-small" and len(d) == 6
    assert load_data(z).fingerprint() == d.fingerprint()  # second load reuses the extraction
    # a folder that holds the release folder
    parent = tmp_path / "data"
    shutil.copytree(FIX / "ml-1m", parent / "ml-1m")
    assert len(load_data(parent)) == 5


def test_corrupt_zip_is_a_data_error(tmp_path):
    z = tmp_path / "ml-100k.zip"
    z.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataError, match="not a valid zip"):
        load_data(z)


def test_rating_outside_declared_scale(tmp_path):
    folder = tmp_path / "ml-1m"
    shutil.copytree(FIX / "ml-1m", folder)
    (folder / "ratings.dat").write_bytes(b"1::1193::5::978300760\n1::661::4.5::978302109\n")
    with pytest.raises(DataError, match=r"line 2: rating 4.5 is outside the scale 1..5 in steps of 1"):
        load_data(folder)
    (folder / "ratings.dat").write_bytes(b"1::1193::6::978300760\n")
    with pytest.raises(DataError, match="rating 6 is outside"):
        load_data(folder)


def test_registry_and_detection():
    assert set(RELEASES) == {"ml-latest-small", "ml-latest", "ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m",
                             "ml-32m"}
    for r in RELEASES.values():
        assert r.url() == f"https://files.grouplens.org/datasets/movielens/{r.name}.zip"
        assert r.md5 is None or len(r.md5) == 32
    assert get_release("25m").name == "ml-25m"
    with pytest.raises(DataError, match="did you mean 'ml-1m'"):
        get_release("ml-1n")
    assert detect_release(FIX / "ml-10m").name == "ml-10m"
    assert detect_release(FIX / "ml-1m").name == "ml-1m"
    assert detect_release(FIX / "ml-100k").name == "ml-100k"
    assert detect_release(FIX / "ml-latest-small").fmt == "csv"
    assert detect_release(FIX) is None


def test_unknown_name_suggests_closest():
    with pytest.raises(DataError, match="unknown dataset 'ml-25k'; did you mean"):
        load_data("ml-25k")
    with pytest.raises(DataError, match="does not exist"):
        load_data("no/such/file.csv")


def test_bom_and_crlf_in_release_files(tmp_path):
    folder = tmp_path / "ml-1m"
    shutil.copytree(FIX / "ml-1m", folder)
    for name in ("ratings.dat", "movies.dat"):
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(b"\xef\xbb\xbf" + data.replace(b"\n", b"\r\n"))
    d = load_data(folder)
    assert d.to_frame()["user"].tolist() == [1, 1, 2, 2, 3] and d.user_map.is_int
    assert d.titles(d.item_map.to_inner([3578])) == ["Gladiator (2000)"]
    assert meta_by_raw(d).loc[260, "genres"] == "Action|Adventure|Fantasy|Sci-Fi"
    folder = tmp_path / "ml-100k"
    shutil.copytree(FIX / "ml-100k", folder)
    item = (folder / "u.item").read_bytes().decode("latin-1")
    (folder / "u.item").write_bytes(b"\xef\xbb\xbf" + item.replace("\n", "\r\n").encode("utf-8"))
    (folder / "u.data").write_bytes(b"\xef\xbb\xbf" + (folder / "u.data").read_bytes().replace(b"\n", b"\r\n"))
    d = load_data(folder)
    assert d.to_frame()["user"].tolist()[:2] == [196, 186]
    from ncf.data.parsers import read_u_item

    m = read_u_item(folder / "u.item")
    assert m.loc[1449, "title"] == "Misérables, Les (1995)" and m.loc[1449, "genres"] == "Drama|War"
