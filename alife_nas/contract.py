"""The contract between a search strategy and the rest: what a strategy asks for, what it gets.

A strategy hands batches of :class:`EvalRequest` to an :class:`Evaluator` and gets one fitness
(0..1) per request back; a genome trained several times is summed up by :class:`FitnessStats`
(its :func:`mean_fitness` is what a search uses). :class:`Strategy` is what every strategy
provides, so the search loop, the store, the exports and the command line treat them alike,
whether built in (``alife_nas.strategies``) or added by a package through the
``alife_nas.strategies`` entry-point group (docs/architecture.md).

Low in the layers: it imports only the genome type and numpy (no lattice, no torch, no store),
so a strategy, the run store and the exports can all depend on it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, Sequence

import numpy as np

from alife_nas.genome import Genome, parse_genome
from alife_nas.inheritance import Inherit

__all__ = [
    "Pruned",
    "PRUNED",
    "EvalRequest",
    "Evaluator",
    "SampleEvaluator",
    "FitnessStats",
    "takes_init_genomes",
    "init_keywords",
    "place_known",
    "mean_fitness",
    "Strategy",
    "STRATEGY_METHODS",
    "check_strategy",
    "would_enter",
]


@dataclass(frozen=True)
class EvalRequest:
    """One genome to score, with where it came from (stored with its evaluation).

    ``sample`` 0 is the genome's one cached training (a repeat of the genome is a cache hit);
    ``sample`` k >= 1 asks for its k-th further training with a fresh seed (repeated samples
    against training noise, e.g. the ``ga`` strategy's survivors).
    """

    genome: Genome
    index: int  # position in the step's batches: 0-4 candidates, 5-6 mutants (+7k for master k); init: cell number
    operator: str  # 'init', 'self', 'cross-aH+bT', ..., 'mutant'
    parents: tuple[str, ...] = ()
    position: tuple[int, int] | None = None  # the lattice cell (row, column) it is meant for, when known
    sample: int = 0  # which training of the genome: 0 = the cached one, k >= 1 = a further one
    rung: int = 0  # --prune halving: train only to this epoch (0 = in full); see evaluation.Halving
    inherit: Inherit | None = None  # --inherit-weights: the parents' trained layers it starts from


class Evaluator(Protocol):
    """Scores a batch of genomes for a step; returns one fitness (0..1) per request, in order."""

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]: ...


class SampleEvaluator(Evaluator, Protocol):
    """An evaluator that may train a genome more than once (``--reevaluate``): it returns each
    genome's mean, and :meth:`samples` tells a strategy that keeps its own samples (``ga``) all
    of them."""

    def samples(self, step: int, requests: Sequence[EvalRequest]) -> list[tuple[float, ...]]:
        """Like calling it, but per request the fitness of every training of its genome so far, sample 0 first."""
        ...


def mean_fitness(values: Sequence[float]) -> float:
    """A genome's fitness over several trainings: their plain mean (the one formula used everywhere)."""
    return float(sum(values) / len(values))


@dataclass(frozen=True)
class FitnessStats:
    """A genome's trainings summed up: the mean a search uses, the lowest and highest, how many."""

    mean: float
    low: float
    high: float
    samples: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "FitnessStats":
        """The stats of one genome's training fitness values (at least one)."""
        values = [float(v) for v in values]
        if not values:
            raise ValueError("a genome's fitness needs at least one training")
        return cls(mean_fitness(values), min(values), max(values), len(values))

    @property
    def spread(self) -> tuple[float, float] | None:
        """(lowest, highest) of several trainings; None for one (no spread to show)."""
        return None if self.samples == 1 else (self.low, self.high)


class Strategy(Protocol):
    """A search strategy over genomes. Pure logic: no torch, no I/O.

    ``name`` is its name in ``--strategy`` and the run config (for a strategy added by entry
    point, the entry point's name). ``Options`` is the strategy's own frozen dataclass of options
    (with ``filters``, the search space; fields made with :func:`alife_nas.options.option`); it
    validates its values when made, and its field names are the config and command-line names.
    The search calls :meth:`initialize` once (step 0), then :meth:`step` for steps 1, 2, ...
    Each returns a JSON-safe record of what happened. After every call the search stores the
    record and :meth:`lattice` with the step, and :meth:`state` with the generator's state as
    the newest (replaced each step, never kept per step, so it may be large); :meth:`load_state`
    continues from them exactly. What is worth keeping about every step goes into its record,
    which should stay small. All randomness comes from the generator.
    """

    name: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, options: Any) -> None: ...

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator) -> dict:
        """Step 0. A strategy that can start from known genomes (``--init-genomes``) takes them as
        an optional keyword ``init_genomes`` (a sequence of :class:`Genome`; see :func:`takes_init_genomes`),
        here and in :meth:`initial_trainings`; it is passed only when there are some."""
        ...

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict: ...

    def state(self) -> dict:
        """What it takes to continue, JSON-safe; never the lattice (stored once, by :meth:`lattice`)."""
        ...

    def load_state(self, state: dict, lattice: dict | None) -> None: ...

    def initial_trainings(self) -> int:
        """How many genomes :meth:`initialize` asks to score (progress displays count them)."""
        ...

    def lattice(self) -> dict | None:
        """The lattice for pictures and status (None for strategies without one)."""
        ...

    def population_fitness(self) -> list[float]:
        """Fitness of every genome currently held (for mean/worst in logs and curves)."""
        ...

    def best(self) -> tuple[str, float]:
        """The best genome (compact form) currently held and its fitness."""
        ...

    def would_enter(self, request: EvalRequest, fitness: float) -> bool:
        """Would ``fitness`` let the request's genome into what the strategy holds (the lattice, the
        population)? Asked before the batch changes anything; ``--reevaluate`` re-trains such a
        genome before the strategy relies on it. Optional: see :func:`would_enter`."""
        ...


