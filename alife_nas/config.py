"""One configuration for a search: typed sections with ONE set of defaults.

A :class:`SearchConfig` has the strategy, the run seed and the device at the top, and six
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

from alife_nas.genome import shorten, shown
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
    "settings_hash",
    "check_device",
    "continuing_device",
]

#: Options a resumed search may change without changing any result.
SAFE_TO_CHANGE = ("steps", "budget", "device", "data_dir", "workers", "devices", "threads", "ray", "gpus_per_trial")

#: A device name; the index has at most 4 ASCII digits (no machine has more GPUs), matched whole.
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]{1,4})?")


class ConfigError(ValueError):
    """A configuration that cannot be used; the message is one line and names the option."""


def continuing_device(stored: str) -> str:
    """Where a stored run trains when it goes on: a CPU run stays on the CPU, a GPU run uses
    whatever GPU this machine has (``auto``)."""
    return "cpu" if stored == "cpu" else "auto"


def check_device(value: Any) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (whether it exists is checked when training starts)."""
    if not isinstance(value, str) or not _DEVICE.fullmatch(value):
        raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {shown(value)}")
    return value


@dataclass(frozen=True)
class StopConfig:
    """When a search ends: after ``steps`` evolution steps and/or ``budget`` trainings.

    ``None`` turns a limit off. Cache hits are free: the budget counts trainings only. The step
    that reaches the budget finishes, so a search may end a few trainings over it.
    """

    steps: int | None = 6
    budget: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_int("steps", self.steps, 0, 10**9, optional=True))
        object.__setattr__(self, "budget", check_int("budget", self.budget, 1, 10**12, optional=True))


@dataclass(frozen=True)
class DataConfig:
    """Which images, and how the validation split (the fitness) is carved from the training set.

    ``val_size`` is a fraction (< 1) or a count of training images; ``split_seed`` fixes which
    ones. ``image_size`` resizes ``imagefolder`` images to a square. ``data_dir`` only says where
    files are, so it may change between sessions without changing any result.
    """

    dataset: str = "digits"
    data_dir: str = "data"
    val_size: float = 0.2
    split_seed: int = 0
    image_size: int | None = None

    def __post_init__(self) -> None:
        for name in ("dataset", "data_dir"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name} must be a non-empty text, got {shown(value)}")
            if "\0" in value:  # no file name may hold one; refused here, not as a traceback when opened
                raise ConfigError(f"{name} must not contain a NUL character, got {shown(value)}")
        val = check_number("val_size", self.val_size, 0.0, low_open=True)
        if val >= 1:
            val = check_int("val_size", val, 1)  # a count of images must be whole
        object.__setattr__(self, "val_size", val)
        object.__setattr__(self, "split_seed", check_int("split_seed", self.split_seed, 0, 2**32 - 1))
        object.__setattr__(self, "image_size", check_int("image_size", self.image_size, 1, 4096, optional=True))


@dataclass(frozen=True)
class FitnessConfig:
    """How far a strategy trusts one training, for every strategy (docs/method.md, "Re-evaluation").

    ``reevaluate`` K: a genome whose training so far would make it the best found or let it into
    the lattice or population is trained until it has K trainings (fresh seeds), and the strategy
    gets their mean. 1 (the default, the seed's protocol) trusts one training. It changes results,
    so a run keeps it, but not what a single training gives: the evaluation cache's key ignores it.
    """

    reevaluate: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "reevaluate", check_int("reevaluate", self.reevaluate, 1, 1000))


@dataclass(frozen=True)
class ExecutionConfig:
    """Where the trainings run and how many at once. Results do not depend on it (on CPU: with
    the same ``threads`` per training), so it may change when a run goes on.

    ``workers``: 1 trains in this process (the default); N >= 2 starts N worker processes, or N
    Ray actors with ``ray``. ``devices``: comma-separated devices the workers are spread over
    (``cuda:0,cuda:1``; several workers may share one); default ``device``. ``threads``: torch
    threads per training (default: the CPU cores split between the workers; torch's own choice
    when serial). ``ray``: ``local`` starts a Ray instance on this machine, ``auto`` or an address
    joins a running cluster. ``gpus_per_trial``: the GPU share each Ray training asks for (0.25
    packs four on a GPU).
    """

    workers: int = 1
    devices: str | None = None
    threads: int | None = None
    ray: str | None = None
    gpus_per_trial: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "workers", check_int("workers", self.workers, 1, 4096))
        object.__setattr__(self, "threads", check_int("threads", self.threads, 1, 1024, optional=True))
        if self.devices is not None:
            if not isinstance(self.devices, str) or not self.devices.strip():
                raise ConfigError(f"devices must be a comma-separated list of devices, got {shown(self.devices)}")
            names = [d.strip() for d in self.devices.split(",") if d.strip()]
            for name in names:
                if name == "auto" or not _DEVICE.fullmatch(name):
                    raise ConfigError(f"devices must name cpu, cuda or cuda:N devices, got {shown(name)}")
            object.__setattr__(self, "devices", ",".join(names))
        if self.ray is not None and (not isinstance(self.ray, str) or not self.ray.strip()):
            raise ConfigError(f"ray must be local, auto or a cluster address, got {shown(self.ray)}")
        if self.gpus_per_trial is not None:
            check_number("gpus_per_trial", self.gpus_per_trial, 0.0, 64.0, low_open=True)
            if self.ray is None:
                raise ConfigError("gpus_per_trial only applies with ray")

    @property
    def serial(self) -> bool:
        """True when the trainings run in the search's own process (no workers, no Ray)."""
        return self.workers == 1 and self.ray is None

    def device_list(self, default: str) -> list[str]:
        """The devices the workers are spread over, round-robin."""
        return self.devices.split(",") if self.devices else [default]


def _names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


_TOP = ("strategy", "seed", "device")
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
    return exc if isinstance(exc, ConfigError) else ConfigError(" ".join(str(exc).split()))


@dataclass(frozen=True)
class SearchConfig:
    """Everything that defines a search. Build one with :meth:`from_options` (flat names).

    ``method`` is the strategy's ``Options`` (``None`` = its defaults); for the default
    ``neuralfinder`` strategy that is :class:`~alife_nas.evolution.EvolutionConfig`.
    """

    strategy: str = "neuralfinder"
    seed: int = 0
    device: str = "auto"
    stop: StopConfig = field(default_factory=StopConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainSettings = field(default_factory=lambda: PRESETS["fast"])
    method: Any = None
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    fitness: FitnessConfig = field(default_factory=FitnessConfig)

    def __post_init__(self) -> None:
        options_class = _strategy_class(self.strategy).Options
        object.__setattr__(self, "seed", check_int("seed", self.seed, 0, 2**63 - 1))
        check_device(self.device)
        if self.method is None:
            object.__setattr__(self, "method", options_class())
        elif not isinstance(self.method, options_class):
            raise ConfigError(f"method must be {options_class.__name__} for the {self.strategy} strategy, "
                              f"got {type(self.method).__name__}")
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")

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
        flat: dict[str, Any] = {"strategy": self.strategy, "seed": self.seed, "device": self.device}
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
                sections[name] = section_class(**values)
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
        return {"data": data, "training": self.training.to_dict()}


#: The evaluation cache's settings key: a short hash of :meth:`SearchConfig.cache_settings`.
settings_hash = stable_hash
