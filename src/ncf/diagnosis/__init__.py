"""Diagnosis: learning curves -> findings (with this run's numbers), plots and an HTML report.

    >>> from ncf.diagnosis import analyse, write_report          # doctest: +SKIP
    >>> for f in analyse(est.history_): print(f.as_text())       # doctest: +SKIP
    >>> write_report("runs/seed")                                 # doctest: +SKIP

Submodules: `findings` (pure), `measure` (needs the model and data), `plots`, `report`.
"""

from importlib import import_module

from ncf.diagnosis.findings import Finding, analyse

_LAZY = {"plot_curves": "plots", "build_figure": "plots", "write_report": "report", "diagnose_run": "report",
         "format_text": "report", "measure_run": "measure", "mode_effect": "measure",
         "validation_scores": "measure", "cold_counts": "measure"}


def __getattr__(name: str):
    # plots/report/measure pull in matplotlib and torch: imported on first use only
    if name in _LAZY:
        return getattr(import_module(f"ncf.diagnosis.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ncf.diagnosis' has no attribute '{name}'")


__all__ = ["Finding", "analyse", *_LAZY]
