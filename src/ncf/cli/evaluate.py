"""CLI: `ncf evaluate` (models x protocols table) and `ncf split` (split + leakage audit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from ncf.errors import UsageError

DATA_HELP = ("a dataset name (ml-100k, ml-1m, ...), a GroupLens zip or folder, or a CSV/TSV/Parquet ratings table")


def _load(data: str, columns: Optional[str], sep: Optional[str]):
    from ncf.data import load_data

    return load_data(data, columns, sep)


def _parse_sets(values: list[str]) -> dict[str, dict]:
    """--set model.param=value (value parsed as JSON when possible) -> {model: {param: value}}."""
    out: dict[str, dict] = {}
    for item in values:
        key, eq, raw = item.partition("=")
        model, dot, param = key.partition(".")
        if not eq or not dot or not model or not param:
            raise UsageError(f"bad --set '{item}'", "write --set MODEL.PARAM=VALUE, e.g. --set ease.l2=300")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(model, {})[param] = value
    return out


def _parse_ks(k: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(x) for x in k.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"bad --k '{k}'", "pass cutoffs as integers, e.g. --k 10 or --k 5,10,20") from None
    if not ks or min(ks) < 1:
        raise UsageError(f"bad --k '{k}'", "cutoffs must be positive integers")
    return ks


def register(app: typer.Typer) -> None:
    """Add `evaluate` and `split` to the root app."""

    @app.command("evaluate")
    def evaluate_cmd(
        data: str = typer.Option(..., "--data", help=DATA_HELP),
        task: str = typer.Option("ranking", "--task", help="rating (RMSE/MAE) or ranking (sampled + full ranking)"),
        split: str = typer.Option("loo", "--split", help="random, loo, temporal or kfold"),
        models: str = typer.Option("pop,itemknn,ease", "--models", help="comma-separated model names"),
        seeds: int = typer.Option(1, "--seeds", min=1, help="repeat with seeds 0..N-1; report mean ± std"),
        k: str = typer.Option("10", "--k", help="cutoff(s) for ranking metrics, e.g. 10 or 5,10,20"),
        candidates: int = typer.Option(99, "--candidates", min=1, help="sampled negatives per test item"),
        folds: int = typer.Option(5, "--folds", min=2, help="folds for --split kfold"),
        tie_break: str = typer.Option("row", "--tie-break", help="loo timestamp ties: row (file order, RecBole; default), item (id) or first_seen"),
        valid_in_train: bool = typer.Option(True, "--valid-in-train/--no-valid-in-train",
                                            help="fit on train+valid (default) or fit(train, valid)"),
        sets: list[str] = typer.Option([], "--set", help="model hyperparameter MODEL.PARAM=VALUE (repeatable)"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write {model: {protocol: {metric: value}}}"),
        columns: Optional[str] = typer.Option(None, "--columns", help="for plain tables: user=COL,item=COL,..."),
        sep: Optional[str] = typer.Option(None, "--sep", help="for plain tables: the column separator"),
    ) -> None:
        """Fit models on one split and print one table: model x metric (both ranking protocols side by side)."""
        from ncf._io import atomic_write_text
        from ncf.evaluation.protocols import check_models, evaluate_models
        from ncf.evaluation.tables import format_table, to_json

        names = [m.strip() for m in models.split(",") if m.strip()]
        ks = _parse_ks(k)
        params = _parse_sets(sets)
        check_models(names, task)
        split_params: dict = {}
        if split == "loo":
            split_params["tie_break"] = tie_break
        if split == "kfold":
            split_params["k"] = folds
        interactions = _load(data, columns, sep)
        results = evaluate_models(interactions, names, task=task, split=split, seeds=seeds, ks=ks,
                                  n_candidates=candidates, valid_in_train=valid_in_train, params=params,
                                  split_params=split_params, progress=lambda msg: print(msg, file=sys.stderr))
        what = f"{interactions.name}: {len(interactions):,} interactions, split={split}"
        what += f", {seeds} seeds (mean ± std)" if seeds > 1 else ""
        if task == "ranking":
            what += f", sampled = {candidates} negatives per test item, full = all unseen items; ties count against the model"
        typer.echo(what)
        if split != "kfold":
            from ncf.split import audit, split_data

            rep = audit(split_data(interactions, split, seed=0, **split_params))
            note = (f"split (seed 0): train {rep['train']:,}, valid {rep['valid']:,}, test {rep['test']:,}; "
                    f"cold test users {rep['cold_users_test']}, cold test items {rep['cold_items_test']}")
            if "tied_users" in rep:
                note += f"; users with tied latest timestamps {rep['tied_users']} (tie rule: {rep['tie_break']})"
            typer.echo(note)
        typer.echo(format_table(results, k=max(ks)))
        if json_out is not None:
            atomic_write_text(json_out, json.dumps(to_json(results), indent=2))
            typer.echo(f"wrote {json_out}")

    @app.command("split")
    def split_cmd(
        data: str = typer.Option(..., "--data", help=DATA_HELP),
        split: str = typer.Option("loo", "--split", help="random, loo, temporal or kfold"),
        seed: int = typer.Option(0, "--seed", help="random seed"),
        tie_break: str = typer.Option("row", "--tie-break", help="loo timestamp ties: row (file order, RecBole; default), item (id) or first_seen"),
        test_size: float = typer.Option(0.2, "--test-size", help="random/temporal: test fraction"),
        valid_size: float = typer.Option(0.1, "--valid-size", help="random/temporal: validation fraction"),
        json_out: Optional[Path] = typer.Option(None, "--json", help="also write the audit as JSON"),
        columns: Optional[str] = typer.Option(None, "--columns", help="for plain tables: user=COL,item=COL,..."),
        sep: Optional[str] = typer.Option(None, "--sep", help="for plain tables: the column separator"),
    ) -> None:
        """Split a dataset and print the leakage audit (sizes, shared pairs, cold ids, time order, ties)."""
        from ncf._io import atomic_write_text
        from ncf.split import audit, split_data

        params: dict = {}
        if split == "loo":
            params["tie_break"] = tie_break
        elif split == "random":
            params.update(test_size=test_size, valid_size=valid_size)
        elif split == "temporal":
            params.update(test_frac=test_size, valid_frac=valid_size)
        interactions = _load(data, columns, sep)
        rep = audit(split_data(interactions, split, seed=seed, **params))
        width = max(len(key) for key in rep)
        for key, value in rep.items():
            typer.echo(f"{key.ljust(width)}  {value}")
        if json_out is not None:
            atomic_write_text(json_out, json.dumps(rep, indent=2))
