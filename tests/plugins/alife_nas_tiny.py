"""A strategy from outside alife_nas, for the tests of the plugin registries (tests/test_plugins.py).

It is installed as a distribution with an entry point (``alife_nas.strategies``: ``tiny``), the
way a package on PyPI would add one, and uses only alife_nas's public contract: each step scores
``tiny_batch`` random genomes and keeps the best.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator
from alife_nas.operators import random_genome
from alife_nas.options import check_fields, filters_option, option


@dataclass(frozen=True)
class TinyOptions:
    """The filter set and how many random genomes a step scores."""

    filters: tuple[int, ...] = filters_option()
    tiny_batch: int = option(2, "Random genomes a step scores.", low=1, high=100)

    def __post_init__(self) -> None:
        check_fields(self)


class TinyStrategy:
    """Random genomes of at most two layers, ``tiny_batch`` a step."""

    name: ClassVar[str] = "tiny"
    Options: ClassVar[type] = TinyOptions

    def __init__(self, options: TinyOptions) -> None:
        self.options = options
        self.best_genome: str | None = None
        self.best_fitness = 0.0
        self.last: list[float] = []

    def _batch(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        genomes = [random_genome(rng, self.options.filters, 2) for _ in range(self.options.tiny_batch)]
        scores = [float(f) for f in evaluate(step, [EvalRequest(g, i, "tiny") for i, g in enumerate(genomes)])]
        for genome, fitness in zip(genomes, scores):
            if self.best_genome is None or fitness > self.best_fitness:
                self.best_genome, self.best_fitness = str(genome), fitness
        self.last = scores
        return {"step": step, "outcome": "sampled", "max_c": max(scores), "candidates": [
            {"operator": "tiny", "genome": str(g), "fitness": f} for g, f in zip(genomes, scores)]}

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator) -> dict:
        return self._batch(rng, evaluate, 0)

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        return self._batch(rng, evaluate, step)

    def state(self) -> dict:
        return {"best_genome": self.best_genome, "best_fitness": self.best_fitness, "last": self.last}

    def load_state(self, state: dict, lattice: dict | None) -> None:
        self.best_genome, self.best_fitness, self.last = state["best_genome"], state["best_fitness"], state["last"]

    def initial_trainings(self) -> int:
        return self.options.tiny_batch

    def lattice(self) -> dict | None:
        return None

    def population_fitness(self) -> list[float]:
        return list(self.last)

    def best(self) -> tuple[str, float]:
        return str(self.best_genome), self.best_fitness


class NotAStrategy:
    """Registered under a name by a broken distribution: lacks the methods of a strategy."""

    name: ClassVar[str] = "not-a-strategy"


def serial_again(config, job, data):
    """An executor factory from outside: the serial executor under another name."""
    from alife_nas.executors import SerialExecutor

    serial_again.made += 1
    return SerialExecutor(job.scorer(data=data))


serial_again.made = 0
