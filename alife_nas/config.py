"""One configuration for a search: typed sections with ONE set of defaults.

A :class:`SearchConfig` has the strategy, the run seed, the device and the known genomes to start
from (``init_genomes``) at the top, and six
sections: ``stop`` (steps, budget), ``data`` (which images, which validation split),
``training`` (every knob of the trainer, :class:`~alife_nas.settings.TrainSettings`),
``method`` (the strategy's own options, validated by the strategy's ``Options`` class),
``fitness`` (how a genome's fitness is measured against training noise, for every strategy) and
``execution`` (where and how many trainings run at once; never changes a result).

Every leaf has one name, and it is the same everywhere: the command-line option (``-`` for
``_``), the key of a ``--config`` file, the key in the stored run config and in
``status --json``. :meth:`SearchConfig.from_options` takes those flat names, so a Python user
writes exactly what a CLI user types. Pure data: no torch.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from alife_nas.contract import takes_init_genomes
from alife_nas.genome import Genome, one_line, parse_genome, shorten, shown
from alife_nas.options import check_fields, option, specs
from alife_nas.settings import PRESETS, TrainSettings, stable_hash
from alife_nas.strategies import STRATEGIES
from alife_nas.validation import check_choice, check_int, check_number

__all__ = [
    "ConfigError",
    "StopConfig",
    "DataConfig",
    "FitnessConfig",
    "SearchConfig",
    "ExecutionConfig",
    "SAFE_TO_CHANGE",
    "OPTION_CLASSES",
    "settings_hash",
    "check_device",
    "check_ray_address",
    "check_init_genomes",
    "continuing_device",
]


#: A device name; the index has at most 4 ASCII digits (no machine has more GPUs), matched whole.
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,4})?")
#: A Ray cluster address: ``HOST:PORT`` (the head's GCS, as ``ray start`` prints it) or
#: ``ray://HOST:PORT`` (Ray Client); HOST a host name, an IPv4 address or a bracketed IPv6 one.
_HOST = r"(?:[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]{2,45}\])"
_RAY_ADDRESS = re.compile(rf"(?:ray://)?{_HOST}:(?P<port>[0-9]{{1,5}})")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line and names the option."""


#: The most known genomes a run starts from (far more than any lattice or population holds).
MAX_INIT_GENOMES = 100_000


def check_init_genomes(name: str, value: Any) -> tuple[str, ...] | None:
    """A list of genomes (text in either form, or :class:`Genome`) as their canonical compact
    forms; an empty list is None (no known genomes). A one-line ConfigError naming the bad one."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{name} must be a list of genomes, got {shown(value)}")
    if len(value) > MAX_INIT_GENOMES:
        raise ConfigError(f"{name}: {len(value):,} genomes, more than the {MAX_INIT_GENOMES:,} a run may start from")
    genomes = []
    for number, item in enumerate(value, start=1):
        if isinstance(item, Genome):
            genomes.append(str(item))
            continue
        if not isinstance(item, str):
            raise ConfigError(f"{name}: genome {number} must be a text, got {shown(item)}")
        try:
            genomes.append(str(parse_genome(item)))
        except ValueError as exc:
            raise ConfigError(f"{name}: genome {number} ({shorten(item, 40)}): {one_line(exc)}") from None
    return tuple(genomes) or None


def _check_val_size(name: str, value: Any) -> float | int:
    """A fraction in (0, 1), or a whole count of images."""
    val = check_number(name, value, 0.0, low_open=True)
    return check_int(name, val, 1) if val >= 1 else val  # a count of images must be whole


def _check_devices(name: str, value: Any) -> str:
    """Comma-separated cpu, cuda or cuda:N devices, in canonical form (spaces and empty items dropped)."""
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{name} must be a comma-separated list of devices, got {shown(value)}")
    names = [d.strip() for d in value.split(",") if d.strip()]
    for device in names:
        if device == "auto" or not _DEVICE.fullmatch(device):
            raise ConfigError(f"{name} must name cpu, cuda or cuda:N devices, got {shown(device)}")
    return ",".join(names)


def continuing_device(stored: str) -> str:
    """Where a stored run trains when it goes on: a CPU run stays on the CPU, a GPU run uses
    whatever GPU this machine has (``auto``)."""
    return "cpu" if stored == "cpu" else "auto"


def check_device(value: Any) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether it exists is checked when training starts)."""
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {shown(value)}")
    return value


