"""What every search strategy provides, so the search loop, store and CLI treat them alike."""
from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from alife_nas.evolution import EvalRequest, Evaluator


class Strategy(Protocol):
    """A search strategy over genomes. Pure logic: no torch, no I/O.

    ``Options`` is the strategy's own frozen dataclass of options (with ``filters``, the search
    space); it validates its values when made, and its field names are the config and
    command-line names. The search calls :meth:`initialize` once (step 0), then :meth:`step` for
    steps 1, 2, ... Each returns a JSON-safe record of what happened. After every call the
    search stores :meth:`state` and :meth:`lattice` (once each) with the generator's state;
    :meth:`load_state` continues from them exactly. All randomness comes from the generator.
    """

    name: ClassVar[str]
    Options: ClassVar[type]

    def __init__(self, options: Any) -> None: ...

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator) -> dict: ...

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


def would_enter(strategy: object, request: EvalRequest, fitness: float) -> bool:
    """The strategy's :meth:`Strategy.would_enter`; False for one without it (a strategy that holds
    nothing, like random search: only "would be the best found" re-trains its genomes)."""
    hook = getattr(strategy, "would_enter", None)
    return bool(hook(request, fitness)) if hook is not None else False