#: What a strategy class must have (``would_enter`` is optional); checked when one is registered.
STRATEGY_METHODS = ("initialize", "step", "state", "load_state", "initial_trainings", "lattice",
                    "population_fitness", "best")


def check_strategy(name: str, cls: Any) -> None:
    """Raise TypeError (one line) unless ``cls`` can be the strategy ``name``: a class whose
    ``name`` is ``name``, whose ``Options`` is a dataclass made with all its defaults, and with
    the methods of :class:`Strategy`. The strategy registry runs it on every strategy it gets."""
    if not isinstance(cls, type):
        raise TypeError(f"{cls!r} is not a class")
    if getattr(cls, "name", None) != name:
        raise TypeError(f"{cls.__name__}.name is {getattr(cls, 'name', None)!r}, not {name!r}")
    options = getattr(cls, "Options", None)
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise TypeError(f"{cls.__name__}.Options is not a dataclass")
    missing = [m for m in STRATEGY_METHODS if not callable(getattr(cls, m, None))]
    if missing:
        raise TypeError(f"{cls.__name__} lacks {', '.join(missing)}")
    options()  # every option needs a default (a search starts from them); raises for a bad one


def takes_init_genomes(cls: Any) -> bool:
    """Whether the strategy class can start from known genomes: its ``initialize`` and
    ``initial_trainings`` take the keyword ``init_genomes`` (optional, so a plugin without it
    still works, only not with ``--init-genomes``)."""
    import inspect

    def takes(method: Any) -> bool:
        try:
            return "init_genomes" in inspect.signature(method).parameters
        except (TypeError, ValueError):  # a callable without a signature to read
            return False

    return takes(getattr(cls, "initialize", None)) and takes(getattr(cls, "initial_trainings", None))


def init_keywords(init_genomes: Sequence[Any] | None) -> dict[str, Any]:
    """The keywords that hand a strategy's ``initialize`` / ``initial_trainings`` the run's known
    genomes: none when there are none, so a strategy that takes no ``init_genomes`` is called as before."""
    if not init_genomes:
        return {}
    return {"init_genomes": tuple(parse_genome(g) if isinstance(g, str) else g for g in init_genomes)}


def place_known(genomes: list, init_genomes: Sequence[Any], room: str) -> list:
    """``genomes`` (a strategy's random initial ones, every one drawn) with the first replaced by the
    known genomes (``--init-genomes``); a ValueError when more are known than ``room`` (e.g. "a
    population of 8") holds. Drawing them all keeps the generator where a run without them leaves it."""
    if len(init_genomes) > len(genomes):
        raise ValueError(f"init_genomes: {len(init_genomes)} genomes for {room}; give at most {len(genomes)}")
    return [*init_genomes, *genomes[len(init_genomes):]]


#: The failure kind of a training stopped early by ``--prune`` (docs/method.md, "Pruning").
PRUNED = "pruned"


class Pruned(Exception):
    """Raised from a training's epoch callback to stop it: its validation accuracy at ``epoch``
    is below what the finished trainings reached there. The training is recorded with kind
    ``pruned`` (its epochs, curve and best so far kept) and scores 0 for the strategy."""

    def __init__(self, epoch: int, value: float, threshold: float) -> None:
        if threshold == math.inf:  # the halving rung: every training stops there
            message = (f"stopped at the halving rung, epoch {epoch} (validation {value:.4f}); "
                       "only the best candidate of its step trains on")
        else:
            message = (f"pruned at epoch {epoch}: validation {value:.4f} below the median {threshold:.4f} "
                       f"of the finished trainings there")
        super().__init__(message)
        self.epoch, self.value, self.threshold = epoch, value, threshold


def would_enter(strategy: object, request: EvalRequest, fitness: float) -> bool:
    """The strategy's :meth:`Strategy.would_enter`; False for one without it (a strategy that holds
    nothing, like random search: only "would be the best found" re-trains its genomes)."""
    hook = getattr(strategy, "would_enter", None)
    return bool(hook(request, fitness)) if hook is not None else False