def check_ray_address(value: Any) -> str:
    """``local`` (start Ray here), ``auto`` (join the cluster this machine belongs to), ``HOST:PORT``
    or ``ray://HOST:PORT``, port 1..65535: checked whole, before anything is written or Ray started."""
    match = _RAY_ADDRESS.fullmatch(value) if isinstance(value, str) and len(value) <= 300 else None
    if value not in ("local", "auto") and (match is None or not 1 <= int(match["port"]) <= 65535):
        raise ConfigError(f"ray must be local, auto, HOST:PORT or ray://HOST:PORT, got {shown(value)}")
    return value


@dataclass(frozen=True)
class StopConfig:
    """When a search ends: after ``steps`` evolution steps and/or ``budget`` trainings.

    ``None`` turns a limit off. Cache hits are free: the budget counts trainings only. The step
    that reaches the budget finishes, so a search may end a few trainings over it.
    """

    steps: int | None = option(6, "Total evolution steps of the run (after initialisation); with --budget alone, "
                               "no step limit.", low=0, high=10**9, optional=True, none_means="no step limit",
                               resume=True)
    budget: int | None = option(None, "Stop after this many trainings (cache hits are free).", kind="int", low=1,
                                high=10**12, none_means="no budget", resume=True)

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class DataConfig:
    """Which images, and how the validation split (the fitness) is carved from the training set.

    ``val_size`` is a fraction (< 1) or a count of training images; ``split_seed`` fixes which
    ones. ``image_size`` resizes ``imagefolder`` images to a square. ``data_dir`` only says where
    files are, so it may change between sessions without changing any result.
    """

    dataset: str = option("digits", "digits, cifar10, cifar100, mnist, fashion-mnist, svhn or imagefolder:PATH.")
    data_dir: str = option("data", "Where data set files are (and are downloaded to).", resume=True)
    val_size: float = option(0.2, "Validation split carved from the training data: a fraction (<1) or a count.",
                             check=_check_val_size)
    split_seed: int = option(0, "Seed of the validation carve.", low=0, high=2**32 - 1)
    image_size: int | None = option(None, "imagefolder only: resize every image to NxN (needed when the images "
                                    "differ in size).", kind="int", low=1, high=4096, none_means="as stored")

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class FitnessConfig:
    """How far a strategy trusts one training, for every strategy (docs/method.md, "Re-evaluation").

    ``reevaluate`` K: a genome whose training so far would make it the best found or let it into
    the lattice or population is trained until it has K trainings (fresh seeds), and the strategy
    gets their mean. 1 (the default, the seed's protocol) trusts one training. It changes results,
    so a run keeps it, but not what a single training gives: the evaluation cache's key ignores it.
    """

    reevaluate: int = option(1, "Trainings a genome gets (fresh seeds) before a strategy relies on it, when it "
                             "would become the best or enter the lattice/population; the strategy gets their mean. "
                             "1 = trust one training.", low=1, high=1000)
    prune: str = option("none", "Stop trainings that cannot win (docs/method.md, Pruning): median = a training "
                        "below the median of the finished trainings at the same epoch stops; halving (neuralfinder) "
                        "= a step's candidates train to a quarter of the epochs, only the best goes on; none = the "
                        "seed's protocol, every training in full.", choices=("none", "median", "halving"))

    def __post_init__(self) -> None:
        check_fields(self)
        if self.prune != "none" and self.reevaluate > 1:
            raise ConfigError(f"prune {self.prune} and reevaluate {self.reevaluate} cannot be combined yet: "
                              "choose one")


