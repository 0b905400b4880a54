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

from alife_nas.config import OPTION_CLASSES, ConfigError, DataConfig, SearchConfig
from alife_nas.executors import ExecutorError
from alife_nas.files import environment_message
from alife_nas.genome import MAX_FILTERS, one_line, parse_genome, shown
from alife_nas.options import Spec, specs
from alife_nas.settings import PRESETS, TrainSettings
from alife_nas.store import RunStore, RunStoreError
from alife_nas.workflows import WorkflowError, WorkflowEvent
from alife_nas.strategies import STRATEGIES


def _declarations() -> dict[str, tuple[Spec, tuple[str, ...]]]:
    """Every declared option by name: its declaration and, for a strategy option, the strategies
    that have it (empty when every strategy has it, like ``filters``, or it is no strategy's)."""
    table: dict[str, tuple[Spec, tuple[str, ...]]] = {}
    for cls in OPTION_CLASSES:
        table.update({name: (spec, ()) for name, spec in specs(cls).items()})
    owners: dict[str, list[str]] = {}
    for strategy, cls in STRATEGIES.items():
        for name, spec in specs(cls.Options).items():
            table.setdefault(name, (spec, ()))
            owners.setdefault(name, []).append(strategy)
    for name, who in owners.items():
        table[name] = (table[name][0], () if len(who) == len(STRATEGIES) else tuple(who))
    return table


def library_defaults() -> dict[str, Any]:
    """Every option's default, by name, as the library config has it (strategy options included)."""
    defaults: dict[str, Any] = {}
    for cls in STRATEGIES.values():
        defaults.update(dataclasses.asdict(cls.Options()))
    defaults.update(SearchConfig().options())
    defaults["filters"] = ",".join(str(f) for f in defaults["filters"])
    return defaults


#: Every declared option: the library's declarations, read once (``alife_nas.options``).
DECLARED = _declarations()

#: The library's defaults by option name: commands show these in --help and never keep their own.
DEFAULTS = library_defaults()

#: Options of the training section: a preset sets them all, an option given changes one.
TRAINING_OPTIONS = tuple(name for name in specs(TrainSettings) if name != "preset")


class UserError(click.ClickException):
    """A mistake by the user: one line on stderr, exit code 2, no traceback.

    The ``alife-nas`` group (``OneLineErrorGroup``) prints every ClickException as one line.
    """

    exit_code = 2


class _NoneGiven(str):
    """The value "none" given on purpose (``--budget none``, ``null`` in a config file): unlike a
    missing option (None, "not given"), it sets an optional option to None."""


#: An optional option set to None on purpose; :func:`given` turns it into None.
NONE_GIVEN = _NoneGiven("none")


class _OrNone(click.ParamType):
    """An optional option's type: ``none`` (any case) sets it to None, anything else is ``inner``'s."""

    def __init__(self, inner: click.ParamType) -> None:
        self.inner = inner
        self.name = inner.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is NONE_GIVEN or (isinstance(value, str) and value.strip().lower() == "none"):
            return NONE_GIVEN
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        return self.inner.get_metavar(param, ctx)


