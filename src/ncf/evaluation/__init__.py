"""Evaluation: metrics (pure functions), protocols (rating, sampled, full ranking) and result tables."""

from ncf.evaluation import metrics
from ncf.evaluation.protocols import evaluate_full, evaluate_rating, evaluate_sampled

__all__ = ["evaluate_full", "evaluate_rating", "evaluate_sampled", "metrics"]
