"""Neural estimators: planted structure is recovered, every parameter matters, determinism, bundles,
NeuMF pretraining, resume from a checkpoint."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import ncf
from ncf.errors import BundleError, DataError, UsageError
from ncf.models import REGISTRY
from ncf.models.ncf_estimator import GMFEstimator, MLPEstimator, NeuMFEstimator, local_candidates, rank_metrics
from ncf.sampling import eval_candidates, positive_keys
from ncf.split import split_data
from tests.conftest import fit_crash_resume, make_lowrank

SMALL = {"mf": {"factors": 8}, "gmf": {"factors": 8}, "mlp": {"layers": [16, 8]},
         "neumf": {"factors": 8, "layers": [16, 8]}}
FAST = {"epochs": 8, "batch_size": 256, "lr": 0.02, "val_candidates": 50}


@pytest.fixture(scope="module")
def data():
    return make_lowrank()


@pytest.fixture(scope="module")
def loo(data):
    return split_data(data, "loo", seed=0)


@pytest.fixture(scope="module")
def rsplit(data):
    return split_data(data, "random", seed=0)


def _hr(est, test, cands):
    pos = est.predict(test.user_ids, test.item_ids)
    neg = est.predict(np.repeat(test.user_ids, cands.shape[1]), cands.ravel()).reshape(cands.shape)
    return rank_metrics(pos, neg, 10)["hr"]


@pytest.mark.parametrize("name", ["mf", "gmf", "mlp", "neumf"])
def test_ranking_recovers_planted_structure(loo, name):
    cands = eval_candidates(loo.test, loo.all_keys(), n=50, seed=0).astype(np.int64)
    pop = loo.train.item_counts().astype(float)
    pop_hr = rank_metrics(pop[loo.test.item_ids], pop[cands], 10)["hr"]  # 0.34 on this data
    est = REGISTRY[name](**SMALL[name], **FAST).fit(loo.train, loo.valid)
    hr = _hr(est, loo.test, cands)
    assert hr > pop_hr + 0.12, (hr, pop_hr)
    h = est.history_
    assert list(h.columns) == ["epoch", "train_loss", "train_loss_eval", "val_loss", "val_hr@10", "val_ndcg@10",
                               "lr", "seconds", "samples_per_s"]
    assert h["epoch"].tolist() == list(range(1, len(h) + 1))
    assert est.best_epoch_ == int(h["epoch"][h["val_ndcg@10"].idxmax()])
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0]


@pytest.mark.parametrize("name", ["mf", "neumf"])
def test_softmax_loss_recovers_planted_structure(loo, name):
    """Sampled softmax (rows = a positive with its 8 negatives) learns the planted structure as well."""
    cands = eval_candidates(loo.test, loo.all_keys(), n=50, seed=0).astype(np.int64)
    pop = loo.train.item_counts().astype(float)
    pop_hr = rank_metrics(pop[loo.test.item_ids], pop[cands], 10)["hr"]
    est = REGISTRY[name](**SMALL[name], **(FAST | {"batch_size": 64}), loss="softmax", n_negatives=8).fit(loo.train, loo.valid)
    assert _hr(est, loo.test, cands) > pop_hr + 0.12
    h = est.history_
    assert h["train_loss"].iloc[-1] < h["train_loss"].iloc[0] < np.log(9) + 0.05  # starts near log(1 + k)
    assert np.isfinite(h["val_loss"]).all() and np.isfinite(h["train_loss_eval"]).all()


@pytest.mark.parametrize("name", ["mf", "gmf", "mlp", "neumf"])
def test_rating_beats_global_mean(rsplit, name):
    est = REGISTRY[name](task="rating", **SMALL[name], epochs=10, batch_size=256, lr=0.01, l2=1e-4)
    est.fit(rsplit.train, rsplit.valid)
    t = rsplit.test
    pred = est.predict(t.user_ids, t.item_ids)
    rmse = np.sqrt(np.mean((pred - t.ratings) ** 2))
    base = np.sqrt(np.mean((rsplit.train.ratings.mean() - t.ratings) ** 2))  # 0.82
    assert rmse < base - 0.12, (rmse, base)
    assert pred.min() >= 1.0 and pred.max() <= 5.0
    assert est.global_mean_ == pytest.approx(float(rsplit.train.ratings.mean()))
    assert {"val_rmse", "val_mae", "train_loss_eval"} <= set(est.history_.columns)
    # val_rmse in history is the RMSE of predict() on the validation data with the kept (best) weights
    v = rsplit.valid
    best = est.history_.set_index("epoch").loc[est.best_epoch_, "val_rmse"]
    assert np.sqrt(np.mean((est.predict(v.user_ids, v.item_ids) - v.ratings) ** 2)) == pytest.approx(best, rel=1e-5)


def test_minmax_relu_mirrors_keras_seed(rsplit):
    est = NeuMFEstimator(factors=8, layers=[16, 8], batch_norm=True, dropout=0.2, output_activation="relu",
                         task="rating", loss="mae", target_scaling="minmax", epochs=3, batch_size=128).fit(rsplit.train)
    pred = est.predict(rsplit.test.user_ids, rsplit.test.item_ids)
    assert pred.min() >= 1.0 and pred.max() <= 5.0 and pred.std() > 0
    assert np.isnan(est.history_["val_loss"]).all()  # no validation data


BASE = {"factors": 8, "layers": [16, 8], "epochs": 2, "batch_size": 512, "lr": 0.01, "val_candidates": 30}
CHANGES = [("factors", 4), ("layers", [16, 4]), ("dropout", 0.3), ("batch_norm", True), ("pretrain", True),
           ("alpha", 0.9, {"pretrain": True}), ("biases", True), ("output_activation", "relu"), ("loss", "bpr"),
           ("loss", "softmax"),
           ("lr", 0.003), ("optimizer", "sgd"), ("optimizer", "adagrad"), ("optimizer", "adamw", {"weight_decay": 0.1}),
           ("weight_decay", 0.01), ("l2", 0.01), ("lr_schedule", "none"), ("lr_schedule", "step", {"epochs": 3}),
           ("epochs", 3), ("batch_size", 100), ("n_negatives", 2), ("positive_threshold", 4.0), ("seed", 1),
           ("task", "rating")]
_REFS: dict = {}


def _ref(split, extra: dict):
    key = repr(sorted(extra.items()))
    if key not in _REFS:
        _REFS[key] = NeuMFEstimator(**(BASE | extra)).fit(split.train, split.valid)
    return _REFS[key]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: f"{c[0]}={c[1]}")
def test_every_parameter_matters(loo, change):
    param, value = change[:2]
    extra = change[2] if len(change) > 2 else {}
    ref = _ref(loo, extra)
    alt = NeuMFEstimator(**(BASE | extra | {param: value})).fit(loo.train, loo.valid)
    u, i = loo.test.user_ids, loo.test.item_ids
    assert not np.allclose(ref.predict(u, i), alt.predict(u, i)), param


def test_early_stopping_and_patience(loo):
    kw = SMALL["gmf"] | {"epochs": 6, "lr": 0.1, "batch_size": 512, "val_candidates": 30}
    e = GMFEstimator(**kw, early_stopping="val_loss", patience=1).fit(loo.train, loo.valid)
    h = e.history_
    assert e.best_epoch_ == int(h["epoch"][h["val_loss"].idxmin()])
    assert len(h) == e.best_epoch_ + 1 or len(h) == 6  # stops one epoch after the best (patience 1)
    e2 = GMFEstimator(**kw, early_stopping="val_loss", patience=None).fit(loo.train, loo.valid)
    assert len(e2.history_) == 6 and e2.best_epoch_ == e.best_epoch_  # no patience: all epochs, best restored
    e3 = GMFEstimator(**kw, early_stopping=None).fit(loo.train, loo.valid)
    assert e3.best_epoch_ == 6  # no monitoring: the last weights are kept
    u, i = loo.test.user_ids, loo.test.item_ids
    np.testing.assert_array_equal(e.predict(u, i), e2.predict(u, i))  # the same best weights
    if e.best_epoch_ != 6:
        assert not np.allclose(e2.predict(u, i), e3.predict(u, i))


def test_rating_only_parameters_matter(rsplit):
    base = {"factors": 8, "task": "rating", "epochs": 2, "batch_size": 256}
    u, i = rsplit.test.user_ids, rsplit.test.item_ids
    ref = GMFEstimator(**base).fit(rsplit.train).predict(u, i)
    for change in ({"target_scaling": "minmax"}, {"loss": "mae"}, {"loss": "huber"}, {"biases": False}):
        alt = GMFEstimator(**(base | change)).fit(rsplit.train).predict(u, i)
        assert not np.allclose(ref, alt), change
    # eval_k changes the monitored metric's name
    e = GMFEstimator(factors=8, epochs=1, eval_k=5, val_candidates=20).fit(rsplit.train, rsplit.valid)
    assert "val_hr@5" in e.history_.columns


@pytest.mark.parametrize("name", ["gmf", "neumf"])
def test_same_seed_same_history_and_weights(loo, name):
    kw = SMALL[name] | {"epochs": 3, "batch_size": 128, "dropout": 0.2} if name == "neumf" else SMALL[name] | {"epochs": 3}
    a = REGISTRY[name](**kw).fit(loo.train, loo.valid)
    b = REGISTRY[name](**kw).fit(loo.train, loo.valid)
    cols = [c for c in a.history_.columns if c not in ("seconds", "samples_per_s")]
    pd.testing.assert_frame_equal(a.history_[cols], b.history_[cols], check_exact=True)
    for (ka, va), (kb, vb) in zip(a.module_.state_dict().items(), b.module_.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    assert a.n_iter_ == b.n_iter_ > 0


@pytest.mark.parametrize("name,task", [("mf", "rating"), ("gmf", "ranking"), ("mlp", "ranking"), ("neumf", "rating")])
def test_bundle_round_trip(tmp_path, loo, name, task):
    est = REGISTRY[name](**SMALL[name], task=task, epochs=2, val_candidates=20).fit(loo.train, loo.valid)
    est.save(tmp_path / "b", train=loo.train)
    back = ncf.load(tmp_path / "b")
    assert type(back) is type(est)
    users = np.arange(20)
    np.testing.assert_array_equal(back.predict(users, users % 7), est.predict(users, users % 7))
    np.testing.assert_array_equal(back.score_users(users[:3]), est.score_users(users[:3]))
    pd.testing.assert_frame_equal(back.history_, est.history_, check_dtype=False)
    assert back.best_epoch_ == est.best_epoch_
    ids, _ = back.recommend(users[:2], k=5)
    assert ids.shape == (2, 5)


def test_bundle_shape_mismatch_raises(tmp_path, loo):
    est = GMFEstimator(factors=8, epochs=1).fit(loo.train)
    arrays, meta = est.state_arrays(), est.state_meta()
    other = GMFEstimator(factors=4)
    with pytest.raises(BundleError):
        other.load_state(arrays, meta)


def test_score_users_matches_predict(loo):
    for name in ("gmf", "neumf"):
        est = REGISTRY[name](**SMALL[name], epochs=1).fit(loo.train)
        users = np.array([0, 5])
        grid = est.score_users(users)
        pair = est.predict(np.repeat(users, loo.train.n_items), np.tile(np.arange(loo.train.n_items), 2))
        np.testing.assert_allclose(grid.ravel(), pair, rtol=1e-5, atol=1e-5)


def test_from_pretrained_initialises_from_gmf_and_mlp(loo):
    g = GMFEstimator(factors=8, epochs=2).fit(loo.train)
    m = MLPEstimator(layers=[16, 8], epochs=2).fit(loo.train)
    n = NeuMFEstimator.from_pretrained(g, m, alpha=0.25, epochs=1, optimizer="sgd", lr=1e-9)
    assert n.factors == 8 and list(n.layers) == [16, 8]
    n.fit(loo.train)  # sgd with a tiny lr: the weights stay (almost) where pretraining put them
    nm = n.module_
    torch.testing.assert_close(nm.gmf_user_embedding.weight, g.module_.user_embedding.weight)
    torch.testing.assert_close(nm.mlp_item_embedding.weight, m.module_.item_embedding.weight)
    torch.testing.assert_close(nm.predict.weight, torch.cat([0.25 * g.module_.predict.weight,
                                                             0.75 * m.module_.predict.weight], dim=1))
    u, i = loo.test.user_ids, loo.test.item_ids
    logit = lambda e: e.predict(u, i)  # noqa: E731
    np.testing.assert_allclose(logit(n), 0.25 * logit(g) + 0.75 * logit(m), rtol=1e-4, atol=1e-4)


def test_pretrain_option_records_stage_histories(loo):
    n = NeuMFEstimator(factors=8, layers=[16, 8], epochs=2, pretrain=True, optimizer="sgd", lr=0.05,
                       val_candidates=20).fit(loo.train, loo.valid)
    assert set(n.pretrain_history_) == {"gmf", "mlp"} and len(n.pretrain_history_["gmf"]) == 2
    for stage, best in zip(("gmf", "mlp"), n.pretrain_best_epochs_):
        h = n.pretrain_history_[stage]
        assert best == int(h["epoch"][h["val_ndcg@10"].idxmax()])


def test_refit_of_pretrained_neumf_reuses_each_stage_best_epochs(loo):
    """ncf train's refit trains the GMF and MLP stages for their own early-stopped epoch counts."""
    from types import SimpleNamespace

    from ncf.run import refit_estimator
    from ncf.runconfig import RunConfig

    cfg = RunConfig.build(overrides={"task": "ranking", "model": "neumf", "pretrain": True, "factors": 8,
                                     "layers": [16, 8], "epochs": 4, "val_candidates": 20})
    est = NeuMFEstimator(factors=8, layers=[16, 8], epochs=4, pretrain=True, val_candidates=20)
    est.best_epoch_, est.pretrain_best_epochs_ = 2, [1, 3]  # as if fitted with validation
    split = SimpleNamespace(valid=loo.valid, train_valid=lambda: loo.train.concat(loo.valid))
    said: list[str] = []
    new, info = refit_estimator(est, split, cfg, said.append)
    assert new.pretrain_epochs == [1, 3] and info["epochs"] == 2 and len(new.history_) == 2
    assert [len(new.pretrain_history_[s]) for s in ("gmf", "mlp")] == [1, 3]
    assert any("GMF for 1 and MLP for 3" in line for line in said)
    with pytest.raises(UsageError, match="pretrain_epochs"):
        NeuMFEstimator(factors=8, layers=[16, 8], pretrain=True, pretrain_epochs=[2]).fit(loo.train)


