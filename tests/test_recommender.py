"""Recommender over a saved bundle: raw ids, exclude-seen, filters, cold start, similar items, batch output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ncf
from ncf.data import Interactions
from ncf.errors import UnknownIdError, UsageError
from ncf.models import REGISTRY, Estimator
from ncf.serving import Recommender

N_CLUSTERS, PER_CLUSTER, USERS_PER_CLUSTER = 3, 10, 20
GENRES = ("Action", "Comedy", "Drama")


# ---------------------------------------------------------------- test-only models
class _SvdDot(Estimator):
    """Dot product of truncated-SVD factors of the training matrix (test only)."""

    def __init__(self, dim: int = 3) -> None:
        self.dim = dim

    def fit(self, train: Interactions, valid: Interactions | None = None) -> "_SvdDot":
        self._remember_data(train)
        u, s, vt = np.linalg.svd(train.csr().toarray(), full_matrices=False)
        self.user_factors_ = (u[:, :self.dim] * s[:self.dim]).astype(np.float32)
        self.item_factors_ = vt[:self.dim].T.astype(np.float32).copy()
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", self.user_factors_[users], self.item_factors_[items]).astype(np.float32)

    def score_users(self, users: np.ndarray) -> np.ndarray:
        return (self.user_factors_[np.asarray(users)] @ self.item_factors_.T).astype(np.float32)

    def item_embeddings(self) -> np.ndarray:
        return self.item_factors_

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {**super().state_arrays(), "user_factors_": self.user_factors_, "item_factors_": self.item_factors_}

    def load_state(self, arrays: dict[str, np.ndarray], meta: dict) -> None:
        super().load_state(arrays, meta)
        self.user_factors_, self.item_factors_ = arrays["user_factors_"], arrays["item_factors_"]


class _NoEmbedding(_SvdDot):
    """Same scores, but no item embeddings: similar() must fall back to co-occurrence."""

    item_embeddings = None  # type: ignore[assignment]


SvdDot, NoEmbedding = _SvdDot, _NoEmbedding
SvdDot.name, NoEmbedding.name = "_test_svd", "_test_noemb"


@pytest.fixture(scope="module", autouse=True)
def registered_test_models():
    """Make the test-only models loadable from bundles while this module runs (kept out of REGISTRY
    otherwise, so tests that iterate over every registered estimator never see them)."""
    added = [n for n in ("_test_svd", "_test_noemb") if n not in REGISTRY]
    REGISTRY.update({"_test_svd": SvdDot, "_test_noemb": NoEmbedding})
    yield
    for n in added:
        REGISTRY.pop(n, None)


def make_clustered(seed: int = 0) -> Interactions:
    """3 clusters of 10 items (genre = cluster); each user rates 6 items of one cluster only.

    Raw user ids are 101.., raw item ids 1001..; item metadata has title, genres, year.
    """
    rng = np.random.default_rng(seed)
    users, items = [], []
    for c in range(N_CLUSTERS):
        for u in range(USERS_PER_CLUSTER):
            chosen = rng.choice(PER_CLUSTER, size=6, replace=False) + c * PER_CLUSTER
            users += [101 + c * USERS_PER_CLUSTER + u] * 6
            items += list(chosen + 1001)
    n = len(users)
    raw_items = np.arange(1001, 1001 + N_CLUSTERS * PER_CLUSTER)
    meta = pd.DataFrame({"title": [f"Movie {i}" for i in raw_items],
                         "genres": [GENRES[(i - 1001) // PER_CLUSTER] for i in raw_items],
                         "year": [1990 + (i - 1001) % 10 for i in raw_items]}, index=raw_items)
    return Interactions.from_raw(np.array(users), np.array(items), np.full(n, 4.0), np.arange(n),
                                 item_meta_raw=meta, name="clustered")


def make_bundle(path: Path, cls: type = None, data: Interactions | None = None) -> Path:
    """Fit a test model on the clustered data and save it as a bundle."""
    data = data or make_clustered()
    (cls or SvdDot)(dim=3).fit(data).save(path, train=data)
    return path


@pytest.fixture(scope="module")
def data() -> Interactions:
    return make_clustered()


@pytest.fixture(scope="module")
def rec(tmp_path_factory, data) -> Recommender:
    return Recommender.from_path(make_bundle(tmp_path_factory.mktemp("b") / "model", data=data))


def _cluster(raw_item: int) -> int:
    return (raw_item - 1001) // PER_CLUSTER


# ---------------------------------------------------------------- recommend
def test_recommend_excludes_seen_and_stays_in_cluster(rec, data):
    ans = rec.recommend(101, k=4)
    assert ans["user"] == 101 and ans["policy"] == "model"
    seen = set(data.to_frame().query("user == 101")["item"])
    got = [e["item"] for e in ans["items"]]
    assert len(got) == 4 and not set(got) & seen
    assert {_cluster(i) for i in got} == {0}  # the 4 unseen items of its own cluster rank first
    assert set(got) == set(range(1001, 1011)) - seen
    scores = [e["score"] for e in ans["items"]]
    assert scores == sorted(scores, reverse=True)


def test_include_seen_returns_seen_items(rec, data):
    seen = set(data.to_frame().query("user == 101")["item"])
    got = {e["item"] for e in rec.recommend(101, k=10, exclude_seen=False)["items"]}
    assert got == set(range(1001, 1011))  # its whole cluster, seen items included
    assert seen <= got


def test_scores_match_independent_dot_product(rec):
    est = rec.estimator
    u = int(est.user_map_.to_inner([150])[0])
    ans = rec.score(150, [1001, 1030])
    expected = est.user_factors_[u] @ est.item_factors_[est.item_map_.to_inner([1001, 1030])].T
    assert ans["policy"] == "model"
    np.testing.assert_allclose([e["score"] for e in ans["items"]], expected, rtol=1e-5)


def test_titles_genres_year_present(rec):
    first = rec.recommend(101, k=1)["items"][0]
    i = first["item"]
    assert first["title"] == f"Movie {i}" and first["genres"] == [GENRES[_cluster(i)]]
    assert first["year"] == 1990 + (i - 1001) % 10


def test_genre_filter_and_candidates(rec):
    got = [e["item"] for e in rec.recommend(101, k=5, genre="drama")["items"]]
    assert len(got) == 5 and {_cluster(i) for i in got} == {2}
    got = [e["item"] for e in rec.recommend(101, k=10, candidates=[1021, 1005, "1030"])["items"]]
    assert set(got) <= {1021, 1005, 1030} and len(got) >= 2
    with pytest.raises(UsageError, match="unknown genre 'dramma'.*drama"):
        rec.recommend(101, genre="dramma")


def test_unknown_ids_named(rec):
    with pytest.raises(UnknownIdError, match="999999") as info:
        rec.recommend(101, candidates=[1001, 999999])
    assert info.value.ids == [999999]
    with pytest.raises(UnknownIdError, match="'nope'"):
        rec.similar("nope")
    with pytest.raises(UnknownIdError):
        rec.score(101, [1001, 5])


def test_cold_start_popular_and_liked_items(rec, data):
    ans = rec.recommend(424242, k=3)
    assert ans["policy"] == "popular"
    counts = data.item_counts()
    expected = data.item_map.to_raw(np.argsort(-counts, kind="stable")[:3]).tolist()
    assert [e["item"] for e in ans["items"]] == expected
    assert [e["score"] for e in ans["items"]] == counts[np.argsort(-counts, kind="stable")[:3]].tolist()
    liked = rec.recommend("stranger", k=5, liked_items=[1021, 1022])
    assert liked["policy"] == "liked-items"
    items = [e["item"] for e in liked["items"]]
    assert {_cluster(i) for i in items} == {2} and not {1021, 1022} & set(items)
    assert rec.score(424242, [1001])["policy"] == "popular"


def test_cold_start_error_policy(tmp_path):
    strict = Recommender.from_path(make_bundle(tmp_path / "m"), cold_start="error")
    with pytest.raises(UnknownIdError, match="424242"):
        strict.recommend(424242)


def test_k_bounds(rec):
    for bad in (0, -1, 1001, 2.5, True):
        with pytest.raises(UsageError, match="k must be"):
            rec.recommend(101, k=bad)
    assert len(rec.recommend(101, k=1000)["items"]) == 30 - 6  # fewer eligible items than k: no padding


def test_string_ids_coerced(rec):
    assert rec.recommend("101", k=3) == rec.recommend(101, k=3)
    assert rec.similar("1001", k=3)["item"] == 1001
    assert rec.recommend("99999999999999999999999", k=2)["policy"] == "popular"  # overflow: unknown, no crash


# ---------------------------------------------------------------- similar
@pytest.mark.parametrize("cls,source", [("_test_svd", "embeddings"), ("_test_noemb", "co-occurrence")])
def test_similar_returns_planted_neighbours(tmp_path, cls, source):
    r = Recommender.from_path(make_bundle(tmp_path / "m", REGISTRY[cls]))
    ans = r.similar(1012, k=9)
    assert ans["similarity"] == source and ans["title"] == "Movie 1012"
    got = [e["item"] for e in ans["items"]]
    assert set(got) == set(range(1011, 1021)) - {1012}  # the 9 other items of its cluster, itself excluded
    sims = [e["score"] for e in ans["items"]]
    assert all(-1.0001 <= s <= 1.0001 for s in sims) and sims == sorted(sims, reverse=True)


def test_cooccurrence_cosine_hand_computed(tmp_path):
    # users: a sees {1,2}, b sees {1,2,3}, c sees {3}: cos(1,2)=2/sqrt(2*2)=1, cos(1,3)=1/sqrt(2*2)=0.5
    d = Interactions.from_raw(np.array(["a", "a", "b", "b", "b", "c"]), np.array([1, 2, 1, 2, 3, 3]))
    r = Recommender.from_path(make_bundle(tmp_path / "m", NoEmbedding, data=d))
    ans = r.similar(1, k=2)
    assert [(e["item"], round(e["score"], 6)) for e in ans["items"]] == [(2, 1.0), (3, 0.5)]
    assert "title" not in ans["items"][0]  # no metadata: no title keys


# ---------------------------------------------------------------- batch
def test_batch_frame_matches_single_answers(rec):
    users = [101, 150, 424242, "160"]
    frame = rec.recommend_frame(users, k=3)
    assert list(frame.columns[:5]) == ["user", "rank", "item", "score", "policy"]
    assert {"title", "genres", "year"} <= set(frame.columns)
    for u in users:
        single = rec.recommend(u, k=3)
        sub = frame[frame["user"] == int(u)]
        assert sub["item"].tolist() == [e["item"] for e in single["items"]]
        assert sub["rank"].tolist() == [1, 2, 3] and set(sub["policy"]) == {single["policy"]}


def test_batch_all_users_fast(rec, data):
    many = rec.recommend_many(data.user_map.raw_ids, k=5)
    assert len(many) == data.n_users and all(m["policy"] == "model" for m in many)


def test_info(rec, data):
    info = rec.info()
    assert info["estimator"] == "_test_svd" and info["n_users"] == data.n_users
    assert info["data"]["fingerprint"] == data.fingerprint()
    assert info["similarity"] == "embeddings" and info["genres"] == ["action", "comedy", "drama"]
    assert info["versions"]["trained_with"]["ncf"] == ncf.__version__


# ---------------------------------------------------------------- CLI
def _cli(args: list[str], capsys) -> tuple[int, str, str]:
    from ncf.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_recommend_and_similar(tmp_path, capsys):
    run = tmp_path / "run"
    make_bundle(run / "model")
    code, out, _ = _cli(["recommend", str(run), "--user", "101", "-k", "3"], capsys)
    assert code == 0 and "user 101  (policy: model)" in out and "Movie 10" in out
    lines = out.splitlines()
    assert lines[1].split()[:3] == ["#", "item", "score"] and len(lines) == 5
    code, out, _ = _cli(["recommend", str(run), "--user", "101", "-k", "3", "--json"], capsys)
    assert json.loads(out) == Recommender.from_path(run).recommend(101, k=3)
    code, out, _ = _cli(["similar", str(run), "--item", "1012", "-k", "2", "--json"], capsys)
    assert {e["item"] for e in json.loads(out)["items"]} <= set(range(1011, 1021))
    code, _, err = _cli(["similar", str(run), "--item", "4040"], capsys)
    assert code == 2 and err.startswith("error: unknown item id(s): 4040") and err.count("\n") == 1
    code, _, err = _cli(["recommend", str(run)], capsys)
    assert code == 2 and "exactly one of --user and --users-file" in err


@pytest.mark.parametrize("content", ["101\n150\nghost\n", "user\n101\n150\nghost\n", "user,rating\n101,4\n150,3\nghost,1\n"])
def test_cli_batch_users_file(tmp_path, capsys, content):
    run = tmp_path / "run"
    make_bundle(run / "model")
    users = tmp_path / "users.csv"
    users.write_text(content)
    out_file = tmp_path / "recs.parquet"
    code, out, _ = _cli(["recommend", str(run), "--users-file", str(users), "-k", "2", "--output", str(out_file)], capsys)
    assert code == 0 and "wrote 6 rows" in out
    frame = pd.read_parquet(out_file)
    assert frame["user"].tolist() == ["101", "101", "150", "150", "ghost", "ghost"]
    assert frame["policy"].tolist() == ["model"] * 4 + ["popular"] * 2
    assert frame["title"].str.startswith("Movie").all()


def test_precomputed_answers_equal_model_answers(tmp_path, data):
    for cls in ("_test_svd", "_test_noemb"):
        bundle = make_bundle(tmp_path / cls, REGISTRY[cls], data=data)
        plain, cached = Recommender.from_path(bundle), Recommender.from_path(bundle)
        assert cached.precompute(k=8) == {"users": True, "items": True}
        for u in (101, 130, 160, "ghost"):
            for k in (1, 8, 9):  # 9 > cached k: falls back to the model
                a, b = plain.recommend(u, k=k), cached.recommend(u, k=k)
                assert [e["item"] for e in a["items"]] == [e["item"] for e in b["items"]]
                np.testing.assert_allclose([e["score"] for e in a["items"]], [e["score"] for e in b["items"]], rtol=1e-5)
        for i in (1001, 1015, 1030):
            a, b = plain.similar(i, k=5), cached.similar(i, k=5)  # near-ties may swap: compare scores
            np.testing.assert_allclose([e["score"] for e in a["items"]], [e["score"] for e in b["items"]], atol=1e-5)
            assert {_cluster(e["item"]) for e in b["items"]} == {_cluster(i)}
        assert cached.recommend(101, k=3, exclude_seen=False) == plain.recommend(101, k=3, exclude_seen=False)
    assert Recommender.from_path(bundle).precompute(max_cells=10) == {"users": False, "items": False}


def test_recommend_json_equals_plain_encoding(tmp_path, data):
    from ncf.serving.recommender import _dumps

    r = Recommender.from_path(make_bundle(tmp_path / "m", data=data))
    r.precompute(k=5)
    for u in (101, "101", 160, "ghost", "99999999999999999999999"):
        for k in (1, 5, 7):
            fast = r.recommend_json(u, k=k)
            assert fast == _dumps(r.recommend(u, k=k)) and json.loads(fast)["items"]
    assert r.recommend_json(101, k=3, exclude_seen=False) == _dumps(r.recommend(101, k=3, exclude_seen=False))
