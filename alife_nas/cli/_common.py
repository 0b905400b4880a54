"""Pieces every subcommand shares: user errors (exit 2, one line), config files, the search and
training options (names and defaults from the library config), opening run directories."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import click

try:  # Python 3.11+; tomli is the same parser, installed on 3.10
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib  # type: ignore[no-redef]

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.executors import ExecutorError
from alife_nas.files import environment_message
from alife_nas.genome import MAX_FILTERS, shown
from alife_nas.settings import PRESETS
from alife_nas.store import RunStore, RunStoreError
from alife_nas.strategies import STRATEGIES


def library_defaults() -> dict[str, Any]:
    """Every option's default, by name, as the library config has it (strategy options included)."""
    defaults: dict[str, Any] = {}
    for cls in STRATEGIES.values():
        defaults.update(dataclasses.asdict(cls.Options()))
    defaults.update(SearchConfig().options())
    defaults["filters"] = ",".join(str(f) for f in defaults["filters"])
    return defaults


#: The library's defaults by option name: commands show these in --help and never keep their own.
DEFAULTS = library_defaults()

#: Options that change a trainer setting of the chosen preset (None = keep the preset's).
TRAINING_OPTIONS = ("max_epochs", "patience", "batch_size", "lr", "max_layers", "max_params")


class UserError(click.ClickException):
    """A mistake by the user: one line on stderr, exit code 2, no traceback.

    The ``alife-nas`` group (``OneLineErrorGroup``) prints every ClickException as one line.
    """

    exit_code = 2


def _config_value(path: Path, key: str, value: Any, flag: bool) -> Any:
    """A config-file value as the command line would give it, so click checks it the same way."""
    if flag:
        if not isinstance(value, bool):
            raise click.BadParameter(f"config file {path}: {key} must be true or false, got {shown(value)}")
        return value
    if isinstance(value, list):
        if not all(isinstance(v, (int, float, str)) and not isinstance(v, bool) for v in value):
            raise click.BadParameter(f"config file {path}: {key} must be a list of numbers, got {shown(value)}")
        return ",".join(str(v) for v in value)  # filters = [16, 32] -> "16,32"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise click.BadParameter(f"config file {path}: {key} must be a single value (a number or a text), "
                                 f"got {shown(value)}")
    if "\0" in str(value):  # no command line can hold one, and click's path checks fail on it
        raise click.BadParameter(f"config file {path}: {key} must not contain a NUL character")
    return str(value)  # parsed by the option's own type: "3.9" for an integer option is refused


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Read a TOML or JSON file of option values (keys are the option names, '-' or '_')."""
    if not value:
        return value
    path = Path(value)
    most = 1_000_000  # bytes: option values are a few lines; this bounds what a wrong file costs
    try:
        with path.open("rb") as file:
            raw = file.read(most + 1)  # never all of a huge file (or of /dev/zero)
        if len(raw) > most:
            raise click.BadParameter(f"config file {path} is larger than {most:,} bytes")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.BadParameter(f"cannot read config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    kind = "JSON" if path.suffix == ".json" else "TOML"
    try:
        data = json.loads(text) if kind == "JSON" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise click.BadParameter(f"config file {path} is not valid {kind}: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise click.BadParameter(f"config file {path} must hold a table of option names to values")
    params = {p.name: p for p in ctx.command.params if isinstance(p, click.Option)}
    defaults: dict[str, Any] = {}
    for key, val in data.items():
        name = str(key).replace("-", "_")
        if name not in params or name == "config":
            raise click.BadParameter(f"config file {path}: unknown option {shown(key)}")
        defaults[name] = _config_value(path, str(key), val, params[name].is_flag)
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
        help="TOML or JSON file of option values, keys named like the options (command-line options win).",
    )(func)


def _shown(name: str) -> str:
    value = DEFAULTS.get(name)
    if name in TRAINING_OPTIONS:
        return f"the preset's ({', '.join(f'{p}: {getattr(s, name)}' for p, s in PRESETS.items())})"
    if name == "torus":
        return "torus" if value else "bounded"
    return "none" if value is None else str(value)


def _option(name: str, *flags: str, help: str, **kwargs: Any) -> Callable:
    """An option whose default is the library's: given as None, shown from :data:`DEFAULTS`."""
    flags = flags or (f"--{name.replace('_', '-')}",)
    # The default is None ("not given", so resume can tell what was typed); the help shows the library's.
    return click.option(*flags, name, default=None, show_default=False, help=f"{help}  [default: {_shown(name)}]",
                        **kwargs)


