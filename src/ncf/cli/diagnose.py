"""CLI: `ncf diagnose RUN` (thin: rebuild the run's report, print its findings)."""

from __future__ import annotations

from pathlib import Path

import typer


def diagnose(
    run: Path = typer.Argument(..., help="Run directory written by 'ncf train --out RUN'."),
    remeasure: bool = typer.Option(False, "--remeasure", help="Measure again (reloads the data and the saved model) "
                                   "instead of reusing diagnosis.json."),
    no_measure: bool = typer.Option(False, "--no-measure", help="Do not measure now (reuse diagnosis.json if any, else the history files only)."),
    as_json: bool = typer.Option(False, "--json", help="Print the findings and measurements as JSON."),
) -> None:
    """Explain a run's learning curves: findings with this run's numbers, and report.html + curves.png.

    Measures what the curves alone cannot tell: the same batches in train vs eval mode (dropout/batch-norm), baselines on the same validation rows (bias and global mean; popularity for ranking), and validation rows with cold users/items.
    """
    from ncf.diagnosis.report import DIAGNOSIS, diagnose_run, format_text, write_report

    path = write_report(run, measure=not no_measure, remeasure=remeasure)
    if as_json:
        typer.echo((Path(run) / DIAGNOSIS).read_text(encoding="utf-8"))
        return
    typer.echo(format_text(diagnose_run(run, measure=False)))
    typer.echo(f"\nreport: {path}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("diagnose")(diagnose)

