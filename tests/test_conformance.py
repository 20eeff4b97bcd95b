"""Every registered estimator (baselines and neural models alike) passes the shared conformance checks."""

import pytest

from ncf.models import REGISTRY
from ncf.testing import CHECKS, fit_for_checks

_FITTED: dict = {}


def _fitted(name):
    if name not in _FITTED:
        _FITTED[name] = fit_for_checks(name)  # also asserts fit returns self
    return _FITTED[name]


@pytest.mark.parametrize("check", list(CHECKS))
@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_conformance(name, check, tmp_path):
    est, data = _fitted(name)
    CHECKS[check](est, data, tmp_path)
