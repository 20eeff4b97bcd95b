"""Training losses: pure functions of score and target tensors (mean over the batch)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ncf.errors import UsageError

RATING_LOSSES = ("mse", "mae", "huber")
RANKING_LOSSES = ("bce", "bpr", "softmax")


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error."""
    return F.mse_loss(pred, target)


def mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error."""
    return F.l1_loss(pred, target)


def huber(pred: torch.Tensor, target: torch.Tensor, delta: float = 1.0) -> torch.Tensor:
    """Huber loss (squared below `delta`, linear above)."""
    return F.huber_loss(pred, target, delta=delta)


def bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits (labels 1 = interacted, 0 = sampled negative)."""
    return F.binary_cross_entropy_with_logits(logits, labels)


def bpr(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Bayesian personalised ranking: mean of -log sigmoid(pos - neg) over (positive, negative) pairs."""
    return -F.logsigmoid(pos - neg).mean()


def softmax(pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """Sampled softmax: mean over positives of -log softmax of the positive's score among itself and its
    k sampled negatives (pos (B,), neg (B, k))."""
    logits = torch.cat([pos.view(-1, 1), neg.view(len(pos), -1)], dim=1)
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def get_loss(name: str, task: str) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss function registered under `name` for `task` ("rating" or "ranking")."""
    table = {"mse": mse, "mae": mae, "huber": huber} if task == "rating" else {"bce": bce, "bpr": bpr, "softmax": softmax}
    if name not in table:
        raise UsageError(f"loss '{name}' is not available for task '{task}'", f"use one of: {', '.join(table)}")
    return table[name]
