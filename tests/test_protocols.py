"""Protocols against slow, obvious references: sampled and full ranking (pessimistic ties), rating."""

import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ncf.evaluation import evaluate_full, evaluate_rating, evaluate_sampled
from ncf.sampling import eval_candidates
from ncf.split import split_data
from tests.conftest import make_lowrank


class MatrixModel:
    """A 'model' whose scores are a fixed users x items matrix."""

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float32)
        self.n_users_, self.n_items_ = self.scores.shape
        self.item_popularity_ = np.arange(self.n_items_, dtype=np.float32)

    def predict(self, users, items):
        return self.scores[np.asarray(users), np.asarray(items)]

    def score_users(self, users):
        return self.scores[np.asarray(users)]


@pytest.fixture(scope="module")
def data():
    return make_lowrank(n_users=80, n_items=120, density=0.1, seed=4)


def _ref_rank_metrics(positions_per_user, k):
    """Reference metrics from explicit 0-based positions of each user's relevant items."""
    hr, nd, rec, mrr = [], [], [], []
    for pos in positions_per_user:
        pos = sorted(pos)
        top = [p for p in pos if p < k]
        hr.append(1.0 if top else 0.0)
        dcg = sum(1 / np.log2(p + 2) for p in top)
        idcg = sum(1 / np.log2(j + 2) for j in range(min(len(pos), k)))
        nd.append(dcg / idcg)
        rec.append(len(top) / len(pos))
        mrr.append(1 / (pos[0] + 1))
    return np.mean(hr), np.mean(nd), np.mean(rec), np.mean(mrr)


def test_sampled_oracle_constant_and_reference(data):
    s = split_data(data, "loo")
    cand = eval_candidates(s.test, s.all_keys(), n=50, seed=0)
    oracle = np.zeros((data.n_users, data.n_items))
    oracle[s.test.user_ids, s.test.item_ids] = 1.0
    res = evaluate_sampled(MatrixModel(oracle), s.test, cand, ks=(1, 10))
    assert res["hr@1"] == res["hr@10"] == res["ndcg@10"] == res["mrr"] == res["auc"] == 1.0
    const = evaluate_sampled(MatrixModel(np.ones((data.n_users, data.n_items))), s.test, cand)
    assert const["hr@10"] == 0.0 and const["auc"] == 0.5  # ties count against the model; AUC ties = 1/2
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, size=(data.n_users, data.n_items)).astype(float)  # plenty of ties
    res = evaluate_sampled(MatrixModel(scores), s.test, cand, ks=(5, 10))
    positions, aucs = [], []
    for r, (u, i) in enumerate(zip(s.test.user_ids, s.test.item_ids)):
        others = scores[u, cand[r]]
        positions.append([int((others >= scores[u, i]).sum())])
        aucs.append(roc_auc_score([1] + [0] * len(others), np.r_[scores[u, i], others]))
    for k in (5, 10):
        hr, nd, _, mrr = _ref_rank_metrics(positions, k)
        assert res[f"hr@{k}"] == pytest.approx(hr, abs=1e-9)
        assert res[f"ndcg@{k}"] == pytest.approx(nd, abs=1e-9)
    assert res["mrr"] == pytest.approx(mrr, abs=1e-9)
    assert res["auc"] == pytest.approx(np.mean(aucs), abs=1e-9)


@pytest.mark.parametrize("method", ["loo", "random"])
def test_full_ranking_matches_slow_reference(data, method):
    s = split_data(data, method, seed=1)
    rng = np.random.default_rng(1)
    scores = rng.integers(0, 15, size=(data.n_users, data.n_items)).astype(float)
    scores[5, :] = np.nan  # NaN scores count as -inf
    model = MatrixModel(scores)
    excl = s.train_valid().csr().toarray() > 0
    rel = s.test.csr().toarray() > 0
    res = evaluate_full(model, s.test, s.train_valid().csr(), ks=(5, 10), batch_users=7)
    positions, aucs, tops = [], [], []
    for u in np.flatnonzero(rel.any(axis=1)):
        sc = np.where(np.isnan(scores[u]), -1e9, scores[u])
        ok = ~excl[u] | rel[u]
        items = np.flatnonzero(ok)
        # best first; among equal scores non-relevant first, then relevant by item id
        order = items[np.lexsort((items, rel[u][items], -sc[items]))]
        positions.append([j for j, it in enumerate(order) if rel[u, it]])
        aucs.append(roc_auc_score(rel[u][items], sc[items]))
        tops.append(order[:10])
    for k in (5, 10):
        hr, nd, rec, mrr = _ref_rank_metrics(positions, k)
        assert res[f"hr@{k}"] == pytest.approx(hr, abs=1e-9)
        assert res[f"ndcg@{k}"] == pytest.approx(nd, abs=1e-9)
        assert res[f"recall@{k}"] == pytest.approx(rec, abs=1e-9)
        prec = np.mean([sum(p < k for p in pos) / k for pos in positions])
        assert res[f"precision@{k}"] == pytest.approx(prec, abs=1e-9)
    assert res["mrr"] == pytest.approx(mrr, abs=1e-9)
    assert res["auc"] == pytest.approx(np.mean(aucs), abs=1e-9)
    assert 0 < res["coverage@10"] <= 1