def test_resume_after_crash_is_bit_identical(tmp_path, loo, monkeypatch):
    kw = {"factors": 8, "layers": [16, 8], "epochs": 4, "dropout": 0.1, "lr_schedule": "cosine",
          "val_candidates": 20, "checkpoint_dir": str(tmp_path / "ck")}
    full, resumed = fit_crash_resume(NeuMFEstimator, kw, loo.train, loo.valid, monkeypatch)
    for (k, a), (_, b) in zip(full.module_.state_dict().items(), resumed.module_.state_dict().items()):
        assert torch.equal(a, b), k
    cols = ["train_loss", "train_loss_eval", "val_loss", "val_hr@10", "val_ndcg@10"]
    pd.testing.assert_frame_equal(full.history_[cols], resumed.history_[cols], check_exact=True)
    with pytest.raises(UsageError):  # a checkpoint of other parameters is refused
        NeuMFEstimator(**(kw | {"lr": 0.5}), resume=True).fit(loo.train, loo.valid)


def test_user_errors(loo, data):
    with pytest.raises(UsageError):
        GMFEstimator(task="regression").fit(loo.train)
    with pytest.raises(UsageError):
        GMFEstimator(loss="mse").fit(loo.train)  # mse is not a ranking loss
    with pytest.raises(UsageError):
        GMFEstimator(optimizer="lbfgs", epochs=1).fit(loo.train)
    implicit = data.subset(np.arange(len(data)))
    implicit.ratings = None
    with pytest.raises(DataError):
        GMFEstimator(task="rating").fit(implicit)
    with pytest.raises(UsageError):
        GMFEstimator().predict(np.array([0]), np.array([0]))
    est = GMFEstimator(epochs=1).fit(loo.train)
    with pytest.raises(UsageError):
        est.predict(np.array([10_000]), np.array([0]))


