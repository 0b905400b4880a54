"""What every search strategy provides, so the run loop, store and CLI treat them alike."""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

from alife_nas.evolution import Evaluator

if TYPE_CHECKING:
    from alife_nas.run import RunConfig


class Strategy(Protocol):
    """A search strategy over genomes. Pure logic: no torch, no I/O.

    The run loop calls :meth:`initialize` once (step 0), then :meth:`step` for steps 1, 2, ...
    Each returns a JSON-safe record of what happened. After every call the loop stores
    :meth:`state` (with the generator's state); :meth:`load_state` continues from it exactly.
    All randomness comes from the generator passed in.
    """

    name: ClassVar[str]

    @classmethod
    def from_run_config(cls, config: "RunConfig") -> "Strategy": ...

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator) -> dict: ...

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict: ...

    def state(self) -> dict: ...

    def load_state(self, state: dict) -> None: ...

    def lattice_snapshot(self) -> dict | None:
        """The lattice for pictures (None for strategies without one)."""
        ...

    def population_fitness(self) -> list[float]:
        """Fitness of every genome currently held (for mean/worst in logs and curves)."""
        ...

    def best(self) -> tuple[str, float]:
        """The best genome (compact form) currently held and its fitness."""
        ...
