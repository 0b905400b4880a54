"""NeuralFinder: artificial-life evolution on a lattice (the method this tool exists for)."""
from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator
from alife_nas.evolution import (
    EvolutionConfig,
    evolve_round,
    initialize_lattice,
    is_better,
)
from alife_nas.genome import Genome
from alife_nas.lattice import Lattice


class NeuralFinder:
    """The lattice strategy: step 0 fills and scores L×L cells, each step is :func:`evolve_round` of ``masters`` masters.

    With ``masters=1`` (the default, the seed's method) a step is one :func:`evolve_step`.
    """

    name: ClassVar[str] = "neuralfinder"
    Options: ClassVar[type] = EvolutionConfig

    def __init__(self, options: EvolutionConfig) -> None:
        self.config = options
        self._lattice: Lattice | None = None

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator, init_genomes: Sequence[Genome] = ()) -> dict:
        """Fill and score every cell; known genomes (``--init-genomes``) take the first cells."""
        self._lattice, record = initialize_lattice(self.config, rng, evaluate, init_genomes)
        return record.to_dict()

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        assert self._lattice is not None, "initialize() first"
        current = getattr(evaluate, "current", None)  # --reevaluate K > 1: genomes' means move
        if current is not None:
            self._lattice.refresh_fitness(lambda genome: current(step, genome))
        return evolve_round(self._lattice, self.config, rng, evaluate, step, self.config.masters)

    def state(self) -> dict:
        return {}  # the lattice is the whole state, and it is stored as the step's lattice

    def load_state(self, state: dict, lattice: dict | None) -> None:
        self._lattice = None if lattice is None else Lattice.from_dict(lattice)

    def initial_trainings(self, init_genomes: Sequence[Genome] = ()) -> int:
        return self.config.lattice ** 2  # every cell, known genomes or not

    def lattice(self) -> dict | None:
        return None if self._lattice is None else self._lattice.to_dict()

    def population_fitness(self) -> list[float]:
        return [] if self._lattice is None else self._lattice.fitness.ravel().tolist()

    def held_weights(self) -> list[str]:
        """``--inherit-weights``: the weights keys of the trainings the cells hold."""
        return [] if self._lattice is None else [self._lattice.weights_key(cell) for cell in self._lattice.cells()]

    def best(self) -> tuple[str, float]:
        assert self._lattice is not None
        _cell, genome, fitness = self._lattice.best()
        return str(genome), fitness

    def would_enter(self, request: EvalRequest, fitness: float) -> bool:
        """True when ``fitness`` beats, under the ratio rule, the cell the request is meant for:
        a candidate's master (the first cell it could replace), a mutant's target.

        A mutant takes its cell whatever its fitness; only one that claims to be better than what
        it replaces is worth re-training. The initial lattice is filled unconditionally (False).
        """
        if self._lattice is None or request.position is None:
            return False
        held = float(self._lattice.fitness[request.position])
        return is_better(float(fitness), held, self.config.ratio, self.config.better_by)