def test_local_candidates_exclude_positives_and_repeat_nothing(loo):
    keys = positive_keys(loo.train.csr())
    users = np.arange(50)
    c = local_candidates(users, keys, loo.train.n_items, 40, np.random.default_rng(0))
    assert c.shape == (50, 40)
    assert all(len(set(row)) == 40 for row in c)
    seen = loo.train.csr()
    assert not np.asarray(seen[np.repeat(users, 40), c.ravel()]).any()


def test_rank_metrics_hand_computed():
    pos = np.array([3.0, 1.0, 0.0])
    neg = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0]])
    m = rank_metrics(pos, neg, 2)  # ranks 0, 2 (tie counts against), 2
    assert m["hr"] == pytest.approx(1 / 3)
    assert m["ndcg"] == pytest.approx(1 / 3)


def test_samples_count_scored_pairs_for_every_loss():
    """history_'s samples/s counts scored (user, item) pairs: a softmax row is 1 + k of them."""
    assert NeuMFEstimator(loss="softmax", n_negatives=20)._pairs_per_row() == 21
    assert NeuMFEstimator(loss="bpr", n_negatives=20)._pairs_per_row() == 2
    assert NeuMFEstimator(n_negatives=20)._pairs_per_row() == 1
    assert NeuMFEstimator(task="rating", n_negatives=20)._pairs_per_row() == 1
