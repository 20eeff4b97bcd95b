"""The `ncf` command line: one thin module per command group; errors become one line and exit 2."""

from __future__ import annotations

import os
import sys

import typer

from ncf.errors import NcfError

app = typer.Typer(
    name="ncf",
    help="Neural Collaborative Filtering: train, evaluate, diagnose and serve recommenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.")) -> None:
    """Neural Collaborative Filtering toolkit."""
    if debug:
        os.environ["NCF_DEBUG"] = "1"


def _register_all() -> None:
    from ncf.cli import data, diagnose, evaluate, serve, train, tune

    for module in (data, evaluate, train, diagnose, serve, tune):
        module.register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; user errors print one line to stderr and exit non-zero."""
    try:  # typer >= 0.22 vendors click
        from typer._click.exceptions import ClickException, NoArgsIsHelpError
    except ImportError:  # pragma: no cover - older typer on real click
        from click.exceptions import ClickException

        NoArgsIsHelpError = ()  # noqa: N806

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or os.environ.get("NCF_DEBUG") == "1"
    try:
        app(args=args, prog_name="ncf", standalone_mode=False)
    except NcfError as exc:
        if debug:
            raise
        print(f"error: {exc.one_line()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except ClickException as exc:
        print(f"error: {' '.join(exc.format_message().split()).rstrip('.')}; see 'ncf --help'", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except MemoryError:
        print("error: out of memory; use a smaller dataset or batch size", file=sys.stderr)
        sys.exit(1)
