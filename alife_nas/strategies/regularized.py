"""Regularized (aging) evolution with Large-Scale Evolution's mutations that fit our genome.

Population of P genomes, oldest first. Each step samples T members uniformly (without
replacement by default; ``tournament_sampling="with-replacement"`` draws each from the whole
population, as the paper's Algorithm 1 does), mutates the fittest of the sample once, scores the
child, appends it and removes the oldest member (Real et al. 2019). A child whose genome was
trained before in the run gets its stored fitness (a cache hit); with ``retrain_rediscovered``
it is trained again instead, as a further sample of that genome, as aging evolution trains every
model it makes (docs/baselines.md lists what else differs). The mutations are the layer edits
of Large-Scale Evolution that make sense for a plain conv/pool sequence: change a filter count,
insert or remove a conv, insert or remove a max-pool. The population starts like the lattice does
(one-layer genomes, 70% ``f`` / 30% ``f-M``), so both methods begin from the same place.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator, mean_fitness, place_known
from alife_nas.genome import Genome, parse_genome
from alife_nas.operators import mutate_structure, random_initial_genome
from alife_nas.inheritance import Inherit, aligned_map, request_key
from alife_nas.options import (
    check_fields,
    check_inheritance,
    filters_option,
    inherit_weights_option,
    inherited_epochs_option,
    option,
)
from alife_nas.validation import check_int

#: How a tournament draws its T members from the population: ``without-replacement`` (T distinct
#: members; today's default) or ``with-replacement`` (Real et al.'s: each draw from the whole
#: population, so a member may be drawn twice).
SAMPLINGS: tuple[str, ...] = ("without-replacement", "with-replacement")


@dataclass(frozen=True)
class RegularizedOptions:
    """Aging evolution's options: the filter set, population size P and tournament size T."""

    filters: tuple[int, ...] = filters_option()
    population: int = option(20, "Population size.", low=2, high=100_000)
    tournament: int = option(5, "Tournament size (at most the population).", low=1, high=100_000)
    tournament_sampling: str = option("without-replacement", "How a tournament draws its members: "
                                      "without-replacement (distinct members) or with-replacement (the paper's: "
                                      "a member may be drawn twice).", choices=SAMPLINGS)
    retrain_rediscovered: bool = option(False, "Train a child (or initial member) whose genome this run has trained "
                                        "before again, as a further sample, instead of reusing its stored fitness "
                                        "(aging evolution trains every model it makes).")
    inherit_weights: bool = inherit_weights_option()
    inherited_epochs: float = inherited_epochs_option()

    def __post_init__(self) -> None:
        check_fields(self)
        check_int("tournament", self.tournament, 1, self.population)
        check_inheritance(self)
        if self.inherit_weights and self.retrain_rediscovered:
            raise ValueError("inherit_weights and retrain_rediscovered cannot be combined: an inherited child is "
                             "trained afresh anyway (its cache key names its parent's training)")

