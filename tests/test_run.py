"""The training pipeline (ncf.run) and its configuration (ncf.runconfig), end to end on small synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncf.errors import ConfigError, NcfError, UsageError
from ncf.run import train_run
from ncf.runconfig import RunConfig
from tests.conftest import make_lowrank

RUN_FILES = ("config.toml", "history.csv", "metrics.json", "data.json", "audit.json", "model")


def write_csv(path: Path, n_users: int = 120, n_items: int = 90, seed: int = 0, ratings: bool = True) -> Path:
    data = make_lowrank(n_users=n_users, n_items=n_items, density=0.2, seed=seed)
    frame = data.to_frame(raw=True)
    frame = frame.rename(columns={c: c.split("_")[0] for c in frame.columns})
    if not ratings:
        frame = frame.drop(columns=[c for c in frame.columns if c.startswith("rating")])
    frame.to_csv(path, index=False)
    return path


def small(data: Path, **kw) -> RunConfig:
    base = dict(data=str(data), epochs=2, factors=8, batch_size=256, n_negatives=2, lr=0.01, n_candidates=30, threads=1)
    if kw.get("model", "neumf") in ("neumf", "mlp"):
        base["layers"] = [16, 8]
    return RunConfig(**(base | kw))


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "ratings.csv")


@pytest.fixture(scope="module")
def ranking_run(csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "rank"
    cfg = small(csv, baselines=["pop", "ease"])
    return train_run(cfg, out=out), out


# --------------------------------------------------------------------------- the pipeline
def test_ranking_run_dir_has_every_file(ranking_run):
    result, out = ranking_run
    for name in RUN_FILES + ("candidates.npy",):
        assert (out / name).exists(), name
    assert (out / "model" / "weights.safetensors").is_file()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")], "temp dirs left behind"


def test_ranking_metrics_cover_model_and_baselines(ranking_run):
    result, out = ranking_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"neumf", "pop", "ease"}
    for name, protocols in metrics.items():
        assert set(protocols) == {"sampled", "full"}, name
        for protocol in ("sampled", "full"):
            assert 0.0 <= protocols[protocol]["hr@10"] <= 1.0
            assert 0.0 <= protocols[protocol]["ndcg@10"] <= protocols[protocol]["hr@10"]
    assert metrics == result.metrics


def test_candidates_are_saved_and_never_positives(ranking_run, csv):
    result, out = ranking_run
    cands = np.load(out / "candidates.npy", allow_pickle=False)
    split = result.split
    assert cands.shape == (len(split.test), 30)
    keys = set(split.all_keys().tolist())
    n_items = split.train.n_items
    users = np.repeat(split.test.user_ids.astype(np.int64), cands.shape[1])
    assert not any((u * n_items + i) in keys for u, i in zip(users, cands.ravel().astype(np.int64)))


def test_history_and_summaries(ranking_run):
    result, out = ranking_run
    hist = pd.read_csv(out / "history.csv")
    assert list(hist["epoch"]) == [1, 2]
    assert {"train_loss", "val_loss", "val_hr@10"} <= set(hist.columns)
    data = json.loads((out / "data.json").read_text())
    assert data["n_interactions"] == data["split"]["train"] + data["split"]["valid"] + data["split"]["test"]
    assert data["split"]["test"] == data["n_users"]  # leave-one-out: one test row per user (all have >= 2)
    audit = json.loads((out / "audit.json").read_text())
    assert audit["pairs_train_test"] == 0 and audit["pairs_train_valid"] == 0


def test_config_round_trips_and_rerun_is_identical(ranking_run, tmp_path):
    result, out = ranking_run
    again = RunConfig.from_file(out / "config.toml")
    assert again == result.config
    assert again.split == "loo" and again.baselines == ["pop", "ease"]
    assert again.patience is not None and again.optimizer is not None  # estimator defaults made explicit
    rerun = train_run(again, out=tmp_path / "again")
    assert rerun.metrics == result.metrics
    RunConfig.from_file(out / "config.toml").to_file(tmp_path / "c.json")
    assert RunConfig.from_file(tmp_path / "c.json") == again


def test_bundle_in_run_dir_predicts_like_the_estimator(ranking_run):
    import ncf.bundle

    result, out = ranking_run
    loaded = ncf.bundle.load_bundle(out)
    users = result.split.test.user_ids[:20]
    items = result.split.test.item_ids[:20]
    np.testing.assert_allclose(loaded.predict(users, items), result.estimator.predict(users, items), rtol=1e-5, atol=1e-6)


def test_rating_run(csv, tmp_path):
    out = tmp_path / "rate"
    result = train_run(small(csv, task="rating", model="mf", epochs=3), out=out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"mf", "bias", "global_mean"}
    assert all(set(m) == {"rating"} for m in metrics.values())
    assert result.config.split == "random"
    # planted low-rank structure: user/item biases beat the global mean
    assert metrics["bias"]["rating"]["rmse"] < metrics["global_mean"]["rating"]["rmse"]
    assert not (out / "candidates.npy").exists()


# --------------------------------------------------------------------------- failures leave nothing
def test_failure_while_writing_leaves_no_run_dir(csv, tmp_path, monkeypatch):
    import ncf.run

    def boom(run_dir, **kwargs):
        (Path(run_dir) / "report.html").write_text("half")
        raise RuntimeError("report failed")

    monkeypatch.setattr(ncf.run, "_report_writer", lambda: boom)
    out = tmp_path / "runs" / "bad"
    with pytest.raises(RuntimeError):
        train_run(small(csv, epochs=1, baselines=[]), out=out)
    assert not out.exists()
    # only the resumable training state is kept (ncf.resume): RUN.in-progress with config + checkpoint
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["bad.in-progress"]
    assert sorted(p.name for p in (tmp_path / "runs" / "bad.in-progress").iterdir()) == ["checkpoint", "config.toml"]


def test_rating_task_without_ratings_fails_before_writing(tmp_path):
    path = write_csv(tmp_path / "implicit.csv", ratings=False)
    out = tmp_path / "run"
    with pytest.raises(NcfError, match="rating"):
        train_run(small(path, task="rating"), out=out)
    assert not out.exists()


def test_existing_run_dir_is_refused(csv, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    with pytest.raises(UsageError, match="already exists"):
        train_run(small(csv), out=out)


def test_hyperparameter_the_model_lacks_is_refused(csv):
    with pytest.raises(ConfigError, match="no hyperparameter 'layers'.*mf takes: factors"):
        train_run(small(csv, model="mf", layers=[8]))


# --------------------------------------------------------------------------- RunConfig
def test_precedence_preset_file_flags(tmp_path, monkeypatch):
    import ncf.runconfig

    monkeypatch.setattr(ncf.runconfig, "_presets", lambda: {"p": {"factors": 50, "lr": 0.1, "epochs": 7}})
    (tmp_path / "run.toml").write_text("lr = 0.01\nepochs = 5\n")
    cfg = RunConfig.build(tmp_path / "run.toml", preset="p", overrides={"epochs": 3, "dropout": None})
    assert (cfg.factors, cfg.lr, cfg.epochs, cfg.dropout) == (50, 0.01, 3, None)
    with pytest.raises(ConfigError, match="unknown preset 'q'"):
        RunConfig.build(preset="q")


def test_config_errors_are_one_line_with_a_fix(tmp_path):
    (tmp_path / "bad.toml").write_text("epoch = 3\n")
    with pytest.raises(ConfigError, match="unknown key 'epoch'.*did you mean 'epochs'"):
        RunConfig.build(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="unknown model 'nuemf'; did you mean 'neumf'"):
        RunConfig(model="nuemf")
    with pytest.raises(ConfigError, match="epochs"):
        RunConfig.build(overrides={"epochs": 0})
    with pytest.raises(ConfigError, match="dropout"):
        RunConfig.build(overrides={"dropout": 1.5})
    with pytest.raises(ConfigError, match="pretrain applies to neumf"):
        RunConfig.build(overrides={"model": "gmf", "pretrain": True})
    with pytest.raises(ConfigError, match="did you mean 'ease'"):
        RunConfig.build(overrides={"baselines": "pop,eas"})


def test_flag_strings_parse_like_file_values():
    cfg = RunConfig.build(overrides={"layers": "64,32,16", "ks": "5,10", "baselines": "none", "lr": "0.002"})
    assert cfg.layers == [64, 32, 16] and cfg.ks == [5, 10] and cfg.baselines == [] and cfg.lr == 0.002


def test_task_defaults():
    assert RunConfig().split_method() == "loo" and RunConfig().baseline_names() == ["pop", "itemknn", "ease"]
    rating = RunConfig(task="rating")
    assert rating.split_method() == "random" and rating.baseline_names() == ["bias", "global_mean"]


def test_estimator_params_mapping():
    cfg = RunConfig(output="linear", patience=0, factors=16)
    params = cfg.estimator_params()
    assert params["output_activation"] == "none" and params["early_stopping"] is None
    assert params["factors"] == 16 and "data" not in params and "seed" not in params


def test_presets_are_valid_run_configs():
    from ncf.runconfig import preset_names, preset_values

    for name in preset_names():
        cfg = RunConfig.build(preset=name)
        assert cfg.model in ("gmf", "mlp", "neumf", "mf")
        assert preset_values(name)  # non-empty


def test_tuned_defaults_fill_only_unset_keys(monkeypatch):
    import ncf.runconfig
    from ncf.runconfig import TUNED_DEFAULTS

    tuned = TUNED_DEFAULTS[("rating", "mf")]
    assert RunConfig(task="rating", model="mf").estimator_params() == tuned
    assert RunConfig(task="rating", model="mf", l2=0.2).estimator_params()["l2"] == 0.2
    assert "l2" not in RunConfig(task="rating", model="mf", defaults="estimator").estimator_params()
    monkeypatch.setattr(ncf.runconfig, "_presets", lambda: {"p": {"task": "rating", "model": "mf", "lr": 0.1}})
    assert RunConfig.build(preset="p").estimator_params() == {"lr": 0.1}  # a preset is a complete starting point


# --------------------------------------------------------------------------- refit on train + validation
def test_refit_default_by_task_and_explicit_in_config():
    assert RunConfig(task="ranking").refit_enabled() is True
    assert RunConfig(task="rating", model="mf").refit_enabled() is True
    assert RunConfig(task="rating", model="neumf").refit_enabled() is False  # measured worse on validation
    assert RunConfig(task="rating", defaults="estimator").refit_enabled() is False  # presets reproduce setups
    assert RunConfig(task="ranking", refit=False).refit_enabled() is False
    assert RunConfig(task="ranking").resolved().refit is True
    assert RunConfig.build(overrides={"task": "rating", "refit": "true"}).refit is True


def test_refit_model_is_a_fresh_fit_on_train_and_validation_for_the_best_epochs(csv, tmp_path):
    from ncf.run import build_estimator

    out = tmp_path / "refit"
    cfg = small(csv, refit=True, epochs=4, patience=1, baselines=[])
    lines: list[str] = []
    result = train_run(cfg, out=out, log=lines.append)
    split = result.split
    best = int(result.history.loc[result.history["val_ndcg@10"].idxmax(), "epoch"])
    data = json.loads((out / "data.json").read_text())
    assert data["refit"]["epochs"] == best
    assert data["refit"]["train_rows"] == len(split.train) + len(split.valid)
    assert RunConfig.from_file(out / "config.toml").refit is True
    assert any("refit" in line and f"{best} epochs" in line for line in lines)
    # independent expectation: the same config trained from scratch on train + validation, no early stopping
    manual = build_estimator(cfg.model_copy(update={"epochs": best, "patience": 0})).fit(split.train_valid())
    assert manual.n_epochs_ == result.estimator.n_epochs_ == best
    users, items = split.test.user_ids, split.test.item_ids
    np.testing.assert_allclose(result.estimator.predict(users, items), manual.predict(users, items), rtol=1e-5, atol=1e-6)
    assert result.estimator.seen_.nnz == len(split.train_valid())
    # the saved bundle is the refit model, and the diagnosis measures it against train + validation
    import ncf.bundle

    loaded = ncf.bundle.load_bundle(out)
    assert loaded.data_info_["fingerprint"] == split.train_valid().fingerprint()
    np.testing.assert_allclose(loaded.predict(users, items), manual.predict(users, items), rtol=1e-5, atol=1e-6)
    diagnosis = json.loads((out / "diagnosis.json").read_text()) if (out / "diagnosis.json").exists() else {}
    assert not any("skipped" in n for n in diagnosis.get("notes", []))
    if diagnosis:  # the report diagnoses the early-stopped model on the validation rows it never trained on
        assert {"mode_effect", "baselines", "cold"} <= set(diagnosis["measurements"])


def test_no_refit_keeps_the_early_stopped_model(csv):
    result = train_run(small(csv, refit=False, baselines=[]))
    assert result.estimator.seen_.nnz == len(result.split.train)
    assert "refit" not in result.data_summary and result.config.refit is False


def test_refit_without_validation_is_skipped(csv):
    lines: list[str] = []
    result = train_run(small(csv, refit=True, valid_size=0.0, baselines=[]), log=lines.append)
    assert result.split.valid is None or len(result.split.valid) == 0
    assert "refit" not in result.data_summary
    assert any("refit skipped" in line for line in lines)
