"""What every search strategy provides, so the search loop, store and CLI treat them alike."""
from __future__ import annotations

from typing import Any, ClassVar, Protocol

import numpy as np

from alife_nas.evolution import Evaluator


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

    def lattice(self) -> dict | None:
        """The lattice for pictures and status (None for strategies without one)."""
        ...

    def population_fitness(self) -> list[float]:
        """Fitness of every genome currently held (for mean/worst in logs and curves)."""
        ...

    def best(self) -> tuple[str, float]:
        """The best genome (compact form) currently held and its fitness."""
        ...
