"""Random search: every step scores one random genome (random length, same filter set and caps)."""
from __future__ import annotations

from typing import ClassVar

import numpy as np

from alife_nas.evolution import EvalRequest, Evaluator
from alife_nas.operators import random_genome

#: How many recent fitness values stand for "the population" in log lines and curves.
WINDOW = 20


class RandomSearch:
    """The baseline every NAS method must beat: independent uniform samples of the space."""

    name: ClassVar[str] = "random"

    def __init__(self, filters: tuple[int, ...], max_layers: int = 12) -> None:
        self.filters = tuple(filters)
        self.max_layers = max_layers
        self.best_genome: str | None = None
        self.best_fitness = 0.0
        self.recent: list[float] = []

    @classmethod
    def from_run_config(cls, config) -> "RandomSearch":
        return cls(tuple(config.filters), config.random_max_layers)

    def _sample(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        genome = random_genome(rng, self.filters, self.max_layers)
        (fitness,) = evaluate(step, [EvalRequest(genome, 0, "random")])
        if self.best_genome is None or fitness > self.best_fitness:
            self.best_genome, self.best_fitness = str(genome), float(fitness)
        self.recent = (self.recent + [float(fitness)])[-WINDOW:]
        return {"step": step, "outcome": "sampled", "candidates": [
            {"operator": "random", "genome": str(genome), "fitness": float(fitness)}], "max_c": float(fitness)}

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator) -> dict:
        return self._sample(rng, evaluate, 0)

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        return self._sample(rng, evaluate, step)

    def state(self) -> dict:
        return {"best_genome": self.best_genome, "best_fitness": self.best_fitness, "recent": self.recent}

    def load_state(self, state: dict) -> None:
        self.best_genome, self.best_fitness = state["best_genome"], state["best_fitness"]
        self.recent = list(state["recent"])

    def lattice_snapshot(self) -> dict | None:
        return None

    def population_fitness(self) -> list[float]:
        return list(self.recent)

    def best(self) -> tuple[str, float]:
        return str(self.best_genome), self.best_fitness