class RegularizedEvolution:
    """Aging evolution; population size and tournament size are options."""

    name: ClassVar[str] = "regularized"
    Options: ClassVar[type] = RegularizedOptions

    def __init__(self, options: RegularizedOptions) -> None:
        self.options = options
        self.filters = options.filters
        self.size = options.population
        self.tournament = options.tournament
        self.population: list[tuple[str, float]] = []  # oldest first
        self.weights: list[str] = []  # --inherit-weights: each member's weights key, in population order
        self.best_genome: str | None = None
        self.best_fitness = 0.0
        self.trainings: dict[str, int] = {}  # genome -> its trainings in this run (kept with retrain_rediscovered)

    def _remember(self, genome: Genome, fitness: float) -> None:
        if self.best_genome is None or fitness > self.best_fitness:
            self.best_genome, self.best_fitness = str(genome), float(fitness)

    def _score(self, evaluate: Evaluator, step: int, requests: list[EvalRequest]) -> tuple[list[EvalRequest], list[float]]:
        """Score the requests (all asking for sample 0); returns the requests as sent and one fitness each.

        Without ``retrain_rediscovered`` they go as they are: a genome trained before in this run is a
        cache hit and gets its stored fitness. With it, each asks for its genome's next sample k (the
        trainings the genome has had in this run, copies earlier in the batch counted), so a
        re-discovered genome is trained afresh (``EvalRequest.sample`` = k >= 1, as ``ga`` asks for
        its survivors' trainings) and gets that training's fitness. Under ``--reevaluate K`` the
        evaluator may add trainings; the answer is then the mean of all of them, as for every genome
        there, and they are counted from its ``samples``.
        """
        if not self.options.retrain_rediscovered:
            return requests, [float(f) for f in evaluate(step, requests)]
        seen = dict(self.trainings)
        numbered = []
        for request in requests:
            k = seen.get(str(request.genome), 0)
            seen[str(request.genome)] = k + 1
            numbered.append(dataclasses.replace(request, sample=k))
        every = getattr(evaluate, "samples", None)  # a SampleEvaluator: the --reevaluate gate
        if every is None:  # each answer is the fitness of the training asked for
            scores = [float(f) for f in evaluate(step, numbered)]
            self.trainings = seen
        else:  # every training of each genome so far, the ones --reevaluate added included
            trainings = every(step, numbered)
            scores = [mean_fitness(values) for values in trainings]
            for request, values in zip(numbered, trainings):
                self.trainings[str(request.genome)] = len(values)
        return numbered, scores

    def _candidates(self, requests: list[EvalRequest], scores: list[float]) -> list[dict]:
        out = [{"operator": r.operator, "genome": str(r.genome), "fitness": f} for r, f in zip(requests, scores)]
        if self.options.retrain_rediscovered:  # which training of its genome each one was
            for candidate, request in zip(out, requests):
                candidate["sample"] = request.sample
        return out

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator, init_genomes: Sequence[Genome] = ()) -> dict:
        """The first population, oldest first; known genomes (``--init-genomes``) are its first (oldest)
        members, the rest random. Every member's random genome is drawn as without them."""
        genomes = [random_initial_genome(rng, self.filters) for _ in range(self.size)]
        genomes = place_known(genomes, init_genomes, f"a population of {self.size}")
        requests, scores = self._score(evaluate, 0, [EvalRequest(g, i, "init") for i, g in enumerate(genomes)])
        for g, f in zip(genomes, scores):
            self.population.append((str(g), f))
            self._remember(g, f)
        self.weights = [str(g) for g in genomes] if self.options.inherit_weights else []
        candidates = self._candidates(requests, scores)
        for candidate in candidates[:len(init_genomes)]:
            candidate["given"] = True
        return {"step": 0, "outcome": "init", "max_c": max(scores), "candidates": candidates}

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        replace = self.options.tournament_sampling == "with-replacement"
        sample = rng.choice(len(self.population), size=self.tournament, replace=replace)
        parent_index = max(sample, key=lambda i: (self.population[i][1], -i))  # fittest; older on ties
        parent, parent_fitness = parse_genome(self.population[parent_index][0]), self.population[parent_index][1]
        child, mutation = mutate_structure(rng, parent, self.filters)
        inherit = None
        if self.options.inherit_weights:  # the child starts from its parent's training, edit aside
            inherit = Inherit(((self.weights[parent_index], str(parent)),), aligned_map(parent, child), 0)
        request = EvalRequest(child, 0, f"mutate-{mutation}", (str(parent),), inherit=inherit)
        requests, (fitness,) = self._score(evaluate, step, [request])
        removed = self.population.pop(0)
        self.population.append((str(child), fitness))
        if self.options.inherit_weights:
            self.weights = self.weights[1:] + [request_key(child, inherit)]
        self._remember(child, fitness)
        return {
            "step": step, "outcome": "aged", "parent": str(parent), "parent_fitness": parent_fitness,
            "mutation": mutation, "removed": {"genome": removed[0], "fitness": removed[1]},
            "candidates": self._candidates(requests, [fitness]),
            "max_c": fitness, "sample": [int(i) for i in sample],
        }

    def state(self) -> dict:
        state = {"population": [list(p) for p in self.population], "best_genome": self.best_genome,
                 "best_fitness": self.best_fitness}
        if self.options.retrain_rediscovered:
            state["trainings"] = dict(self.trainings)
        if self.options.inherit_weights:
            state["weights"] = list(self.weights)
        return state

    def load_state(self, state: dict, lattice: dict | None) -> None:
        self.population = [(g, float(f)) for g, f in state["population"]]
        self.best_genome, self.best_fitness = state["best_genome"], state["best_fitness"]
        self.trainings = {g: int(n) for g, n in state.get("trainings", {}).items()}
        self.weights = list(state.get("weights", []))

    def initial_trainings(self, init_genomes: Sequence[Genome] = ()) -> int:
        return self.size  # the first population, known genomes or not

    def lattice(self) -> dict | None:
        return None

    def population_fitness(self) -> list[float]:
        return [f for _, f in self.population]

    def held_weights(self) -> list[str]:
        """``--inherit-weights``: the weights keys of the members' trainings."""
        return list(self.weights)

    def best(self) -> tuple[str, float]:
        return str(self.best_genome), self.best_fitness

    def would_enter(self, request: EvalRequest, fitness: float) -> bool:
        """True when ``fitness`` beats the weakest member: every child joins the population, but
        one below its weakest member is hardly ever a tournament's winner (False while the first
        population is made)."""
        return bool(self.population) and float(fitness) > min(f for _, f in self.population)
