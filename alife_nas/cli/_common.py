"""Pieces every subcommand shares: user errors (exit 2, one line), config files, device choice,
opening run directories and data sets, training-setting overrides."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Callable

import click

from alife_nas.store import RunStore, RunStoreError

#: Options of `evolve`, `resume` and `train` that override the preset's trainer setting of the same name.
TRAINING_OVERRIDES = ("max_epochs", "patience", "batch_size", "lr", "max_layers", "max_params")

class UserError(click.ClickException):
    """A mistake by the user: one line on stderr, exit code 2, no traceback.

    The ``alife-nas`` group (``OneLineErrorGroup``) prints every ClickException as one line.
    """

    exit_code = 2


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Read a TOML or JSON file of option defaults (keys are option names, '-' or '_')."""
    if not value:
        return value
    path = Path(value)
    try:
        text = path.read_text()
    except OSError as exc:
        raise click.BadParameter(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"config file {path} is not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {exc}") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"config file {path} must hold a table of option names to values")
    known = {p.name for p in ctx.command.params}
    defaults: dict[str, Any] = {}
    for key, val in data.items():
        name = str(key).replace("-", "_")
        if name not in known or name == "config":
            raise click.BadParameter(f"config file {path}: unknown option {key!r}")
        if isinstance(val, list):  # e.g. filters = [16, 32] -> "16,32"
            val = ",".join(str(v) for v in val)
        defaults[name] = val
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def config_option(func: Callable) -> Callable:
    """``--config FILE``: any option of the command, read from a TOML or JSON file.

    Options given on the command line win over the file.
    """
    return click.option(
        "--config",
        type=click.Path(dir_okay=False),
        is_eager=True,
        expose_value=False,
        callback=_load_config,
        help="TOML or JSON file with option values (command-line options win).",
    )(func)


def resolve_device(name: str) -> str:
    """Map ``auto|cpu|cuda`` to a torch device string; refuse cuda when there is none."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available (use --device cpu or auto)")
    return name


def parse_filters(text: str) -> tuple[int, ...]:
    """``16,32,64`` -> (16, 32, 64); refuse anything else with a clear message."""
    try:
        values = tuple(int(v) for v in str(text).replace(" ", "").split(",") if v)
    except ValueError:
        raise UserError(f"--filters must be comma-separated positive integers, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise UserError(f"--filters must be comma-separated positive integers, got {text!r}")
    if len(set(values)) < 2:
        raise UserError("--filters needs at least two distinct filter counts (mutation must be able to change one)")
    return tuple(sorted(set(values)))


def training_overrides(options: dict[str, Any]) -> dict[str, Any]:
    """The trainer settings the user set on the command line (None = keep the preset's)."""
    return {name: options[name] for name in TRAINING_OVERRIDES if options.get(name) is not None}


def open_run(run_dir: str) -> RunStore:
    """Open a run directory; a bad one is a one-line user error. Use as ``with open_run(d) as store``."""
    try:
        return RunStore.open(run_dir)
    except RunStoreError as exc:
        raise UserError(str(exc)) from None


def load_data(*args: Any, **kwargs: Any) -> Any:
    """:func:`alife_nas.data.load_dataset` with a missing or bad data set as a one-line user error."""
    from alife_nas.data import DatasetError, load_dataset

    try:
        return load_dataset(*args, **kwargs)
    except DatasetError as exc:
        raise UserError(str(exc)) from None
