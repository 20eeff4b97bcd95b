"""CLI: `ncf recommend`, `ncf similar`, `ncf serve` (thin: parse, call ncf.serving, print)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ncf.errors import DataError, UsageError


def _split_ids(text: str | None) -> list[str] | None:
    if text is None:
        return None
    ids = [t.strip() for t in text.split(",") if t.strip()]
    if not ids:
        raise UsageError(f"no ids in '{text}'", "pass comma-separated ids, e.g. 50,181")
    return ids


_USER_COLUMNS = ("user", "user_id", "userid", "user id")


def read_users_file(path: Path) -> list[str]:
    """Raw user ids from a file: one id per line, or a CSV/TSV/Parquet table with a `user` (or `user_id`) column."""
    import pandas as pd

    if not path.is_file():
        raise DataError(f"users file {path} does not exist", "pass a file with one user id per line")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    else:
        text = path.read_text(encoding="utf-8-sig")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        seps = [sep for sep in (",", "\t", ";") if lines and sep in lines[0]]
        if not seps:  # one id per line, maybe under a 'user' header
            return lines[1:] if lines and lines[0].lower() in _USER_COLUMNS else lines
        frame = pd.read_csv(path, sep=seps[0], dtype=str)
    for col in frame.columns:
        if str(col).strip().lower() in _USER_COLUMNS:
            return [str(v).strip() for v in frame[col].dropna().tolist()]
    raise DataError(f"users file {path} has no user column (columns: {', '.join(map(str, frame.columns))})",
                    "name the column 'user' or write one id per line")


def recommend(
    run: Path = typer.Argument(..., help="Run directory (or its model/ bundle folder)."),
    user: Optional[str] = typer.Option(None, "--user", "-u", help="Raw user id."),
    users_file: Optional[Path] = typer.Option(None, "--users-file", help="Users, one id per line or a CSV with a 'user' column."),
    k: int = typer.Option(10, "-k", "--k", help="Number of items per user."),
    include_seen: bool = typer.Option(False, "--include-seen", help="Also recommend items the user rated in training."),
    genre: Optional[str] = typer.Option(None, "--genre", help="Only items of this genre."),
    items: Optional[str] = typer.Option(None, "--items", help="Only these raw item ids (comma-separated)."),
    liked: Optional[str] = typer.Option(None, "--liked", help="For an unknown user: raw item ids they like (comma-separated)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write batch results to .csv or .parquet (atomic)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Top-k recommendations for a user (or a file of users), by raw id, with titles."""
    from ncf._io import atomic_path, atomic_write_text
    from ncf.serving.recommender import Recommender, format_answer

    if (user is None) == (users_file is None):
        raise UsageError("pass exactly one of --user and --users-file", "e.g. --user 196")
    if output is not None and output.suffix not in (".csv", ".parquet"):
        raise UsageError(f"--output must end in .csv or .parquet, got '{output.name}'", "e.g. --output recs.csv")
    rec = Recommender.from_path(run)
    candidates = _split_ids(items)
    if user is not None and output is None:
        answer = rec.recommend(user, k=k, exclude_seen=not include_seen, genre=genre, candidates=candidates,
                               liked_items=_split_ids(liked))
        typer.echo(json.dumps(answer, ensure_ascii=False, indent=1) if as_json else format_answer(answer))
        return
    users = [user] if user is not None else read_users_file(users_file)
    if not users:
        raise DataError(f"users file {users_file} is empty", "write one user id per line")
    frame = rec.recommend_frame(users, k=k, exclude_seen=not include_seen, genre=genre, candidates=candidates)
    if output is not None:
        if output.suffix == ".parquet":
            with atomic_path(output) as tmp:
                frame.to_parquet(tmp, index=False)
        else:
            atomic_write_text(output, frame.to_csv(index=False))
        n_users = frame["user"].nunique()
        typer.echo(f"wrote {len(frame)} rows ({n_users} users x top {k}) to {output}")
    elif as_json:
        typer.echo(frame.to_json(orient="records", force_ascii=False))
    else:
        typer.echo(frame.to_csv(index=False), nl=False)


def similar(
    run: Path = typer.Argument(..., help="Run directory (or its model/ bundle folder)."),
    item: str = typer.Option(..., "--item", "-i", help="Raw item id."),
    k: int = typer.Option(10, "-k", "--k", help="Number of similar items."),
    genre: Optional[str] = typer.Option(None, "--genre", help="Only items of this genre."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Items most similar to an item (cosine over item embeddings, else co-occurrence)."""
    from ncf.serving.recommender import Recommender, format_answer

    answer = Recommender.from_path(run).similar(item, k=k, genre=genre)
    typer.echo(json.dumps(answer, ensure_ascii=False, indent=1) if as_json else format_answer(answer))


def serve(
    run: Path = typer.Argument(..., help="Run directory (or its model/ bundle folder)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    threads: int = typer.Option(1, "--workers-threads", "--threads", help="Torch threads for model computation."),
    max_k: int = typer.Option(1000, "--max-k", help="Largest k a request may ask for."),
    max_body: int = typer.Option(1_000_000, "--max-body", help="Largest request body in bytes (larger: 413)."),
    cold_start: str = typer.Option("popular", "--cold-start", help="Unknown users: 'popular' or 'error' (404)."),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
    precompute: bool = typer.Option(True, "--precompute/--no-precompute",
                                    help="Cache every user's top-100 and every item's 100 neighbours at start-up."),
) -> None:
    """Serve recommendations over HTTP (FastAPI; docs at /docs)."""
    from ncf.serving.app import serve as run_server

    if not 1 <= port <= 65535:
        raise UsageError(f"--port must be in 1..65535, got {port}", "e.g. --port 8000")
    if max_k < 1 or max_body < 1 or threads < 1:
        raise UsageError("--max-k, --max-body and --workers-threads must be positive", "e.g. --max-k 1000")
    typer.echo(f"serving {run} on http://{host}:{port} (docs: http://{host}:{port}/docs)", err=True)
    run_server(run, host=host, port=port, threads=threads, max_k=max_k, max_body=max_body, cold_start=cold_start,
               log_level=log_level, precompute=precompute)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("recommend")(recommend)
    app.command("similar")(similar)
    app.command("serve")(serve)