class _Bool(click.types.BoolParamType):
    """A ``--x/--no-x`` flag's type; a config file's ``null`` for an optional one passes as NONE_GIVEN."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value if value is NONE_GIVEN else super().convert(value, param, ctx)


def _config_value(path: Path, key: str, value: Any, flag: bool, optional: bool) -> Any:
    """A config-file value as the command line would give it, so click checks it the same way."""
    if value is None:
        if not optional:
            raise click.BadParameter(f"config file {path}: {key} cannot be null")
        return NONE_GIVEN
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


#: The sections of a stored run config (``status --json``'s ``config``): a config file may hold
#: them as tables, so a run's own config feeds a new run as it is.
_SECTIONS = ("stop", "data", "training", "method", "fitness", "execution")


def _flat(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Option names to values; the sections of a stored config (tables) are read as their options."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if str(key) in _SECTIONS and isinstance(value, dict):
            items = value.items()
        else:
            items = [(key, value)]
        for name, val in items:
            if str(name).replace("-", "_") in flat:
                raise click.BadParameter(f"config file {path}: {shown(name)} is given twice")
            flat[str(name).replace("-", "_")] = (str(name), val)
    return flat


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Read a TOML or JSON file of option values (keys are the option names, '-' or '_').

    The sections of a stored run config (``status --json``'s ``config``) are accepted as tables.
    ``null`` (JSON) sets an optional option to None.
    """
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
    for name, (key, val) in _flat(path, data).items():
        if name not in params or name == "config":
            raise click.BadParameter(f"config file {path}: unknown option {shown(key)}")
        optional = name in DECLARED and DECLARED[name][0].optional
        if name in DECLARED and DECLARED[name][0].kind == "genomes" and isinstance(val, list):
            defaults[name] = tuple(val)  # the genomes themselves (a stored config's), not a file to read
            continue
        defaults[name] = _config_value(path, key, val, params[name].is_flag, optional)
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


def _value_text(spec: Spec, value: Any) -> str:
    """A default as --help shows it."""
    if value is None:
        return spec.none_means
    if spec.kind == "bool":
        if spec.flags and "/" in spec.flags[0]:  # --torus/--bounded: the flag's own word
            on, off = (f.strip().lstrip("-") for f in spec.flags[0].split("/"))
            return on if value else off
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _shown(name: str) -> str:
    """The library's default of ``name`` as --help shows it; a training setting that the presets
    set differently shows each preset's."""
    spec = DECLARED[name][0]
    if name in TRAINING_OPTIONS:
        values = {p: getattr(s, name) for p, s in PRESETS.items()}
        if len(set(map(repr, values.values()))) > 1:
            return "the preset's (" + ", ".join(f"{p}: {_value_text(spec, v)}" for p, v in values.items()) + ")"
    return _value_text(spec, DEFAULTS.get(name))


#: The largest --init-genomes file read (bytes): far more genomes than any run starts from.
GENOME_FILE_LIMIT = 10_000_000


