"""Genetic CNN's generational genetic algorithm (Xie & Yuille 2017) over layer-sequence genomes.

A population of N genomes evolves generation by generation; one strategy step is one generation:

1. *selection*: N draws, with replacement, by roulette wheel: with ``selection`` =
   ``proportional`` (the default) probability fitness / sum (GeneticNAS's rule; uniform when
   every fitness is 0), with ``min-shifted`` the paper's rule, proportional to fitness minus
   the generation's lowest (the weakest never survives; uniform when all are equal);
2. *crossover*: the selected genomes are paired in order (0, 1), (2, 3), ...; a pair crosses
   with probability ``crossover_prob`` (pC), and then each of its units (a *stage*: the layers
   up to and including a max-pool, or the convs after the last pool) is exchanged with
   probability ``crossover_per_stage`` (qC);
3. *mutation*: each genome that did not cross mutates with probability ``mutation_prob`` (pM),
   and then each of its layers is edited with probability ``mutation_per_layer`` (qM): another
   filter count (a pool becomes a conv), a conv or a pool inserted after it, or its removal.
   With ``mutation_bits`` B the paper's fixed-length string is mimicked instead: each of B
   "bits" flips with probability qM, and each flip is one such edit at a uniform layer (B = 19,
   the paper's string, changes about 62% of the members drawn to mutate). Either way a genome
   that starts with a conv keeps a conv first (a pool is never left on the raw input);
4. *evaluation*: every member of the new generation is trained once more. A genome's fitness is
   the mean of all its samples, so a survivor (carried over unchanged) is re-trained with a
   fresh seed and averaged, as the paper does against training noise.
   With ``--reevaluate K`` the evaluator may add trainings of a new member (up to K at once,
   when it would enter or be the best); they arrive through its ``samples`` and count like
   the GA's own, which go on from there.

The paper's genome is a fixed-length bit string (connections inside S stages); docs/baselines.md
explains how its operators map onto our plain conv/pool sequences.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator, mean_fitness, place_known
from alife_nas.genome import (
    MAXPOOL,
    Conv,
    Genome,
    Layer,
    MaxPool,
    parse_genome,
)
from alife_nas.operators import random_genome
from alife_nas.options import check_fields, filters_option, option

__all__ = ["GeneticOptions", "GeneticCNN", "roulette", "selection_weights", "selection_probabilities", "stages",
           "exchange_stages", "mutate_layers", "mutate_bits", "LAYER_EDITS", "SELECTIONS", "PAPER_BITS"]

#: What a mutation does to a layer it picks (drawn uniformly): another filter count (a pool
#: becomes a conv), a conv inserted after it, a pool inserted after it, or the layer removed.
LAYER_EDITS: tuple[str, ...] = ("filter", "insert-conv", "insert-pool", "remove")

#: Roulette rules: ``proportional`` (fitness / sum, GeneticNAS's; today's default) and
#: ``min-shifted`` (Genetic CNN's: fitness minus the generation's lowest, / their sum).
SELECTIONS: tuple[str, ...] = ("proportional", "min-shifted")

#: The length of Genetic CNN's genome in its CIFAR-10 experiment: S = 3 stages of (3, 4, 5)
#: nodes, 3 + 6 + 10 bits (the value of ``--mutation-bits`` that mimics the paper).
PAPER_BITS = 19

#: One member of a new generation before it is trained: genome, how it came about, its parents.
Member = tuple[Genome, str, tuple[str, ...]]


@dataclass(frozen=True)
class GeneticOptions:
    """Genetic CNN's options; the defaults are the paper's (N 20, pM 0.8, qM 0.05, pC 0.2, qC 0.2).

    The paper's T generations are the run's steps (``steps``; it ran 50). ``random_max_layers``
    is the longest genome of the random initial population (as random search samples it).
    ``selection`` and ``mutation_bits`` default to the rules this strategy had before they existed
    (a stored run without them resumes as it ran); ``selection="min-shifted"`` and
    ``mutation_bits=19`` are the paper's.
    """

    filters: tuple[int, ...] = filters_option()
    population: int = option(20, "Population size.", low=2, high=100_000)
    mutation_prob: float = option(0.8, "Probability pM that a member which did not cross mutates.", low=0.0, high=1.0)
    mutation_per_layer: float = option(0.05, "Probability qM that a mutation edits each layer (with --mutation-bits: "
                                             "that each bit flips).", low=0.0, high=1.0)
    crossover_prob: float = option(0.2, "Probability pC that a pair crosses.", low=0.0, high=1.0)
    crossover_per_stage: float = option(0.2, "Probability qC that a crossing pair exchanges each stage.",
                                        low=0.0, high=1.0)
    random_max_layers: int = option(12, "Longest random genome (ga: of the initial population).", low=1, high=1000)
    selection: str = option("proportional", "Roulette rule: proportional (fitness / sum, GeneticNAS's) or "
                                            "min-shifted (Genetic CNN's: fitness minus the generation's lowest).",
                            choices=SELECTIONS)
    mutation_bits: int | None = option(None, "Mutate like the paper's B-bit string: each of B bits flips with "
                                             "probability qM, each flip one layer edit at a uniform position "
                                             "(19: the paper's string).", kind="int", low=1, high=100_000,
                                       none_means="each layer edited with probability qM")

    def __post_init__(self) -> None:
        check_fields(self)


def selection_weights(fitness: Sequence[float], rule: str = "proportional") -> np.ndarray:
    """The roulette's unnormalised weights: ``proportional``: the fitness values (negatives as 0);
    ``min-shifted``: each fitness minus the lowest. All ones when they sum to 0 (every fitness 0,
    or with ``min-shifted`` every fitness equal): then the draw is uniform."""
    values = np.asarray(fitness, dtype=float)
    if rule == "proportional":
        weights = np.maximum(values, 0.0)
    elif rule == "min-shifted":
        weights = values - values.min()
    else:
        raise ValueError(f"selection must be one of {', '.join(SELECTIONS)}, got {rule!r}")
    if not weights.sum() > 0:
        weights = np.ones(len(weights))
    return weights


def selection_probabilities(fitness: Sequence[float], rule: str = "proportional") -> list[float]:
    """The probability that one roulette draw picks each member (:func:`selection_weights` / their sum)."""
    weights = selection_weights(fitness, rule)
    return [float(w) for w in weights / weights.sum()]


def roulette(rng: np.random.Generator, fitness: Sequence[float], count: int, rule: str = "proportional") -> list[int]:
    """``count`` indices drawn with replacement, each with probability :func:`selection_probabilities`:
    fitness / sum by default (uniform when all are 0), ``rule="min-shifted"`` the paper's.

    Draws ``count`` uniforms, one per pick, whatever the fitness values.
    """
    weights = selection_weights(fitness, rule)
    edges = np.cumsum(weights)
    picks = np.searchsorted(edges, rng.random(count) * edges[-1], side="right")
    return [int(i) for i in np.minimum(picks, len(weights) - 1)]


def stages(genome: Genome) -> list[tuple[Layer, ...]]:
    """The genome cut after each max-pool: every stage but the last ends with a pool."""
    out: list[tuple[Layer, ...]] = []
    current: list[Layer] = []
    for layer in genome:
        current.append(layer)
        if isinstance(layer, MaxPool):
            out.append(tuple(current))
            current = []
    if current:
        out.append(tuple(current))
    return out


def exchange_stages(rng: np.random.Generator, a: Genome, b: Genome, rate: float) -> tuple[Genome, Genome, list[int]]:
    """Genetic CNN's crossover: stage s of ``a`` and of ``b`` change places with probability ``rate``.

    Stages are numbered from the input; where one genome has fewer, its missing stage is empty,
    so exchanging it moves the other's stage across. One uniform per stage index, up to the
    larger count. Stage 0 exists in both, so neither child is ever empty. Returns both children
    and the exchanged stage indices.
    """
    sa, sb = stages(a), stages(b)
    units = max(len(sa), len(sb))
    sa += [()] * (units - len(sa))
    sb += [()] * (units - len(sb))
    exchanged = []
    for s in range(units):
        if rng.random() < rate:
            sa[s], sb[s] = sb[s], sa[s]
            exchanged.append(s)
    return Genome(sum(sa, ())), Genome(sum(sb, ())), exchanged


def _conv(rng: np.random.Generator, filters: Sequence[int]) -> Conv:
    return Conv(int(filters[int(rng.integers(len(filters)))]))


def _edited(rng: np.random.Generator, layer: Layer, edit: str, filters: Sequence[int]) -> list[Layer]:
    """What one edit of :data:`LAYER_EDITS` puts where ``layer`` was; draws a filter index when the
    edit needs one (a conv's new count from the set minus its own)."""
    if edit == "filter":
        if isinstance(layer, Conv):
            others = [f for f in filters if f != layer.filters]
            return [Conv(int(others[int(rng.integers(len(others)))]))]
        return [_conv(rng, filters)]
    if edit == "insert-conv":
        return [layer, _conv(rng, filters)]
    if edit == "insert-pool":
        return [layer, MAXPOOL]
    return []  # "remove": the layer is left out


def mutate_layers(rng: np.random.Generator, genome: Genome, rate: float,
                  filters: Sequence[int]) -> tuple[Genome, list[str]]:
    """Genetic CNN's mutation on a layer sequence: each layer is edited with probability ``rate``.

    Per layer, left to right: one uniform (edit it or not); for an edited layer, one index into
    :data:`LAYER_EDITS`, then a filter index when the edit needs one. A conv's new count is
    drawn from the set minus its own. Returns the child and the edits made (e.g.
    ``["2:remove"]``); a child that would have no layer is the parent unchanged. A genome that
    starts with a conv keeps a conv first: when removing its first conv would leave a pool in
    front, that removal is not made (the conv stays, the other edits are made; the draws are
    the same).
    """
    out: list[Layer] = []
    edits: list[str] = []
    for position, layer in enumerate(genome):
        if not rng.random() < rate:
            out.append(layer)
            continue
        edit = LAYER_EDITS[int(rng.integers(len(LAYER_EDITS)))]
        edits.append(f"{position}:{edit}")
        out += _edited(rng, layer, edit, filters)
    if not out:
        return genome, []
    if isinstance(genome[0], Conv) and isinstance(out[0], MaxPool):  # only "0:remove" leads to this
        out.insert(0, genome[0])
        edits.remove("0:remove")
    return Genome(tuple(out)), edits


def mutate_bits(rng: np.random.Generator, genome: Genome, bits: int, rate: float,
                filters: Sequence[int]) -> tuple[Genome, list[str]]:
    """Genetic CNN's mutation at the paper's strength: ``bits`` bits each flip with probability
    ``rate``, and each flip is one edit of :data:`LAYER_EDITS` at a uniformly drawn layer.

    Draws ``bits`` uniforms first (the flips); then per flip one position in the child as it is
    then, one index into :data:`LAYER_EDITS`, and a filter index when the edit needs one. The
    edits apply one after another, each at a position of the child so far (so the edit names
    give that position: ``"2:insert-pool"``). A removal that would leave no layer, or a pool
    first where a conv was, is not made (and not listed). The number of edits tried is thus
    Binomial(bits, rate), as the number of flipped bits in the paper, whatever the genome's
    length: with the paper's 19 bits and qM = 0.05, 1 - 0.95**19 = 62% of the members drawn to
    mutate are tried at least one edit.
    """
    flips = int(np.count_nonzero(rng.random(bits) < rate))
    layers = list(genome)
    edits: list[str] = []
    for _ in range(flips):
        position = int(rng.integers(len(layers)))
        edit = LAYER_EDITS[int(rng.integers(len(LAYER_EDITS)))]
        changed = layers[:position] + _edited(rng, layers[position], edit, filters) + layers[position + 1:]
        if not changed or (isinstance(layers[0], Conv) and isinstance(changed[0], MaxPool)):
            continue
        layers = changed
        edits.append(f"{position}:{edit}")
    return Genome(tuple(layers)), edits


class GeneticCNN:
    """Genetic CNN's generational GA: roulette selection, stage crossover, per-layer mutation,
    and every member re-trained each generation with its fitness the mean of its samples."""

    name: ClassVar[str] = "ga"
    Options: ClassVar[type] = GeneticOptions

    def __init__(self, options: GeneticOptions) -> None:
        self.options = options
        self.population: list[tuple[str, float]] = []  # (genome, mean of its samples) per member
        self.samples: dict[str, list[float]] = {}  # genome -> fitness of its samples 0, 1, ... in this run

    def _evaluate(self, evaluate: Evaluator, step: int, members: list[Member]) -> list[dict]:
        """Train every member once more (the next sample of its genome); update samples and population."""
        seen = {g: len(values) for g, values in self.samples.items()}
        requests = []
        for index, (genome, operator, parents) in enumerate(members):
            sample = seen.get(str(genome), 0)
            seen[str(genome)] = sample + 1
            requests.append(EvalRequest(genome, index, operator, parents, sample=sample))
        every = getattr(evaluate, "samples", None)  # a SampleEvaluator: the --reevaluate gate
        if every is None:  # each answer is the fitness of the training asked for
            scores = [float(s) for s in evaluate(step, requests)]
            for request, fitness in zip(requests, scores):  # requests of one genome come in sample order
                self.samples.setdefault(str(request.genome), []).append(fitness)
        else:  # --reevaluate: all trainings of each genome, the ones it added to a new genome included
            trainings = every(step, requests)
            scores = [float(values[r.sample]) for r, values in zip(requests, trainings)]
            for request, values in zip(requests, trainings):
                self.samples[str(request.genome)] = [float(v) for v in values]
        self.population = [(str(r.genome), mean_fitness(self.samples[str(r.genome)])) for r in requests]
        return [{"operator": r.operator, "genome": str(r.genome), "fitness": f, "sample": r.sample,
                 "mean": mean, "parents": list(r.parents)}
                for r, f, (_, mean) in zip(requests, scores, self.population)]

    def initialize(self, rng: np.random.Generator, evaluate: Evaluator, init_genomes: Sequence[Genome] = ()) -> dict:
        """Generation 0; known genomes (``--init-genomes``) are its first members, the rest random.
        Every member's random genome is drawn as without them."""
        opts = self.options
        genomes = [random_genome(rng, opts.filters, opts.random_max_layers) for _ in range(opts.population)]
        genomes = place_known(genomes, init_genomes, f"a population of {opts.population}")
        candidates = self._evaluate(evaluate, 0, [(g, "init", ()) for g in genomes])
        for candidate in candidates[:len(init_genomes)]:
            candidate["given"] = True
        return {"step": 0, "outcome": "init", "candidates": candidates,
                "max_c": max(c["fitness"] for c in candidates), "best_mean": self.best()[1]}

    def step(self, rng: np.random.Generator, evaluate: Evaluator, step: int) -> dict:
        opts = self.options
        selected = roulette(rng, [f for _, f in self.population], opts.population, opts.selection)
        genomes = [parse_genome(self.population[i][0]) for i in selected]
        members: list[Member] = [(g, "survivor", (str(g),)) for g in genomes]
        crossed: list[int] = []
        for n in range(0, opts.population - 1, 2):
            if rng.random() < opts.crossover_prob:
                a, b = genomes[n], genomes[n + 1]
                child_a, child_b, _ = exchange_stages(rng, a, b, opts.crossover_per_stage)
                crossed += [n, n + 1]
                for k, (child, own) in enumerate(((child_a, a), (child_b, b))):
                    members[n + k] = (child, "crossover" if child != own else "survivor", (str(a), str(b)))
        mutated: list[dict] = []
        for n, genome in enumerate(genomes):
            if n in crossed or not rng.random() < opts.mutation_prob:
                continue
            if opts.mutation_bits is None:
                child, edits = mutate_layers(rng, genome, opts.mutation_per_layer, opts.filters)
            else:
                child, edits = mutate_bits(rng, genome, opts.mutation_bits, opts.mutation_per_layer, opts.filters)
            mutated.append({"member": n, "edits": edits})  # drawn to mutate; no edit leaves it a survivor
            if child != genome:
                members[n] = (child, "mutation", (str(genome),))
        candidates = self._evaluate(evaluate, step, members)
        return {"step": step, "outcome": "generation", "selected": selected, "crossed": crossed,
                "mutated": mutated, "candidates": candidates,
                "max_c": max(c["fitness"] for c in candidates), "best_mean": self.best()[1]}

    def state(self) -> dict:
        return {"population": [list(p) for p in self.population], "samples": self.samples}

    def load_state(self, state: dict, lattice: dict | None) -> None:
        self.population = [(g, float(f)) for g, f in state["population"]]
        self.samples = {g: [float(f) for f in values] for g, values in state["samples"].items()}

    def initial_trainings(self, init_genomes: Sequence[Genome] = ()) -> int:
        return self.options.population  # the first generation, known genomes or not

    def lattice(self) -> dict | None:
        return None

    def population_fitness(self) -> list[float]:
        return [f for _, f in self.population]

    def best(self) -> tuple[str, float]:
        """The member of the current generation with the best mean fitness (the first on ties)."""
        genome, fitness = max(self.population, key=lambda p: p[1])
        return genome, fitness

    def would_enter(self, request: EvalRequest, fitness: float) -> bool:
        """True when ``fitness`` beats the weakest member of the generation before (False while the
        first generation is made): every member enters, the weak ones are seldom selected."""
        return bool(self.population) and float(fitness) > min(f for _, f in self.population)

