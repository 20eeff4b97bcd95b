"""CLI: data commands (thin: parse, call the library, print)."""

from __future__ import annotations

import json
from typing import Optional

import typer

data_app = typer.Typer(name="data", help="Fetch MovieLens releases and summarise datasets.", no_args_is_help=True)

DATA_HELP = ("a dataset name (ml-100k, ml-1m, ml-latest-small, ...), a GroupLens zip or extracted folder, "
             "or a CSV/TSV/Parquet ratings table")
COLUMNS_HELP = "for plain tables: user=COL,item=COL[,rating=COL][,timestamp=COL] (default: common names)"
SEP_HELP = "for plain tables: the column separator (default: sniffed; e.g. ',', tab, ';', '::')"


def columns_option(default: Optional[str] = None) -> typer.models.OptionInfo:
    """A `--columns` option other commands can reuse (validated early)."""
    return typer.Option(default, "--columns", help=COLUMNS_HELP, callback=_check_columns)


def sep_option(default: Optional[str] = None) -> typer.models.OptionInfo:
    """A `--sep` option other commands can reuse."""
    return typer.Option(default, "--sep", help=SEP_HELP)


def _check_columns(value: Optional[str]) -> Optional[str]:
    if value:
        from ncf.data.tables import parse_columns

        parse_columns(value)  # raises a one-line DataError
    return value


@data_app.command("fetch")
def fetch_cmd(
    name: str = typer.Argument(..., help="release name: ml-latest-small, ml-latest, ml-100k, ml-1m, ml-10m, ml-20m, "
                                        "ml-25m, ml-32m"),
    force: bool = typer.Option(False, "--force", help="download and extract again even when cached"),
    source: str = typer.Option("auto", "--source", help="auto, grouplens or mirror (ml-100k only)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Download a MovieLens release into the cache ($NCF_HOME), verify it and extract it."""
    from ncf.data.fetch import fetch, fetch_info, is_fetched
    from ncf.data.movielens import get_release

    release = get_release(name)
    if is_fetched(release.name) and not force:
        info = fetch_info(release.name) or {}
        from ncf.data.fetch import dataset_dir

        typer.echo(f"{release.name}: already in the cache at {dataset_dir(release.name)} "
                   f"(source: {info.get('source', '?')})")
        return
    path = fetch(release.name, force=force, progress=not quiet, source=source)
    typer.echo(str(path))


@data_app.command("info")
def info_cmd(
    data: str = typer.Argument(..., help=DATA_HELP),
    columns: Optional[str] = columns_option(),
    sep: Optional[str] = sep_option(),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Summarise a dataset: users, items, ratings, density, rating histogram, activity, time span."""
    from ncf.data.info import format_summary, summarize
    from ncf.data.load import load_data

    summary = summarize(load_data(data, columns=columns, sep=sep))
    typer.echo(json.dumps(summary, indent=2) if as_json else format_summary(summary))


@data_app.command("list")
def list_cmd() -> None:
    """List the known MovieLens releases and whether each is cached."""
    from ncf.data.fetch import is_fetched
    from ncf.data.movielens import RELEASES

    for r in RELEASES.values():
        mark = "cached" if is_fetched(r.name) else ""
        typer.echo(f"{r.name:<16} {mark:<7} {r.description}")


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.add_typer(data_app, name="data")