def test_full_ranking_oracle_is_perfect(data):
    s = split_data(data, "random", seed=2)
    oracle = np.zeros((data.n_users, data.n_items))
    oracle[s.test.user_ids, s.test.item_ids] = 1.0
    res = evaluate_full(MatrixModel(oracle), s.test, s.train_valid().csr(), ks=(10,))
    assert res["ndcg@10"] == pytest.approx(1.0) and res["mrr"] == 1.0 and res["auc"] == 1.0
    assert res["map@10"] == pytest.approx(1.0)


def test_rating_protocol_clips_to_scale(data):
    s = split_data(data, "random", seed=0)
    res = evaluate_rating(MatrixModel(np.full((data.n_users, data.n_items), 10.0)), s.test)
    assert res["mae"] == pytest.approx(np.mean(5.0 - s.test.ratings))
    assert res["rmse"] == pytest.approx(np.sqrt(np.mean((5.0 - s.test.ratings) ** 2)))


@pytest.mark.slow
def test_full_ranking_ml1m_sized_is_fast():
    from ncf.data import Interactions

    rng = np.random.default_rng(0)
    n_users, n_items = 6040, 3706
    u = rng.integers(0, n_users, 400_000)
    i = rng.integers(0, n_items, 400_000)
    data = Interactions.from_raw(u, i, None, rng.integers(0, 10**6, 400_000))
    s = split_data(data, "loo")

    class Factors(MatrixModel):
        def __init__(self):
            self.p = rng.normal(size=(data.n_users, 32)).astype(np.float32)
            self.q = rng.normal(size=(data.n_items, 32)).astype(np.float32)
            self.n_users_, self.n_items_ = data.n_users, data.n_items
            self.item_popularity_ = data.item_counts().astype(np.float32)

        def score_users(self, users):
            return self.p[users] @ self.q.T

    t = time.perf_counter()
    res = evaluate_full(Factors(), s.test, s.train_valid().csr())
    dt = time.perf_counter() - t
    print(f"\nfull ranking, {len(s.test)} users x {data.n_items} items: {dt:.2f} s")
    assert 0 <= res["hr@10"] <= 1


def _csv(tmp_path):
    data = make_lowrank(n_users=60, n_items=80, density=0.15, seed=3)
    path = tmp_path / "ratings.csv"
    data.to_frame().rename(columns={"user": "userId", "item": "movieId"}).to_csv(path, index=False)
    return path


def test_cli_evaluate_json_and_seeds(tmp_path, capsys):
    import json

    from ncf.cli import main

    path = _csv(tmp_path)
    out = tmp_path / "res.json"
    main(["evaluate", "--data", str(path), "--task", "ranking", "--split", "loo", "--models", "pop,ease",
          "--seeds", "2", "--candidates", "20", "--json", str(out)])
    text = capsys.readouterr().out
    assert "sampled" in text and "full" in text and "±" in text
    res = json.loads(out.read_text())
    assert set(res) == {"pop", "ease"} and set(res["ease"]) == {"sampled", "full"}
    assert 0 <= res["ease"]["sampled"]["hr@10"] <= 1 and "hr@10_std" in res["ease"]["sampled"]
    main(["evaluate", "--data", str(path), "--task", "rating", "--split", "kfold", "--folds", "3",
          "--models", "global_mean,bias", "--json", str(out)])
    res = json.loads(out.read_text())
    assert res["bias"]["rating"]["rmse"] < res["global_mean"]["rating"]["rmse"]


def test_cli_split_audit_and_errors(tmp_path, capsys):
    from ncf.cli import main

    path = _csv(tmp_path)
    main(["split", "--data", str(path), "--split", "loo"])
    text = capsys.readouterr().out
    assert "tied_users" in text and "pairs_train_test        0" in text
    for argv, needle in ((["evaluate", "--data", str(path), "--models", "pp"], "did you mean 'pop'"),
                         (["evaluate", "--data", str(path), "--task", "rating", "--models", "pop"], "does not support"),
                         (["split", "--data", str(path), "--split", "loo", "--tie-break", "x"], "tie_break")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1


def test_tables_mean_std_and_format():
    from ncf.evaluation.tables import aggregate, format_table, to_json

    runs = [{"m": {"sampled": {"hr@10": v, "ndcg@10": v / 2}}} for v in (0.2, 0.4, 0.6)]
    mean, std = aggregate(runs)
    assert mean["m"]["sampled"]["hr@10"] == pytest.approx(0.4)
    assert std["m"]["sampled"]["hr@10"] == pytest.approx(0.2)  # sample std (ddof=1)
    js = to_json(runs)
    assert js["m"]["sampled"]["hr@10_std"] == pytest.approx(0.2) and js["m"]["sampled"]["n_seeds"] == 3
    text = format_table(runs)
    assert "0.4000±0.2000" in text and text.splitlines()[0].startswith("model")
