"""The NeuralFinder rules: initialise the lattice, and one evolution step (docs/method.md).

Scoring is pluggable: the engine hands a batch of :class:`EvalRequest` to an evaluator and gets
one fitness per request back. A step's five candidates go out as one batch (they are independent,
so an evaluator may train them in parallel), then the two mutants as a second batch.

All randomness comes from the one ``numpy.random.Generator`` passed in, drawn in this order per
step: master, partner, cut in s1, cut in s2, then (only when the lattice changes) the tie-break
keys of the weakest-neighbour search and each mutant's point and new filter count.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Protocol, Sequence

import numpy as np

from alife_nas.genome import DEFAULT_FILTERS, Genome, normalize_filters
from alife_nas.lattice import Cell, Lattice
from alife_nas.operators import (
    CROSSOVER_NAMES,
    crossover,
    draw_cut,
    mutate_filter,
    random_initial_genome,
    self_replicate,
)
from alife_nas.validation import check_bool, check_choice, check_int, check_number

__all__ = [
    "EvalRequest",
    "Evaluator",
    "EvolutionConfig",
    "Outcome",
    "StepRecord",
    "is_better",
    "initialize_lattice",
    "evolve_step",
]


#: The largest lattice side accepted (256×256 = 65,536 cells is already weeks of training).
MAX_LATTICE = 256


@dataclass(frozen=True)
class EvalRequest:
    """One genome to score, with where it came from (stored with its evaluation)."""

    genome: Genome
    index: int  # position in the step's batches: 0-4 candidates, 5-6 mutants; init: cell number
    operator: str  # 'init', 'self', 'cross-aH+bT', ..., 'mutant'
    parents: tuple[str, ...] = ()
    position: Cell | None = None  # the cell it is meant for, when known


class Evaluator(Protocol):
    """Scores a batch of genomes for a step; returns one fitness (0..1) per request, in order."""

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]: ...


@dataclass(frozen=True)
class EvolutionConfig:
    """The method's parameters: the NeuralFinder strategy's options (lattice, radius, torus, ratio, master_selection, filters).

    Defaults are the tool's one set: the seed's radius 1, torus and r = 0.02 on a 4×4 lattice, so
    the default search is a short one; the seed's own protocol uses ``lattice=9`` (docs/method.md).
    """

    lattice: int = 4
    radius: int = 1
    torus: bool = True
    ratio: float = 0.02
    master_selection: str = "uniform"  # or 'proportional'
    filters: tuple[int, ...] = DEFAULT_FILTERS
    conv_prob: float = 0.7  # share of one-layer initial genomes that are a bare conv (the rest f-M)

    def __post_init__(self) -> None:
        lattice = check_int("lattice", self.lattice, 2, MAX_LATTICE)
        checked = {
            "lattice": lattice,
            "radius": check_int("radius", self.radius, 1, lattice),
            "torus": check_bool("torus", self.torus),
            "ratio": check_number("ratio", self.ratio, 0.0),
            "master_selection": check_choice("master_selection", self.master_selection, ("uniform", "proportional")),
            "filters": normalize_filters(self.filters),
            "conv_prob": check_number("conv_prob", self.conv_prob, 0.0, 1.0),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def new_lattice(self) -> Lattice:
        return Lattice(self.lattice, self.radius, self.torus)


class Outcome(str, Enum):
    """What a step did to the lattice."""

    INIT = "init"
    NO_CHANGE = "no_change"  # max_c not better than s1
    REPLACE_MASTER = "replace_master"  # better than s1, not than s2
    REPLACE_BOTH = "replace_both"  # better than s1 and s2


#: Relative gains within this of the threshold count as *at* the threshold (not better), so that
#: e.g. 0.51 vs 0.50 at r = 0.02 is "equal" despite binary floating-point rounding.
_THRESHOLD_TOLERANCE = 1e-9


def is_better(x: float, y: float, ratio: float) -> bool:
    """The seed's comparison: x > y and (x - y) / y > r. Against y = 0 any x > 0 is better."""
    if not x > y:
        return False
    if y <= 0:
        return True
    return (x - y) / y > ratio + _THRESHOLD_TOLERANCE


@dataclass
class StepRecord:
    """Everything one step did, enough to store, display and replay it."""

    step: int
    outcome: str
    master: Cell | None = None
    partner: Cell | None = None
    master_genome: str | None = None
    partner_genome: str | None = None
    master_fitness: float | None = None
    partner_fitness: float | None = None
    cut_master: int | None = None
    cut_partner: int | None = None
    candidates: list[dict] = field(default_factory=list)  # {operator, genome, fitness}
    best_index: int | None = None
    max_c: float | None = None
    replaced: list[Cell] = field(default_factory=list)
    mutants: list[dict] = field(default_factory=list)  # {cell, genome, point, fitness, replaced_genome, replaced_fitness}

    def to_dict(self) -> dict:
        """JSON-safe form (cells become [r, c] lists)."""
        data = asdict(self)
        for key in ("master", "partner"):
            data[key] = None if data[key] is None else list(data[key])
        data["replaced"] = [list(c) for c in self.replaced]
        for m in data["mutants"]:
            m["cell"] = list(m["cell"])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "StepRecord":
        data = dict(data)
        for key in ("master", "partner"):
            data[key] = None if data.get(key) is None else tuple(data[key])
        data["replaced"] = [tuple(c) for c in data.get("replaced", [])]
        data["mutants"] = [{**m, "cell": tuple(m["cell"])} for m in data.get("mutants", [])]
        return cls(**data)


