"""Pieces every subcommand shares: user errors (exit 2, one line), config files, device choice."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Callable

import click


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