@dataclass(frozen=True)
class ExecutionConfig:
    """Where the trainings run and how many at once. Results do not depend on it (on CPU: with
    the same ``threads`` per training), so it may change when a run goes on.

    ``workers``: 1 trains in this process (the default); N >= 2 starts N worker processes, or N
    Ray actors with ``ray``. ``devices``: comma-separated devices the workers are spread over
    (``cuda:0,cuda:1``; several workers may share one); default ``device``. ``threads``: torch
    threads per training (default: the CPU cores split between the workers; torch's own choice
    when serial). ``ray``: ``local`` starts a Ray instance on this machine, ``auto`` or an address
    (``HOST:PORT``, ``ray://HOST:PORT``) joins a running cluster. ``gpus_per_trial``: the GPU share each Ray training asks for (0.25
    packs four on a GPU). ``training_timeout``: seconds a training in a worker may go without
    progress (an epoch, or its result) before the worker counts as hung and is killed like a dead
    one; None or 0 = automatic, scaled from the waits seen (``executors._base.HangWatch``).
    ``executor``: the executor by name (``alife_nas.executors.EXECUTORS``, plugins included);
    None = ``ray`` with ``ray``, ``local`` with ``workers`` > 1, else ``serial``.
    """

    workers: int = option(1, "Trainings at once: 1 = in this process; N = N worker processes (or N Ray actors "
                          "with --ray).", low=1, high=4096, resume=True)
    devices: str | None = option(None, "Devices the workers are spread over, e.g. cuda:0,cuda:1 (several workers "
                                 "may share one).", kind="text", check=_check_devices, none_means="--device",
                                 resume=True)
    threads: int | None = option(None, "Torch threads per training.", kind="int", low=1, high=1024,
                                 none_means="the cores split between the workers; torch's choice when serial",
                                 resume=True)
    ray: str | None = option(None, "Train on Ray: --ray starts Ray on this machine, --ray auto or --ray HOST:PORT "
                             "(or ray://HOST:PORT) joins a cluster.", kind="text",
                             check=lambda _name, value: check_ray_address(value), flag_value="local",
                             none_means="no Ray", resume=True)
    gpus_per_trial: float | None = option(None, "With --ray: the GPU share of one training (0.25 packs four on a "
                                          "GPU).", kind="number", low=0.0, high=64.0, low_open=True,
                                          none_means="Ray's default", resume=True)
    # 0 = automatic, like None; at most a year
    training_timeout: float | None = option(None, "Seconds a training in a worker may go without progress before "
                                            "the worker counts as hung (killed, the training retried once); "
                                            "0 = automatic.", kind="number", low=0.0, high=366 * 86400.0,
                                            none_means="automatic", resume=True)
    # a name in alife_nas.executors.EXECUTORS (plugins included), checked there before any work
    executor: str | None = option(None, "Executor the trainings run on, by name: serial, local, ray or one a "
                                  "plugin adds (docs/architecture.md).", kind="text",
                                  none_means="ray with --ray, local with --workers N, else serial", resume=True)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.gpus_per_trial is not None and self.ray is None:
            raise ConfigError("gpus_per_trial only applies with ray")

    @property
    def serial(self) -> bool:
        """True when the trainings run in the search's own process (no workers, no Ray)."""
        return self.workers == 1 and self.ray is None and self.executor in (None, "serial")

    def device_list(self, default: str) -> list[str]:
        """The devices the workers are spread over, round-robin."""
        return self.devices.split(",") if self.devices else [default]


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_TOP = ("strategy", "seed", "device", "init_genomes")
_SECTIONS: dict[str, type] = {"stop": StopConfig, "data": DataConfig, "training": TrainSettings,
                               "fitness": FitnessConfig, "execution": ExecutionConfig}
#: option name -> section ("top", "stop", "data", "training", "fitness" or "execution"); strategy
#: options are looked up per strategy.
_SECTION_OF = {name: "top" for name in _TOP} | {n: s for s, cls in _SECTIONS.items() for n in _names(cls)}


def _strategy_class(name: Any) -> type:
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise ConfigError(f"strategy must be one of {', '.join(STRATEGIES)}, got {shown(name)}") from None


