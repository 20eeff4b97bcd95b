import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ncf.data import IdMap, Interactions
from ncf.errors import UnknownIdError


def test_from_raw_maps_contiguous_ids_and_keeps_row_order():
    data = Interactions.from_raw([10, 30, 10, 20], ["b", "a", "a", "c"], [1, 2, 3, 4], [5, 6, 7, 8])
    assert data.n_users == 3 and data.n_items == 3
    assert data.user_ids.dtype == np.int32 and data.item_ids.dtype == np.int32
    assert data.user_map.to_raw(data.user_ids).tolist() == [10, 30, 10, 20]
    assert data.item_map.to_raw(data.item_ids).tolist() == ["b", "a", "a", "c"]
    assert data.ratings.tolist() == [1, 2, 3, 4]


def test_duplicates_keep_latest_by_timestamp_then_last_row():
    data = Interactions.from_raw([1, 1, 1, 2, 2], [7, 7, 7, 7, 7], [1, 5, 3, 2, 4], [100, 300, 200, 50, 50])
    assert data.duplicates_dropped == 3
    frame = data.to_frame()
    assert frame.to_dict("records") == [
        {"user": 1, "item": 7, "rating": 5.0, "timestamp": 300},
        {"user": 2, "item": 7, "rating": 4.0, "timestamp": 50},  # tie on time: the last row wins
    ]


def test_csr_and_subset_share_id_space():
    data = Interactions.from_raw([1, 2, 2, 3], [1, 1, 2, 3], [5, 4, 3, 2])
    part = data.subset(np.array([0, 3]))
    assert part.n_users == 3 and part.n_items == 3 and len(part) == 2
    m = data.csr("ratings").toarray()
    assert m.tolist() == [[5, 0, 0], [4, 3, 0], [0, 0, 2]]


def test_unknown_raw_id_is_named():
    m = IdMap(np.array([3, 1, 2]), kind="user")
    with pytest.raises(UnknownIdError, match="unknown user id.*99"):
        m.to_inner([1, 99])
    assert m.lookup([1, 99]).tolist() == [1, -1]


@settings(max_examples=60, deadline=None)
@given(raw=st.one_of(st.lists(st.integers(-2**62, 2**62), min_size=1, max_size=50),
                 st.lists(st.text(min_size=0, max_size=8), min_size=1, max_size=50)))
@example(raw=["\x00", "a\x00", "a"])  # NumPy's fixed-width str dtype would drop trailing NULs (found by hypothesis)
def test_idmap_round_trip_property(raw, tmp_path_factory):
    idmap, inner = IdMap.fit(np.asarray(raw, dtype=object if isinstance(raw[0], str) else np.int64))
    assert inner.min() == 0 and inner.max() == len(idmap) - 1
    back = idmap.to_raw(inner).tolist()
    assert back == list(raw)
    assert idmap.to_inner(raw).tolist() == inner.tolist()
    d = tmp_path_factory.mktemp("idmap")
    for suffix in (".json", ".parquet"):
        idmap.save(d / f"m{suffix}")
        again = IdMap.load(d / f"m{suffix}")
        assert again == idmap
        assert again.to_raw(inner).tolist() == list(raw)


def test_item_meta_follows_inner_ids_and_catalog_counts_unrated():
    meta = pd.DataFrame({"title": ["A", "B", "C"]}, index=pd.Index([5, 6, 7]))
    data = Interactions.from_raw([1, 1], [7, 5], item_meta_raw=meta)
    assert data.n_catalog_items == 3
    assert data.titles(data.item_ids) == ["C", "A"]


def test_idmap_json_is_plain_json(tmp_path):
    m = IdMap(np.array(["x", "y"]), kind="item")
    m.save(tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text())["raw_ids"] == ["x", "y"]
