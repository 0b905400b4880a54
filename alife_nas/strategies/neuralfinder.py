"""NeuralFinder: artificial-life evolution on a lattice (the method this tool exists for)."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from alife_nas.evolution import Evaluator, EvolutionConfig, evolve_step, initialize_lattice
from alife_nas.lattice import Lattice


class NeuralFinder:
    """The lattice strategy: step 0 fills and scores L×L cells, each step is :func:`evolve_step`."""

    name: ClassVar[str] = "neuralfinder"

    def __init__(self, config: EvolutionConfig) -> None:
        self.config = config
        self.lattice: Lattice | None = None

    @classmethod
    def from_run_config(cls, config) -> "NeuralFinder":
        return cls(EvolutionConfig(
            lattice=config.lattice, radius=config.radius, torus=config.torus, ratio=config.ratio,
            filters=tuple(config.filters), master_selection=config.master_selection,
        ))

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator) -> dict:
        self.lattice, record = initialize_lattice(self.config, rng, evaluate)
        return record.to_dict()

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        assert self.lattice is not None, "initialize() first"
        return evolve_step(self.lattice, self.config, rng, evaluate, step).to_dict()

    def state(self) -> dict:
        return {"lattice": None if self.lattice is None else self.lattice.to_dict()}

    def load_state(self, state: dict) -> None:
        self.lattice = None if state["lattice"] is None else Lattice.from_dict(state["lattice"])

    def lattice_snapshot(self) -> dict | None:
        return None if self.lattice is None else self.lattice.to_dict()

    def population_fitness(self) -> list[float]:
        return [] if self.lattice is None else self.lattice.fitness.ravel().tolist()

    def best(self) -> tuple[str, float]:
        assert self.lattice is not None
        _cell, genome, fitness = self.lattice.best()
        return str(genome), fitness
