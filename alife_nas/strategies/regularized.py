"""Regularized (aging) evolution with Large-Scale Evolution's mutations that fit our genome.

Population of P genomes, oldest first. Each step samples T members uniformly without
replacement, mutates the fittest of the sample once, scores the child, appends it and removes
the oldest member (Real et al. 2019). The mutations are the layer edits of Large-Scale
Evolution that make sense for a plain conv/pool sequence: change a filter count, insert or
remove a conv, insert or remove a max-pool. The population starts like the lattice does
(one-layer genomes, 70% ``f`` / 30% ``f-M``), so both methods begin from the same place.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator
from alife_nas.genome import Genome, parse_genome
from alife_nas.operators import mutate_structure, random_initial_genome
from alife_nas.options import check_fields, filters_option, option
from alife_nas.validation import check_int


@dataclass(frozen=True)
class RegularizedOptions:
    """Aging evolution's options: the filter set, population size P and tournament size T."""

    filters: tuple[int, ...] = filters_option()
    population: int = option(20, "Population size.", low=2, high=100_000)
    tournament: int = option(5, "Tournament size (at most the population).", low=1, high=100_000)

    def __post_init__(self) -> None:
        check_fields(self)
        check_int("tournament", self.tournament, 1, self.population)

class RegularizedEvolution:
    """Aging evolution; population size and tournament size are options."""

    name: ClassVar[str] = "regularized"
    Options: ClassVar[type] = RegularizedOptions

    def __init__(self, options: RegularizedOptions) -> None:
        self.filters = options.filters
        self.size = options.population
        self.tournament = options.tournament
        self.population: list[tuple[str, float]] = []  # oldest first
        self.best_genome: str | None = None
        self.best_fitness = 0.0

    def _remember(self, genome: Genome, fitness: float) -> None:
        if self.best_genome is None or fitness > self.best_fitness:
            self.best_genome, self.best_fitness = str(genome), float(fitness)

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator) -> dict:
        genomes = [random_initial_genome(rng, self.filters) for _ in range(self.size)]
        scores = evaluate(0, [EvalRequest(g, i, "init") for i, g in enumerate(genomes)])
        for g, f in zip(genomes, scores):
            self.population.append((str(g), float(f)))
            self._remember(g, float(f))
        return {"step": 0, "outcome": "init", "max_c": float(max(scores)), "candidates": [
            {"operator": "init", "genome": str(g), "fitness": float(f)} for g, f in zip(genomes, scores)]}

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        sample = rng.choice(len(self.population), size=self.tournament, replace=False)
        parent_index = max(sample, key=lambda i: (self.population[i][1], -i))  # fittest; older on ties
        parent, parent_fitness = parse_genome(self.population[parent_index][0]), self.population[parent_index][1]
        child, mutation = mutate_structure(rng, parent, self.filters)
        (fitness,) = evaluate(step, [EvalRequest(child, 0, f"mutate-{mutation}", (str(parent),))])
        removed = self.population.pop(0)
        self.population.append((str(child), float(fitness)))
        self._remember(child, float(fitness))
        return {
            "step": step, "outcome": "aged", "parent": str(parent), "parent_fitness": parent_fitness,
            "mutation": mutation, "removed": {"genome": removed[0], "fitness": removed[1]},
            "candidates": [{"operator": f"mutate-{mutation}", "genome": str(child), "fitness": float(fitness)}],
            "max_c": float(fitness), "sample": [int(i) for i in sample],
        }

    def state(self) -> dict:
        return {"population": [list(p) for p in self.population], "best_genome": self.best_genome,
                "best_fitness": self.best_fitness}

    def load_state(self, state: dict, lattice: dict | None) -> None:
        self.population = [(g, float(f)) for g, f in state["population"]]
        self.best_genome, self.best_fitness = state["best_genome"], state["best_fitness"]

    def initial_trainings(self) -> int:
        return self.size  # the first population

    def lattice(self) -> dict | None:
        return None

    def population_fitness(self) -> list[float]:
        return [f for _, f in self.population]

    def best(self) -> tuple[str, float]:
        return str(self.best_genome), self.best_fitness

    def would_enter(self, request: EvalRequest, fitness: float) -> bool:
        """True when ``fitness`` beats the weakest member: every child joins the population, but
        one below its weakest member is hardly ever a tournament's winner (False while the first
        population is made)."""
        return bool(self.population) and float(fitness) > min(f for _, f in self.population)