def initialize_lattice(
    config: EvolutionConfig, rng: np.random.Generator, evaluate: Evaluator
) -> tuple[Lattice, StepRecord]:
    """Step 0: fill every cell with a one-layer genome (70% ``f``, 30% ``f-M``) and score all."""
    lattice = config.new_lattice()
    cells = list(lattice.cells())
    genomes = [random_initial_genome(rng, config.filters, config.conv_prob) for _ in cells]
    requests = [
        EvalRequest(genome, index=i, operator="init", position=cell)
        for i, (cell, genome) in enumerate(zip(cells, genomes))
    ]
    scores = evaluate(0, requests)
    for cell, genome, fit in zip(cells, genomes, scores):
        lattice.set(cell, genome, float(fit), step=0)
    record = StepRecord(
        step=0,
        outcome=Outcome.INIT.value,
        candidates=[{"operator": "init", "genome": str(g), "fitness": float(f)} for g, f in zip(genomes, scores)],
        max_c=float(max(scores)),
    )
    return lattice, record


def evolve_step(
    lattice: Lattice,
    config: EvolutionConfig,
    rng: np.random.Generator,
    evaluate: Evaluator,
    step: int,
) -> StepRecord:
    """One NeuralFinder step on ``lattice`` (changed in place); returns its record."""
    # 1. master and partner
    s1 = lattice.pick_master(rng, config.master_selection)
    s2 = lattice.pick_partner(rng, s1)
    a, b = lattice.genome(s1), lattice.genome(s2)
    fit_a, fit_b = float(lattice.fitness[s1]), float(lattice.fitness[s2])

    # 2-3. self-replication and the four crossover children
    cut_a, cut_b = draw_cut(rng, a), draw_cut(rng, b)
    parents = (str(a), str(b))
    requests = [EvalRequest(self_replicate(a), 0, "self", (str(a),), s1)]
    for i, (name, child) in enumerate(zip(CROSSOVER_NAMES, crossover(a, b, cut_a, cut_b)), start=1):
        requests.append(EvalRequest(child, i, f"cross-{name}", parents, s1))

    # 4. train and score; max_c is the best (first one on ties)
    scores = [float(s) for s in evaluate(step, requests)]
    best = int(np.argmax(scores))
    winner, max_c = requests[best].genome, scores[best]
    record = StepRecord(
        step=step,
        outcome=Outcome.NO_CHANGE.value,
        master=s1,
        partner=s2,
        master_genome=str(a),
        partner_genome=str(b),
        master_fitness=fit_a,
        partner_fitness=fit_b,
        cut_master=cut_a,
        cut_partner=cut_b,
        candidates=[
            {"operator": r.operator, "genome": str(r.genome), "fitness": s} for r, s in zip(requests, scores)
        ],
        best_index=best,
        max_c=max_c,
    )

    # 5. the ratio-threshold comparison
    if not is_better(max_c, fit_a, config.ratio):
        return record
    if is_better(max_c, fit_b, config.ratio):
        record.outcome = Outcome.REPLACE_BOTH.value
        record.replaced = [s1, s2]
    else:
        record.outcome = Outcome.REPLACE_MASTER.value
        record.replaced = [s1]
    for cell in record.replaced:
        lattice.set(cell, winner, max_c, step)

    # 6. spread mutated copies of the winner into the two weakest other neighbours of s1
    targets = lattice.weakest_neighbours(rng, s1, exclude=(s1, s2), k=2)
    mutants = [mutate_filter(rng, winner, config.filters) for _ in targets]
    mutant_requests = [
        EvalRequest(genome, 5 + i, "mutant", (str(winner),), cell)
        for i, (cell, (genome, _point)) in enumerate(zip(targets, mutants))
    ]
    mutant_scores = [float(s) for s in evaluate(step, mutant_requests)] if mutant_requests else []
    for cell, (genome, point), fit in zip(targets, mutants, mutant_scores):
        record.mutants.append(
            {
                "cell": cell,
                "genome": str(genome),
                "point": point,
                "fitness": fit,
                "replaced_genome": str(lattice.genome(cell)),
                "replaced_fitness": float(lattice.fitness[cell]),
            }
        )
        lattice.set(cell, genome, fit, step)
    return record
