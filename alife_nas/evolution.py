"""The NeuralFinder rules: initialise the lattice, one evolution step, and rounds of K steps (docs/method.md).

Scoring is pluggable: the engine hands a batch of :class:`~alife_nas.contract.EvalRequest` to an
evaluator (:class:`~alife_nas.contract.Evaluator`, the strategies' contract) and gets one fitness
per request back. A step's five candidates go out as one batch (they are independent,
so an evaluator may train them in parallel), then the two mutants as a second batch.

All randomness comes from the one ``numpy.random.Generator`` passed in, drawn in this order per
step: master, partner, cut in s1, cut in s2, then (only when the lattice changes) the tie-break
keys of the weakest-neighbour search and each mutant's point and new filter count.

A step is split into small parts so that a round of K masters (our parallel variant; K = 1 is the
seed's method) can batch them: :func:`propose_move` (partner, cuts, candidates),
:func:`decide_move` (threshold, replacements, mutants), :func:`complete_move` (mutant fitness,
the cells to write) and :func:`apply_move` (write them). :func:`evolve_step` chains them for one
master, :func:`evolve_round` for K masters whose areas share no cell.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import NamedTuple, Sequence

import numpy as np

from alife_nas.contract import EvalRequest, Evaluator, place_known
from alife_nas.genome import Genome
from alife_nas.inheritance import Inherit, crossover_maps, mutant_map, request_key, self_replication_map
from alife_nas.lattice import Cell, Lattice
from alife_nas.operators import (
    CROSSOVER_NAMES,
    crossover,
    draw_cut,
    mutate_filter,
    random_initial_genome,
    self_replicate,
)
from alife_nas.options import (
    check_fields,
    check_inheritance,
    filters_option,
    inherit_weights_option,
    inherited_epochs_option,
    option,
)
from alife_nas.validation import check_int

__all__ = [
    "EvolutionConfig",
    "BETTER_BY",
    "Outcome",
    "StepRecord",
    "Write",
    "is_better",
    "max_masters",
    "initialize_lattice",
    "propose_move",
    "decide_move",
    "complete_move",
    "apply_move",
    "evolve_step",
    "move_generators",
    "evolve_round",
]


#: The largest lattice side accepted (256×256 = 65,536 cells is already weeks of training).
MAX_LATTICE = 256

#: What the ratio threshold is relative to: the accuracy (the seed's rule) or the error rate (ours).
BETTER_BY = ("accuracy", "error")

#: Candidates per move (self-replication and four crossovers), then up to two mutants.
CANDIDATES = 5
#: Request indices per master in a round: master k's are 7k+0..7k+4 (candidates), 7k+5, 7k+6 (mutants).
INDICES_PER_MOVE = 7


@dataclass(frozen=True)
class EvolutionConfig:
    """The method's parameters: the NeuralFinder strategy's options (lattice, radius, torus, ratio,
    master_selection, masters, filters, better_by).

    Defaults are the tool's one set: the seed's radius 1, torus and r = 0.02 on a 4×4 lattice, so
    the default search is a short one; the seed's own protocol uses ``lattice=9`` (docs/method.md).
    ``masters`` > 1 is our parallel variant (K masters per round); 1 is the seed's method.
    ``better_by`` = ``error`` (ours) applies the ratio r to the error rate instead of the
    accuracy (the seed's ``accuracy``): see :func:`is_better`.
    """

    lattice: int = option(4, "Lattice side L (L×L cells).", low=2, high=MAX_LATTICE)
    radius: int = option(1, "Neighbourhood radius d (at most the lattice side).", low=1)
    torus: bool = option(True, "Wrap the neighbourhood around the edges (torus), or clip it there (bounded).",
                         flags=("--torus/--bounded",))
    ratio: float = option(0.02, "Ratio threshold r of the comparison.", low=0.0)
    master_selection: str = option("uniform", "How the master cell is picked.", choices=("uniform", "proportional"),
                                   flags=("--master-selection", "--master"))
    # masters per round (K); their (2d+1)×(2d+1) areas never overlap
    masters: int = option(1, "Masters per step, far enough apart that their steps never touch the same cell; "
                          "their candidates train as one batch.", low=1, high=MAX_LATTICE**2)
    filters: tuple[int, ...] = filters_option()
    conv_prob: float = option(0.7, "Share of one-layer initial genomes that are a bare conv (the rest conv-M).",
                              low=0.0, high=1.0)
    better_by: str = option("accuracy", "What the ratio r is relative to: accuracy (the seed's: x > y(1+r)) or "
                            "the error rate ((1-x) < (1-y)(1-r); does not freeze near the top).", choices=BETTER_BY)
    inherit_weights: bool = inherit_weights_option()
    inherited_epochs: float = inherited_epochs_option()

    def __post_init__(self) -> None:
        check_fields(self)
        check_inheritance(self)
        check_int("radius", self.radius, 1, self.lattice)
        _check_masters(self.masters, self.lattice, self.radius)

    def new_lattice(self) -> Lattice:
        return Lattice(self.lattice, self.radius, self.torus)


def max_masters(lattice: int, radius: int) -> int:
    """The most masters a round may ask for: as many (2d+1)-wide squares as fit side by side, at least 1."""
    return max(1, (lattice // (2 * radius + 1)) ** 2)


def _check_masters(value: object, lattice: int, radius: int) -> int:
    masters = check_int("masters", value, 1)
    most = max_masters(lattice, radius)
    if masters > most:
        width = 2 * radius + 1
        raise ValueError(
            f"masters must be at most {most} on a {lattice}×{lattice} lattice with radius {radius}, "
            f"since the masters' {width}×{width} areas may not overlap; got {masters}"
        )
    return masters


class Outcome(str, Enum):
    """What a step did to the lattice."""

    INIT = "init"
    NO_CHANGE = "no_change"  # max_c not better than s1
    REPLACE_MASTER = "replace_master"  # better than s1, not than s2
    REPLACE_BOTH = "replace_both"  # better than s1 and s2
    ROUND = "round"  # K > 1 masters moved at once; each move has its own outcome


#: Relative gains within this of the threshold count as *at* the threshold (not better), so that
#: e.g. 0.51 vs 0.50 at r = 0.02 is "equal" despite binary floating-point rounding.
_THRESHOLD_TOLERANCE = 1e-9


def is_better(x: float, y: float, ratio: float, better_by: str = "accuracy") -> bool:
    """The ratio rule: is fitness x better than y?

    ``accuracy`` (the seed's): x > y and (x - y) / y > r; against y = 0 any x > 0 is better.
    ``error`` (ours): x's error falls below y's by more than r relatively,
    (1 - x) < (1 - y)(1 - r), i.e. (x - y) / (1 - y) > r; nothing beats y = 1. Near the top the
    accuracy rule asks the impossible (at 0.98 a child needs 0.9996), the error rule a fixed share
    of what is left to gain.
    """
    if better_by not in BETTER_BY:
        raise ValueError(f"better_by must be one of {', '.join(BETTER_BY)}, got {better_by!r}")
    if not x > y:
        return False
    if better_by == "error":
        return y < 1 and (x - y) / (1 - y) > ratio + _THRESHOLD_TOLERANCE
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
    config: EvolutionConfig, rng: np.random.Generator, evaluate: Evaluator, init_genomes: Sequence[Genome] = ()
) -> tuple[Lattice, StepRecord]:
    """Step 0: fill every cell with a one-layer genome (70% ``f``, 30% ``f-M``) and score all.

    Known genomes (``--init-genomes``) take the first cells, in row-major order from (0, 0); every
    cell's random genome is still drawn (:func:`~alife_nas.contract.place_known`), and the record
    marks the known ones ``given``. Without them this is the seed's initialisation, exactly.
    """
    lattice = config.new_lattice()
    cells = list(lattice.cells())
    genomes = [random_initial_genome(rng, config.filters, config.conv_prob) for _ in cells]
    genomes = place_known(genomes, init_genomes, f"a {config.lattice}×{config.lattice} lattice of {len(cells)} cells")
    requests = [
        EvalRequest(genome, index=i, operator="init", position=cell)
        for i, (cell, genome) in enumerate(zip(cells, genomes))
    ]
    scores = evaluate(0, requests)
    for cell, genome, fit in zip(cells, genomes, scores):
        lattice.set(cell, genome, float(fit), step=0)
    candidates = [{"operator": "init", "genome": str(g), "fitness": float(f)} for g, f in zip(genomes, scores)]
    for candidate in candidates[:len(init_genomes)]:
        candidate["given"] = True
    record = StepRecord(step=0, outcome=Outcome.INIT.value, candidates=candidates, max_c=float(max(scores)))
    return lattice, record


class Write(NamedTuple):
    """One cell a decided move writes, with the genome and fitness it gets (and, with
    ``--inherit-weights``, the genome key of the training whose weights it then holds)."""

    cell: Cell
    genome: Genome
    fitness: float
    weights: str | None = None


def _weights_of(request: EvalRequest) -> str | None:
    """The weights key a cell written from this request holds: None for a fresh training."""
    return None if request.inherit is None else request_key(request.genome, request.inherit)


def propose_move(
    lattice: Lattice,
    config: EvolutionConfig,
    rng: np.random.Generator,
    master: Cell,
    step: int,
    first_index: int = 0,
) -> tuple[StepRecord, list[EvalRequest]]:
    """Draw the partner and both cuts for ``master``; returns the move's record so far and its five candidates."""
    s2 = lattice.pick_partner(rng, master)
    a, b = lattice.genome(master), lattice.genome(s2)
    cut_a, cut_b = draw_cut(rng, a), draw_cut(rng, b)
    parents = (str(a), str(b))
    inherit: list[Inherit | None] = [None] * CANDIDATES
    if config.inherit_weights:  # each child starts from the weights its parents' cells hold
        sources = ((lattice.weights_key(master), str(a)), (lattice.weights_key(s2), str(b)))
        inherit = [Inherit(sources[:1], self_replication_map(a), 0)]
        inherit += [Inherit(sources, layers, head) for layers, head in crossover_maps(a, b, cut_a, cut_b)]
    requests = [EvalRequest(self_replicate(a), first_index, "self", (str(a),), master, inherit=inherit[0])]
    children = zip(CROSSOVER_NAMES, crossover(a, b, cut_a, cut_b), inherit[1:])
    for i, (name, child, how) in enumerate(children, start=first_index + 1):
        requests.append(EvalRequest(child, i, f"cross-{name}", parents, master, inherit=how))
    record = StepRecord(
        step=step,
        outcome=Outcome.NO_CHANGE.value,
        master=master,
        partner=s2,
        master_genome=str(a),
        partner_genome=str(b),
        master_fitness=float(lattice.fitness[master]),
        partner_fitness=float(lattice.fitness[s2]),
        cut_master=cut_a,
        cut_partner=cut_b,
    )
    return record, requests


def decide_move(
    lattice: Lattice,
    config: EvolutionConfig,
    rng: np.random.Generator,
    record: StepRecord,
    requests: Sequence[EvalRequest],
    scores: Sequence[float],
) -> tuple[StepRecord, list[EvalRequest]]:
    """Apply the ratio threshold to the scored candidates; returns the decided record and the mutants to score.

    Reads only the master's area and writes nothing, so moves with disjoint areas decide alike in
    any order. The record's mutants get their fitness in :func:`complete_move`.
    """
    scores = [float(s) for s in scores]
    best = int(np.argmax(scores))  # max_c is the first best on ties
    winner, max_c = requests[best].genome, scores[best]
    candidates = [{"operator": r.operator, "genome": str(r.genome), "fitness": s} for r, s in zip(requests, scores)]
    decided = replace(record, candidates=candidates, best_index=best, max_c=max_c)
    s1, s2 = record.master, record.partner
    # A genome never replaces itself: with --reevaluate its fitness is a mean that moves, and the
    # same genome "beating" its own cell would be bookkeeping, not an improvement.
    if str(winner) == str(lattice.genome(s1)) or not is_better(max_c, record.master_fitness, config.ratio,
                                                               config.better_by):
        return decided, []
    if str(winner) != str(lattice.genome(s2)) and is_better(max_c, record.partner_fitness, config.ratio,
                                                             config.better_by):
        outcome, replaced = Outcome.REPLACE_BOTH, [s1, s2]
    else:
        outcome, replaced = Outcome.REPLACE_MASTER, [s1]

    # spread mutated copies of the winner into the two weakest other neighbours of s1
    targets = lattice.weakest_neighbours(rng, s1, exclude=(s1, s2), k=2)
    mutants = [mutate_filter(rng, winner, config.filters) for _ in targets]
    first = requests[0].index + CANDIDATES
    from_winner = None
    if config.inherit_weights:  # the mutants start from the winner's own training
        key = _weights_of(requests[best]) or str(winner)
        from_winner = Inherit(((key, str(winner)),), mutant_map(winner), 0)
    mutant_requests = [
        EvalRequest(genome, first + i, "mutant", (str(winner),), cell, inherit=from_winner)
        for i, (cell, (genome, _point)) in enumerate(zip(targets, mutants))
    ]
    planned = [
        # fitness is filled in by complete_move; the key is here so the record's key order is fixed
        {"cell": cell, "genome": str(genome), "point": point, "fitness": None,
         "replaced_genome": str(lattice.genome(cell)), "replaced_fitness": float(lattice.fitness[cell])}
        for cell, (genome, point) in zip(targets, mutants)
    ]
    return replace(decided, outcome=outcome.value, replaced=replaced, mutants=planned), mutant_requests


def complete_move(
    record: StepRecord,
    requests: Sequence[EvalRequest],
    mutant_requests: Sequence[EvalRequest],
    mutant_scores: Sequence[float],
) -> tuple[StepRecord, list[Write]]:
    """Put the mutants' fitness into a decided record; returns it and the cells the move writes."""
    mutants = [{**m, "fitness": float(f)} for m, f in zip(record.mutants, mutant_scores)]
    writes = []
    if record.replaced:
        won = requests[record.best_index]
        writes = [Write(cell, won.genome, float(record.max_c), _weights_of(won)) for cell in record.replaced]
    writes += [Write(m["cell"], r.genome, m["fitness"], _weights_of(r)) for m, r in zip(mutants, mutant_requests)]
    return replace(record, mutants=mutants), writes


def apply_move(lattice: Lattice, writes: Sequence[Write], step: int) -> None:
    """Write one move's cells into ``lattice``: the only place a step changes the lattice."""
    for cell, genome, fitness, weights in writes:
        lattice.set(cell, genome, fitness, step, weights)


def evolve_step(
    lattice: Lattice,
    config: EvolutionConfig,
    rng: np.random.Generator,
    evaluate: Evaluator,
    step: int,
) -> StepRecord:
    """One NeuralFinder step on ``lattice`` (changed in place); returns its record."""
    master = lattice.pick_master(rng, config.master_selection)
    record, requests = propose_move(lattice, config, rng, master, step)
    record, mutant_requests = decide_move(lattice, config, rng, record, requests, evaluate(step, requests))
    mutant_scores = evaluate(step, mutant_requests) if mutant_requests else []
    record, writes = complete_move(record, requests, mutant_requests, mutant_scores)
    apply_move(lattice, writes, step)
    return record


def move_generators(rng: np.random.Generator, count: int) -> list[np.random.Generator]:
    """One generator per master of a round, each seeded by one ``integers(2**63)`` draw of the run's generator."""
    return [np.random.default_rng(int(rng.integers(2**63))) for _ in range(count)]


def evolve_round(
    lattice: Lattice,
    config: EvolutionConfig,
    rng: np.random.Generator,
    evaluate: Evaluator,
    step: int,
    masters: int | None = None,
) -> dict:
    """One round of K masters (default ``config.masters``) on ``lattice``; returns its JSON-safe record.

    K = 1 is exactly :func:`evolve_step` (the seed's method) and returns its record. K > 1: the
    masters are drawn with disjoint areas, each move draws from its own generator, all 5K
    candidates are one batch and all mutants a second one; see docs/method.md.
    """
    count = config.masters if masters is None else check_int("masters", masters, 1)
    if count == 1:
        return evolve_step(lattice, config, rng, evaluate, step).to_dict()
    cells = lattice.pick_masters(rng, count, config.master_selection)
    # each move draws from its own generator, so no move's draws depend on another's: with
    # disjoint areas the moves' results do not depend on the order they are decided or applied in
    rngs = move_generators(rng, len(cells))
    proposed = [
        propose_move(lattice, config, move_rng, cell, step, INDICES_PER_MOVE * k)
        for k, (move_rng, cell) in enumerate(zip(rngs, cells))
    ]
    scores = _per_move(evaluate(step, [r for _, reqs in proposed for r in reqs]), [reqs for _, reqs in proposed])
    decided = [
        decide_move(lattice, config, move_rng, record, reqs, move_scores)
        for move_rng, (record, reqs), move_scores in zip(rngs, proposed, scores)
    ]
    all_mutants = [r for _, mutant_reqs in decided for r in mutant_reqs]
    mutant_scores = _per_move(
        evaluate(step, all_mutants) if all_mutants else [], [mutant_reqs for _, mutant_reqs in decided]
    )
    moves = []
    for (_, reqs), (record, mutant_reqs), move_scores in zip(proposed, decided, mutant_scores):
        record, writes = complete_move(record, reqs, mutant_reqs, move_scores)
        apply_move(lattice, writes, step)
        moves.append(record.to_dict())
    return {
        "step": step,
        "outcome": Outcome.ROUND.value,
        "masters": len(cells),
        "moves": moves,
        "max_c": max(move["max_c"] for move in moves),
    }


def _per_move(scores: Sequence[float], batches: Sequence[Sequence[EvalRequest]]) -> list[list[float]]:
    """Split one batch's scores back into each move's share, in move order."""
    scores = [float(s) for s in scores]
    if len(scores) != sum(len(b) for b in batches):
        raise ValueError(f"the evaluator returned {len(scores)} scores for {sum(len(b) for b in batches)} requests")
    out, start = [], 0
    for batch in batches:
        out.append(scores[start:start + len(batch)])
        start += len(batch)
    return out
