"""Named starting points for `ncf train --preset NAME`: plain dicts of RunConfig keys (see ncf.runconfig).

Precedence: preset < config file < command-line flags, so any key here can be overridden.
"""

from __future__ import annotations

from typing import Any

# The Keras script our users start from (PROTOCOLS.md, "the seed's Keras experiment"): NeuMF with 50-d GMF
# and MLP embeddings, MLP 32-16-8 with batch-norm and dropout 0.2, ReLU output, MAE on ratings min-max
# scaled to [0, 1], Adam 1e-3, batch 32, 10 epochs, random split stratified by user. ncf always keeps a
# test part as well: 20% test, then 20% of the rest for validation (the seed's 80/20 train/validation).
# No early stopping, so the whole curve is visible to `ncf diagnose`.
KERAS_SEED: dict[str, Any] = {
    "data": "ml-100k",
    "task": "rating",
    "model": "neumf",
    "split": "random",
    "stratify": True,
    "test_size": 0.2,
    "valid_size": 0.2,
    "factors": 50,
    "layers": [100, 32, 16, 8],  # layers[0] = concatenated user+item MLP embedding (50 + 50)
    "batch_norm": True,
    "dropout": 0.2,
    "biases": False,
    "output": "relu",
    "target_scaling": "minmax",
    "loss": "mae",
    "optimizer": "adam",
    "lr": 1e-3,
    "batch_size": 32,
    "epochs": 10,
    "patience": 0,
    "baselines": ["bias", "global_mean"],
}

# What `ncf diagnose` suggests for the seed, applied: a linear output (ReLU clips and kills gradients at
# 0), user/item biases (the bias baseline beats the seed, so give the network those terms directly), MSE
# (smooth gradients; MAE's constant-size steps keep overshooting), L2 3e-4 on the embedding rows of each
# batch, 16-d embeddings, no batch-norm/dropout (the L2 regularises; the running-mean gap shrinks), and a
# larger batch with early stopping on validation. Same data and split as `keras-seed`, so their
# validation MAE compare directly.
KERAS_SEED_FIXED: dict[str, Any] = {
    **{k: KERAS_SEED[k] for k in ("data", "task", "model", "split", "stratify", "test_size", "valid_size",
                                   "target_scaling", "optimizer", "baselines")},
    "factors": 16,
    "layers": [32, 16, 8],
    "batch_norm": False,
    "dropout": 0.0,
    "biases": True,
    "output": "linear",
    "loss": "mse",
    "l2": 3e-4,
    "lr": 1e-3,
    "batch_size": 256,
    "epochs": 30,
    "patience": 3,
}

PRESETS: dict[str, dict[str, Any]] = {
    "keras-seed": KERAS_SEED,
    "keras-seed-fixed": KERAS_SEED_FIXED,
}
