"""CLI: `ncf train` (thin: parse flags into a RunConfig, call ncf.run.train_run, print).

Every RunConfig key is a flag of the same name (`--batch-size`, `--layers 64,32,16,8`, `--batch-norm/
--no-batch-norm`); flags override `--config FILE`, which overrides `--preset NAME`.
"""

from __future__ import annotations

import inspect
import types
import typing
from pathlib import Path
from typing import Any, Optional

import typer

from ncf.runconfig import RunConfig

# Flags with their own place in the help, in this order; the remaining RunConfig keys follow.
_FIRST = ("data", "task", "model", "split", "seed")


def _base_type(annotation: Any) -> Any:
    """The scalar type typer should parse a RunConfig field as (lists and enums are parsed as text)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation in (int, float, bool):
        return annotation
    return str


def _field_options() -> list[inspect.Parameter]:
    fields = RunConfig.model_fields
    order = list(_FIRST) + [k for k in fields if k not in _FIRST]
    params = []
    for name in order:
        info = fields[name]
        kind = _base_type(info.annotation)
        flag = "--" + name.replace("_", "-")
        default = info.get_default(call_default_factory=True)
        help_text = info.description or ""
        if default is not None and default != []:
            shown = ",".join(map(str, default)) if isinstance(default, list) else default
            help_text += f" \\[default: {shown}]"
        decls = [f"{flag}/--no-{flag[2:]}"] if kind is bool else [flag]
        option = typer.Option(None, *decls, help=help_text, show_default=False,
                              rich_help_panel="Run" if name in _FIRST else "Hyperparameters and evaluation")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                        annotation=Optional[kind]))  # noqa: UP007 - typer reads it
    return params


def train(
    config: Optional[Path] = typer.Option(None, "--config", help="TOML/JSON file of RunConfig keys (flags override it)."),
    preset: Optional[str] = typer.Option(None, "--preset", help="Named preset of RunConfig keys (the file and flags override it)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory to create \\[default: runs/<timestamp>-<model>]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing run directory."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue an interrupted run (RUN or RUN.in-progress) from its last checkpoint, with its saved config."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final table."),
    **flags: Any,
) -> None:
    """Train a model, evaluate it against baselines, and write a run directory.

    With no flags: NeuMF on MovieLens 100K for top-K recommendation (leave-one-out, 99 sampled negatives, HR@10/NDCG@10), as in the NCF paper.

    Use --task rating for rating prediction (RMSE). Every key of a config file is also a flag.
    """
    from ncf import distributed
    from ncf.run import default_run_dir, format_metrics, train_run

    if resume is not None:
        cfg, out = _resume_config(resume, config, preset, out, overwrite, flags)
    else:
        cfg = RunConfig.build(config_file=config, preset=preset, overrides=flags)
        out = out or default_run_dir(cfg.model)
    log = (lambda _m: None) if quiet else typer.echo
    with distributed.session(cfg.device) as ctx:  # torchrun: DDP process group (rank 0 evaluates and writes)
        main = ctx is None or ctx.is_main
        if ctx is not None and main:
            log(f"distributed: {ctx.world_size} processes, DistributedDataParallel over {ctx.backend}")
        result = _train_or_explain(train_run, cfg, out, log, overwrite, resume is not None)
    if not main:
        return
    if quiet:
        typer.echo(format_metrics(result.metrics, cfg.model))
    typer.echo(f"run written to {result.run_dir} ({result.seconds:.1f}s)")


def _resume_config(resume: Path, config: Path | None, preset: str | None, out: Path | None, overwrite: bool,
                   flags: dict[str, Any]) -> tuple[RunConfig, Path]:
    """The saved config and run directory of an interrupted run; other flags are refused (same config)."""
    from ncf.errors import UsageError
    from ncf.resume import resume_target

    given = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v is not None]
    given += [flag for flag, v in (("--config", config), ("--preset", preset), ("--out", out), ("--overwrite", overwrite or None))
              if v is not None]
    if given:
        raise UsageError(f"--resume continues with the run's saved config, so {', '.join(given)} cannot be given",
                         "drop those flags")
    run_dir, config_file = resume_target(resume)
    return RunConfig.from_file(config_file), run_dir


def _train_or_explain(train_run: Any, cfg: RunConfig, out: Path, log: Any, overwrite: bool, resume: bool) -> Any:
    """train_run; Ctrl-C and OS errors (disk full) become one line that says what was kept and how to go on."""
    from ncf import resume as resume_mod

    try:
        return train_run(cfg, out=out, log=log, overwrite=overwrite, resume=resume)
    except KeyboardInterrupt:
        raise resume_mod.interrupted(Path(out)) from None
    except OSError as exc:
        kept = resume_mod.failed(exc, Path(out))
        if kept is None:
            raise
        raise kept from exc


# typer reads the signature: expose every RunConfig key as a keyword-only option.
_sig = inspect.signature(train)
_params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in _sig.parameters.values()
           if p.kind is not inspect.Parameter.VAR_KEYWORD]
train.__signature__ = _sig.replace(parameters=_field_options() + _params)  # type: ignore[attr-defined]
train.__annotations__ = {p.name: p.annotation for p in train.__signature__.parameters.values()}  # type: ignore[attr-defined]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("train", no_args_is_help=False)(train)