def with_options(options: list[Callable], func: Callable) -> Callable:
    """Apply click option decorators so that --help lists them in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def data_options(func: Callable) -> Callable:
    """Which data set and which validation split (the ``data`` section of the config)."""
    options = [
        _option("dataset", help="digits, cifar10, cifar100, mnist, fashion-mnist, svhn or imagefolder:PATH."),
        _option("data_dir", type=click.Path(file_okay=False), help="Where data set files are (and are downloaded to)."),
        _option("val_size", type=float, help="Validation split carved from the training data: a fraction (<1) or a count."),
        _option("split_seed", type=int, help="Seed of the validation carve."),
        _option("image_size", type=int,
                help="imagefolder only: resize every image to NxN (needed when the images differ in size)."),
    ]
    return with_options(options, func)


def training_options(func: Callable) -> Callable:
    """The training preset and the settings most often changed (the ``training`` section)."""
    options = [
        _option("preset", type=click.Choice(sorted(PRESETS)), help="Training preset (docs/training.md)."),
        _option("max_epochs", type=int, help="Epoch limit of a training."),
        _option("patience", type=int, help="Early-stopping patience in epochs; 0 = never stop early."),
        _option("batch_size", type=int, help="Training batch size."),
        _option("lr", type=float, help="Peak learning rate."),
        _option("max_layers", type=int, help="Refuse genomes with more layers (fitness 0); 0 = no cap."),
        _option("max_params", type=int, help="Refuse networks with more parameters (fitness 0); 0 = no cap."),
    ]
    return with_options(options, func)


def device_option(func: Callable) -> Callable:
    return _option("device", help="auto, cpu, cuda or cuda:N.")(func)


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave (on the command line or in --config; None = not given), with
    ``filters`` read into numbers: ready for :meth:`SearchConfig.from_options` or ``Search.open``."""
    options = {k: v for k, v in options.items() if v is not None}
    if "filters" in options:
        options["filters"] = parse_filters(options["filters"])
    return options


def parse_filters(text: str) -> list[int]:
    """``16,32,64`` -> [16, 32, 64] (the library checks the values' range)."""
    counts = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        if not (item.isascii() and item.isdigit()):
            raise UserError(f"--filters must be comma-separated whole numbers, got {shown(text)}")
        digits = len(item.lstrip("0"))
        if digits > len(str(MAX_FILTERS)):  # refused unread, however many digits
            raise UserError(f"--filters: filter counts must be whole numbers in 1..{MAX_FILTERS}, "
                            f"got a {digits:,}-digit number")
        counts.append(int(item))
    return counts


def build_config(options: dict[str, Any], base: SearchConfig | None = None) -> SearchConfig:
    """A SearchConfig from the given options (the library's defaults for the rest)."""
    options = given(options)
    with user_errors():  # SearchConfig checks every value, the device's form included
        return base.with_options(**options) if base is not None else SearchConfig.from_options(**options)


def open_run(run_dir: str) -> RunStore:
    """Open a run directory; a bad one is a one-line user error. Use as ``with open_run(d) as store``."""
    try:
        store = RunStore.open(run_dir, readonly=True)  # readers work on read-only media too
    except RunStoreError as exc:
        raise UserError(str(exc)) from None
    if store.notice:
        click.echo(store.notice, err=True)
    return store


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """The library's one-line errors (bad config, data set or run directory) become exit 2."""
    try:
        yield
    except (ConfigError, RunStoreError, ExecutorError) as exc:
        raise UserError(str(exc)) from None
    except (sqlite3.Error, OSError) as exc:  # the store maps its own; this catches any that slip past it
        message = environment_message(exc)
        if message is None:
            raise
        raise UserError(message) from None
    except ValueError as exc:
        data = sys.modules.get("alife_nas.data")  # only loaded (with torch) when data was touched
        if data is not None and isinstance(exc, data.DatasetError):
            raise UserError(str(exc)) from None
        raise
