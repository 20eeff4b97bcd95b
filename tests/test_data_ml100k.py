"""The real MovieLens 100K through the package-index mirror (needs the network once; cached afterwards)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ncf.data import load_data, summarize
from ncf.data.fetch import MARKER, fetch, ncf_home
from ncf.data.movielens import MIRROR_WHEEL


def _check(d) -> None:
    assert (d.n_users, d.n_items, len(d)) == (943, 1682, 100_000)
    assert d.rating_scale == (1.0, 5.0)
    assert set(np.unique(d.ratings).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert d.duplicates_dropped == 0 and d.n_catalog_items == 1682
    titles = d.titles(d.item_map.to_inner([1, 50, 1682]))
    assert titles[0] == "Toy Story (1995)" and titles[1].startswith("Star Wars")
    assert all(titles) and d.item_meta["title"].notna().all()
    f = d.to_frame().iloc[:3]
    assert f["user"].tolist() == [196, 186, 22] and f["item"].tolist() == [242, 302, 377]  # u.data's row order
    assert f["timestamp"].tolist() == [881250949, 891717742, 878887116]


@pytest.mark.network
@pytest.mark.slow
def test_ml100k_through_the_mirror(tmp_path, monkeypatch):
    cached = ncf_home() / "mirror" / MIRROR_WHEEL  # reuse the default cache's wheel when there is one
    monkeypatch.setenv("NCF_HOME", str(tmp_path / "home"))
    if cached.is_file():
        (tmp_path / "home" / "mirror").mkdir(parents=True)
        shutil.copyfile(cached, tmp_path / "home" / "mirror" / MIRROR_WHEEL)
    folder = fetch("ml-100k", source="mirror", progress=False, log=lambda m: None)
    record = json.loads((folder / MARKER).read_text())
    assert record["source"] == "mirror" and record["package"] == "recbole==1.2.1"
    _check(load_data("ml-100k"))


@pytest.mark.network
def test_ml100k_session_fixture(ml100k):
    _check(ml100k)
    s = summarize(ml100k)
    assert s["users"] == 943 and s["items"] == 1682 and s["ratings"] == 100_000
    assert s["rating_histogram"] == {"1": 6110, "2": 11370, "3": 27145, "4": 34174, "5": 21201}
    assert s["interactions_per_user"]["min"] == 20
    assert s["time_span"]["first"] == "1997-09-20" and s["time_span"]["last"] == "1998-04-22"
