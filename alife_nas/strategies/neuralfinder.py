"""NeuralFinder: artificial-life evolution on a lattice (the method this tool exists for)."""
from __future__ import annotations

from typing import ClassVar, Sequence

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator
from alife_nas.evolution import (
    EvolutionConfig,
    Outcome,
    StepRecord,
    evolve_round,
    initialize_lattice,
    is_better,
)
from alife_nas.genome import Genome
from alife_nas.lattice import Lattice
from alife_nas.operators import random_initial_genome


def seeded_lattice(config: EvolutionConfig, rng: np.random.Generator, evaluate: Evaluator,
                   init_genomes: Sequence[Genome]) -> tuple[Lattice, StepRecord]:
    """Step 0 with known genomes: :func:`initialize_lattice`, except that the first cells, in
    row-major order from (0, 0), hold ``init_genomes`` (more than L*L is a ValueError).

    Every cell's random genome is still drawn, so the other cells and the generator's state after
    step 0 are those of the run without known genomes. The record marks the given ones ``given``.
    """
    lattice = config.new_lattice()
    cells = list(lattice.cells())
    if len(init_genomes) > len(cells):
        raise ValueError(f"init_genomes: {len(init_genomes)} genomes for a {config.lattice}×{config.lattice} lattice "
                         f"of {len(cells)} cells; give at most {len(cells)}")
    genomes = [random_initial_genome(rng, config.filters, config.conv_prob) for _ in cells]
    genomes[:len(init_genomes)] = init_genomes
    requests = [EvalRequest(genome, index=i, operator="init", position=cell)
                for i, (cell, genome) in enumerate(zip(cells, genomes))]
    scores = evaluate(0, requests)
    for cell, genome, fit in zip(cells, genomes, scores):
        lattice.set(cell, genome, float(fit), step=0)
    candidates = [{"operator": "init", "genome": str(g), "fitness": float(f)} for g, f in zip(genomes, scores)]
    for candidate in candidates[:len(init_genomes)]:
        candidate["given"] = True
    record = StepRecord(step=0, outcome=Outcome.INIT.value, candidates=candidates, max_c=float(max(scores)))
    return lattice, record


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
        if init_genomes:
            self._lattice, record = seeded_lattice(self.config, rng, evaluate, list(init_genomes))
        else:  # the seed's initialisation, exactly
            self._lattice, record = initialize_lattice(self.config, rng, evaluate)
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