def read_genome_file(path: str | Path) -> tuple[str, ...]:
    """The genomes of an ``--init-genomes`` file, canonical compact forms, in file order.

    One genome a line, compact (``32-64-M-128``) or the tuple form (what ``export --format paper``
    writes); blank lines and lines starting with ``#`` are skipped, and so is what follows ``#`` on a
    compact line. A ValueError names the file and the line of the first genome that cannot be read.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            raw = file.read(GENOME_FILE_LIMIT + 1)  # never all of a huge file
        if len(raw) > GENOME_FILE_LIMIT:
            raise ValueError(f"{path} is larger than {GENOME_FILE_LIMIT:,} bytes")
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not UTF-8 text") from None
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    genomes = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if line[:1] not in ("(", "["):  # a tuple form's quoted names may hold a '#'; a compact one cannot
            line = line.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            genomes.append(str(parse_genome(line)))
        except ValueError as exc:
            raise ValueError(f"{path} line {number}: {one_line(exc)}") from None
    if not genomes:
        raise ValueError(f"{path} holds no genome (one a line; blank lines and # comments are skipped)")
    return tuple(genomes)


class _GenomeFile(click.ParamType):
    """``--init-genomes FILE``: the genomes read from the file; a config file's list of genomes
    (as ``status --json``'s stored config holds them) passes as the genomes themselves."""

    name = "file"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):  # from a config file's list: each checked by the library config
            return value
        try:
            return read_genome_file(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def _click_type(name: str, spec: Spec) -> click.ParamType:
    if spec.kind == "genomes":
        return _OrNone(_GenomeFile())
    if spec.kind == "choice":
        inner: click.ParamType = click.Choice(sorted(STRATEGIES) if name == "strategy" else list(spec.choices))
    else:
        inner = {"int": click.INT, "number": click.FLOAT}.get(spec.kind, click.STRING)
    return _OrNone(inner) if spec.optional else inner


def declared_option(name: str) -> Callable:
    """The command-line option of a declared library option: its flags, type, help and default shown.

    The default is None ("not given", so resume can tell what was typed and a preset keeps its
    own values); --help shows the library's. Optional options take ``none``; booleans are
    ``--x/--no-x`` flags. A strategy option's help names its strategies.
    """
    spec, owners = DECLARED[name]
    dashed = "--" + name.replace("_", "-")
    prefix = f"[{', '.join(owners)}] " if owners else ""
    default = DEFAULTS.get(name)
    text = prefix + spec.help + (f" none: {spec.none_means}." if spec.optional and default is not None else "")
    help_text = f"{text}  [default: {_shown(name)}]"
    if spec.kind == "bool":
        flags = spec.flags or (f"{dashed}/--no-{name.replace('_', '-')}",)
        return click.option(*flags, name, default=None, type=_Bool(), help=help_text)
    extra: dict[str, Any] = {"is_flag": False, "flag_value": spec.flag_value} if spec.flag_value else {}
    return click.option(*(spec.flags or (dashed,)), name, default=None, type=_click_type(name, spec),
                        show_default=False, help=help_text, **extra)


def _option(name: str, *flags: str, help: str, **kwargs: Any) -> Callable:
    """An option of a command that is no library option (its default shown from :data:`DEFAULTS`)."""
    flags = flags or (f"--{name.replace('_', '-')}",)
    return click.option(*flags, name, default=None, show_default=False,
                        help=f"{help}  [default: {DEFAULTS.get(name, 'none')}]", **kwargs)


def with_options(options: list[Callable], func: Callable) -> Callable:
    """Apply click option decorators so that --help lists them in the order given."""
    for option in reversed(options):
        func = option(func)
    return func


def section_names(*classes: type) -> list[str]:
    """The declared option names of these options classes, in declaration order, each once."""
    names: list[str] = []
    for cls in classes:
        names += [n for n in specs(cls) if n not in names]
    return names


def strategy_option_names() -> list[str]:
    """Every strategy's own options (each name once), in the order of the strategies."""
    return section_names(*(cls.Options for cls in STRATEGIES.values()))


def data_options(func: Callable) -> Callable:
    """Which data set and which validation split (the ``data`` section of the config)."""
    return with_options([declared_option(n) for n in section_names(DataConfig)], func)


def training_options(func: Callable) -> Callable:
    """Every training setting, the preset first (the ``training`` section): a preset sets them all,
    and each option given changes one of them."""
    return with_options([declared_option(n) for n in section_names(TrainSettings)], func)


def device_option(func: Callable) -> Callable:
    return declared_option("device")(func)


def download_option(func: Callable) -> Callable:
    """``--download/--no-download``: one default for every command that loads data."""
    return click.option("--download/--no-download", default=True, show_default=True,
                        help="Download a missing torchvision data set into --data-dir.")(func)


def given(options: dict[str, Any]) -> dict[str, Any]:
    """The options the user gave (on the command line or in --config; None = not given), with
    ``filters`` read into numbers: ready for :meth:`SearchConfig.from_options` or ``Search.open``."""
    options = {k: (None if v is NONE_GIVEN else v) for k, v in options.items() if v is not None}
    if options.get("filters") is not None:
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


def print_progress(event: WorkflowEvent) -> None:
    """A library workflow's progress (alife_nas.workflows): its line on stderr, at once."""
    click.echo(event.text, err=True)
    sys.stderr.flush()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """The library's one-line errors (bad config, data set or run directory, a refused workflow
    argument or output, a model that cannot be saved) become exit 2."""
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
        if isinstance(exc, WorkflowError) or (data is not None and isinstance(exc, data.DatasetError)):
            raise UserError(str(exc)) from None
        raise
    except Exception as exc:
        models = sys.modules.get("alife_nas.model_export")  # only loaded (with torch) for model files
        if models is not None and isinstance(exc, models.ModelExportError):
            raise UserError(str(exc)) from None
        raise
