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
        code = app(args=args, prog_name="ncf", standalone_mode=False)
    except NcfError as exc:
        if debug:
            raise
        print(f"{getattr(exc, 'prefix', 'error')}: {exc.one_line()}", file=sys.stderr)
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
    except OSError as exc:  # disk full, permissions, a file in the way: the system's problem, not a bug
        if debug:
            raise
        print(f"error: {os_error_line(exc)}", file=sys.stderr)
        sys.exit(1)
    # without standalone mode typer returns the code of typer.Exit, and turns Ctrl-C into 130
    if isinstance(code, int) and not isinstance(code, bool) and code != 0:
        if code == 130:
            print("interrupted", file=sys.stderr)
        sys.exit(code)


def os_error_line(exc: OSError) -> str:
    """One line for an OSError: what failed, on which path, and the fix."""
    import errno

    hints = {
        errno.ENOSPC: "free disk space or write somewhere else, then run again",
        errno.EDQUOT: "free disk space or write somewhere else, then run again",
        errno.EACCES: "check the permissions or choose another path",
        errno.EPERM: "check the permissions or choose another path",
        errno.EROFS: "the file system is read-only; choose another path",
        errno.EEXIST: "a file is in the way; move it or choose another path",
        errno.ENOTDIR: "a file is in the way of a folder; move it or choose another path",
        errno.EISDIR: "pass a file, not a folder",
        errno.ENOENT: "check the path",
    }
    what = exc.strerror or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    return " ".join(f"{what}{where}; {hints.get(exc.errno or 0, 'check the path and free space')}".split())
