"""Random search: every step scores one random genome (random length, same filter set and caps)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator
from alife_nas.genome import Genome
from alife_nas.operators import random_genome
from alife_nas.options import check_fields, filters_option, option

#: How many recent fitness values stand for "the population" in log lines and curves.
WINDOW = 20


@dataclass(frozen=True)
class RandomOptions:
    """Random search's options: the filter set and the longest genome it samples."""

    filters: tuple[int, ...] = filters_option()
    random_max_layers: int = option(12, "Longest random genome (ga: of the initial population).", low=1, high=1000)

    def __post_init__(self) -> None:
        check_fields(self)


class RandomSearch:
    """The baseline every NAS method must beat: independent uniform samples of the space."""

    name: ClassVar[str] = "random"
    Options: ClassVar[type] = RandomOptions

    def __init__(self, options: RandomOptions) -> None:
        self.filters = options.filters
        self.max_layers = options.random_max_layers
        self.best_genome: str | None = None
        self.best_fitness = 0.0
        self.recent: list[float] = []

    def _sample(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        genome = random_genome(rng, self.filters, self.max_layers)
        (fitness,) = evaluate(step, [EvalRequest(genome, 0, "random")])
        if self.best_genome is None or fitness > self.best_fitness:
            self.best_genome, self.best_fitness = str(genome), float(fitness)
        self.recent = (self.recent + [float(fitness)])[-WINDOW:]
        return {"step": step, "outcome": "sampled", "candidates": [
            {"operator": "random", "genome": str(genome), "fitness": float(fitness)}], "max_c": float(fitness)}

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator, init_genomes: Sequence[Genome] = ()) -> dict:
        """Step 0: one random sample. Known genomes (``--init-genomes``) are the first samples: scored
        in the same batch before it (indices 0..n-1; the random one is drawn as without them)."""
        if not init_genomes:
            return self._sample(rng, evaluate, 0)
        given = list(init_genomes)
        genomes = given + [random_genome(rng, self.filters, self.max_layers)]
        operators = ["init"] * len(given) + ["random"]
        scores = [float(f) for f in evaluate(0, [EvalRequest(g, i, op) for i, (g, op) in enumerate(zip(genomes, operators))])]
        candidates = []
        for genome, operator, fitness in zip(genomes, operators, scores):
            if self.best_genome is None or fitness > self.best_fitness:
                self.best_genome, self.best_fitness = str(genome), fitness
            candidates.append({"operator": operator, "genome": str(genome), "fitness": fitness,
                               **({"given": True} if operator == "init" else {})})
        self.recent = (self.recent + scores)[-WINDOW:]
        return {"step": 0, "outcome": "sampled", "candidates": candidates, "max_c": max(scores)}

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        return self._sample(rng, evaluate, step)

    def state(self) -> dict:
        return {"best_genome": self.best_genome, "best_fitness": self.best_fitness, "recent": self.recent}

    def load_state(self, state: dict, lattice: dict | None) -> None:
        self.best_genome, self.best_fitness = state["best_genome"], state["best_fitness"]
        self.recent = list(state["recent"])

    def initial_trainings(self, init_genomes: Sequence[Genome] = ()) -> int:
        return 1 + len(init_genomes)  # the known genomes come on top of step 0's sample

    def lattice(self) -> dict | None:
        return None

    def population_fitness(self) -> list[float]:
        return list(self.recent)

    def best(self) -> tuple[str, float]:
        return str(self.best_genome), self.best_fitness