def _fail(exc: Exception) -> ConfigError:
    """Any validation error of a section, as a ConfigError with its one-line message."""
    return exc if isinstance(exc, ConfigError) else ConfigError(one_line(exc))


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search. Build one with :meth:`from_options` (flat names).

    ``method`` is the strategy's ``Options`` (``None`` = its defaults); for the default
    ``neuralfinder`` strategy that is :class:`~alife_nas.evolution.EvolutionConfig`.
    """

    strategy: str = option("neuralfinder", "Search strategy.", kind="choice",
                           check=lambda _name, value: _strategy_class(value).name)
    seed: int = option(0, "Run seed: all randomness and every training seed derive from it.", low=0, high=2**63 - 1)
    device: str = option("auto", "auto, cpu, cuda or cuda:N.", check=lambda _name, value: check_device(value),
                         resume=True)
    # the genomes themselves, not the file they came from: a resumed run needs no file, and a file
    # changed since cannot change the run
    init_genomes: tuple[str, ...] | None = option(
        None, "Known architectures to start from: a file with one genome a line (compact 32-64-M-128 or the tuple "
        "form; blank lines and # comments skipped), placed first in the initial lattice or population "
        "(docs/method.md, Known genomes first).", kind="genomes", check=check_init_genomes,
        none_means="none: the strategy's own random start")
    stop: StopConfig = field(default_factory=StopConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainSettings = field(default_factory=lambda: PRESETS["fast"])
    method: Any = None
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)

    def __post_init__(self) -> None:
        check_fields(self)  # strategy, seed, device, init_genomes; the sections check themselves
        if self.init_genomes and not takes_init_genomes(_strategy_class(self.strategy)):
            raise ConfigError(f"the {self.strategy} strategy cannot start from known genomes (init_genomes)")
        options_class = _strategy_class(self.strategy).Options
        if self.method is None:
            object.__setattr__(self, "method", options_class())
        elif not isinstance(self.method, options_class):
            raise ConfigError(f"method must be {options_class.__name__} for the {self.strategy} strategy, "
                              f"got {type(self.method).__name__}")
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if getattr(self.method, "inherit_weights", False) and self.fitness.reevaluate > 1:
            raise ConfigError(f"inherit_weights and reevaluate {self.fitness.reevaluate} cannot be combined yet: "
                              "an inherited training is not a sample of its genome")
        if self.fitness.prune == "halving" and self.strategy != "neuralfinder":
            raise ConfigError(f"prune halving ranks a NeuralFinder step's five candidates; the {self.strategy} "
                              "strategy has no such step: use prune median")

    # --- flat option names ------------------------------------------------------------------
    @classmethod
    def from_options(cls, **options: Any) -> "SearchConfig":
        """A config from option names, the defaults for the rest.

        ``budget`` without ``steps`` means "until the budget": the step limit is then off.
        """
        if options.get("budget") is not None and "steps" not in options:
            options["steps"] = None
        return cls().with_options(**options)

    def with_options(self, **options: Any) -> "SearchConfig":
        """A copy with some options changed (flat names); refuses unknown names and bad values.

        ``preset`` starts the training section from that preset, then applies the other training
        options given. A strategy option of another strategy is refused, naming its owner.
        """
        strategy = options.pop("strategy", self.strategy)
        options_class = _strategy_class(strategy).Options
        own = _names(options_class)
        groups: dict[str, dict[str, Any]] = {"top": {}, "stop": {}, "data": {}, "training": {}, "method": {},
                                             "fitness": {}, "execution": {}}
        for key, value in options.items():
            section = _SECTION_OF.get(key) or ("method" if key in own else None)
            if section is None:
                owners = [n for n, c in STRATEGIES.items() if key in _names(c.Options)]
                if owners:
                    kind = "strategy" if len(owners) == 1 else "strategies"
                    raise ConfigError(f"{key} is an option of the {' and '.join(owners)} {kind}, not of {strategy}")
                raise ConfigError(f"unknown option {shown(key)}")
            groups[section][key] = value
        try:
            training = self.training
            if "preset" in groups["training"]:
                training = PRESETS[check_choice("preset", groups["training"].pop("preset"), tuple(PRESETS))]
            kept = {k: v for k, v in dataclasses.asdict(self.method).items() if k in own}  # e.g. filters
            return dataclasses.replace(
                self,
                strategy=strategy,
                **groups["top"],
                stop=dataclasses.replace(self.stop, **groups["stop"]),
                data=dataclasses.replace(self.data, **groups["data"]),
                training=dataclasses.replace(training, **groups["training"]),
                method=options_class(**{**kept, **groups["method"]}),
                execution=dataclasses.replace(self.execution, **groups["execution"]),
                fitness=dataclasses.replace(self.fitness, **groups["fitness"]),
            )
        except (ValueError, TypeError, OverflowError) as exc:  # Overflow: an int too large for a float
            raise _fail(exc) from None

    def options(self) -> dict[str, Any]:
        """Every option by its flat name (JSON-safe)."""
        flat: dict[str, Any] = {"strategy": self.strategy, "seed": self.seed, "device": self.device,
                                "init_genomes": None if self.init_genomes is None else list(self.init_genomes)}
        for section in ("stop", "data", "training", "method", "fitness", "execution"):
            flat.update(self.to_dict()[section])
        return flat

    def differences(self, options: dict[str, Any]) -> list[str]:
        """``'name: ours -> given'`` for each given option (None = not given) that differs.

        Given values are first read the way the config stores them, so ``filters=[32, 16]`` equals
        a stored ``[16, 32]``; a value the config would refuse raises ConfigError.
        """
        given = {k: v for k, v in options.items() if v is not None}
        theirs = self.with_options(**given).options()
        ours = self.options()
        return [f"{key}: {ours.get(key)!r} -> {theirs[key]!r}" for key in given if ours.get(key) != theirs[key]]

    # --- stored form -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The nested JSON-safe form stored with a run (section -> option -> value)."""
        method = dataclasses.asdict(self.method)
        method["filters"] = list(method["filters"])
        return {
            "strategy": self.strategy, "seed": self.seed, "device": self.device,
            "init_genomes": None if self.init_genomes is None else list(self.init_genomes),
            "stop": dataclasses.asdict(self.stop), "data": dataclasses.asdict(self.data),
            "training": self.training.to_dict(), "method": method,
            "fitness": dataclasses.asdict(self.fitness), "execution": dataclasses.asdict(self.execution),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SearchConfig":
        """Inverse of :meth:`to_dict`; unknown keys are refused, a missing section reads as its defaults
        (a run stored before the ``fitness`` section existed trusts one training, as it did)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a search config must be a table of sections, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_TOP) - set(_SECTIONS) - {"method"})
        if unknown:
            raise ConfigError(f"unknown config key(s): {shorten(', '.join(map(str, unknown)))}")
        try:
            options_class = _strategy_class(data.get("strategy", "neuralfinder")).Options
            sections = {}
            for name, section_class in {**_SECTIONS, "method": options_class}.items():
                values = data.get(name, {})
                if not isinstance(values, dict):
                    raise ConfigError(f"config section {name} must be a table, got {shown(values)}")
                extra = sorted(set(values) - set(_names(section_class)))
                if extra:
                    raise ConfigError(f"unknown option(s) in section {name}: {shorten(', '.join(map(str, extra)))}")
                # training: a knob an older run did not store reads as it meant then (TrainSettings.from_dict)
                sections[name] = (TrainSettings.from_dict(values) if section_class is TrainSettings
                                  else section_class(**values))
            return cls(**{k: data[k] for k in _TOP if k in data}, **sections)
        except (ValueError, TypeError, OverflowError) as exc:  # Overflow: an int too large for a float
            raise _fail(exc) from None

    @classmethod
    def from_flat_v1(cls, flat: dict[str, Any]) -> "SearchConfig":
        """The config of a run written by alife_nas 0.1 (one flat table, training under ``settings``)."""
        strategy = flat.get("strategy", "neuralfinder")
        own = _names(_strategy_class(strategy).Options)
        options = {k: v for k, v in flat.items()
                   if k in _SECTION_OF and _SECTION_OF[k] in ("top", "stop", "data") or k in own}
        config = cls(strategy=strategy).with_options(**options)
        return dataclasses.replace(config, training=TrainSettings.from_dict(flat.get("settings") or {}))

    # --- what results depend on ------------------------------------------------------------------
    def cache_settings(self) -> dict[str, Any]:
        """What one training's result depends on; the evaluation cache is keyed on its hash.

        Not the ``fitness`` section: how many trainings a strategy asks for changes which are made,
        never what one of them gives.
        """
        data = self.to_dict()["data"]
        del data["data_dir"]
        # hashed(): a knob added later, at its "absent" value, leaves older runs' hash as it was
        return {"data": data, "training": self.training.hashed()}


#: The evaluation cache's settings key: a short hash of :meth:`SearchConfig.cache_settings`.
settings_hash = stable_hash


#: The sections whose options are declared (:mod:`alife_nas.options`), top-level ones first.
OPTION_CLASSES: tuple[type, ...] = (SearchConfig, StopConfig, DataConfig, TrainSettings, FitnessConfig, ExecutionConfig)

#: Options a resumed search may change without changing any result: those declared ``resume=True``.
SAFE_TO_CHANGE: tuple[str, ...] = tuple(name for cls in OPTION_CLASSES for name, spec in specs(cls).items()
                                        if spec.resume)
