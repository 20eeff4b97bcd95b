"""CLI: `ncf tune` (thin: parse, call ncf.tuning, print)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Optional

import typer


def tune(
    config: Path = typer.Option(..., "--config", help="space.toml: fixed RunConfig keys plus a 'space' table (and an optional 'tune' table)."),
    trials: int = typer.Option(20, "--trials", help="Number of Optuna trials."),
    data: Optional[str] = typer.Option(None, "--data", help="Dataset (overrides the file's data key)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder \\[default: runs/tune-<timestamp>]."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop starting trials after this many seconds."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an existing, non-empty results folder."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final table."),
) -> None:
    """Search hyperparameters with Optuna (seeded TPE, median pruning on the per-epoch validation metric).

    Writes trials.csv, study.json and best.toml; `ncf train --config best.toml` retrains the best trial.
    """
    from ncf.tuning import format_table, read_space
    from ncf.tuning import tune as run_tune

    spec = read_space(config, data=data)
    out = out or Path("runs") / f"tune-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    result = run_tune(spec, trials, out=out, log=None if quiet else typer.echo, timeout=timeout, overwrite=overwrite)
    typer.echo("")
    typer.echo(format_table(result))
    line = f"best: trial {result.best_trial}, {result.metric} {result.best_value:.4f}"
    if result.default_value is not None:
        line += f" (defaults, trial 0: {result.default_value:.4f})"
    typer.echo(line)
    typer.echo(f"best config written to {result.out / 'best.toml'}; retrain with: ncf train --config {result.out / 'best.toml'}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("tune")(tune)
