"""Models: one estimator interface for baselines and neural models."""

from ncf.models.base import REGISTRY, Estimator, register, top_k

__all__ = ["REGISTRY", "Estimator", "register", "top_k"]

# Estimator modules register themselves on import.
from ncf.models import baselines as _baselines  # noqa: E402,F401

from ncf.models import ncf_estimator as _neural  # noqa: E402,F401
