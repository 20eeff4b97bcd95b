"""Diagnosis: learning curves -> findings (with this run's numbers), plots and an HTML report."""

from ncf.diagnosis.findings import Finding, analyse

__all__ = ["Finding", "analyse"]
