import hashlib
import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.evolution import (
    EvolutionConfig,
    Outcome,
    StepRecord,
    apply_move,
    complete_move,
    decide_move,
    evolve_round,
    evolve_step,
    initialize_lattice,
    is_better,
    max_masters,
    move_generators,
    propose_move,
)
from alife_nas.genome import Conv, parse_genome


def length_fitness(step, requests):
    """Deterministic fake: longer genomes with wider first layers score higher, capped below 1."""
    out = []
    for r in requests:
        first = r.genome[0].filters if isinstance(r.genome[0], Conv) else 0
        out.append(min(0.99, 0.1 + 0.05 * len(r.genome) + first / 10000))
    return out


def fixed_lattice(config, value=0.5):
    lat = config.new_lattice()
    for i, cell in enumerate(lat.cells()):
        lat.set(cell, parse_genome(f"{config.filters[i % len(config.filters)]}"), value, 0)
    return lat


class ByOperator:
    """Fake evaluator: candidates get `cands` (in order), mutants `mutant`; records every call."""

    def __init__(self, cands, mutant=0.3):
        self.cands, self.mutant, self.calls = cands, mutant, []

    def __call__(self, step, requests):
        self.calls.append([(r.index, r.operator) for r in requests])
        if requests[0].operator == "mutant":
            return [self.mutant] * len(requests)
        return list(self.cands)


@pytest.mark.parametrize("x, y, better", [
    (0.51, 0.5, False),        # 2% of 0.5 is 0.01: exactly 0.51 is not "> r"
    (0.5101, 0.5, True),
    (0.5099, 0.5, False),
    (0.5, 0.5, False),
    (0.4, 0.5, False),
    (0.1, 0.0, True),          # any gain over zero counts
    (0.0, 0.0, False),
])
def test_ratio_threshold(x, y, better):
    assert is_better(x, y, 0.02) is better


@given(st.floats(0.01, 1), st.floats(0, 0.5))
def test_ratio_threshold_matches_formula(y, r):
    for x in (y * (1 + r) * 0.999, y * (1 + r) * 1.001 + 1e-9):
        assert is_better(x, y, r) == (x > y and (x - y) / y > r)


# --- comparing by error rate (ours): (1 - x) < (1 - y)(1 - r) -----------------------------------
@pytest.mark.parametrize("x, y, better", [
    (0.51, 0.5, False),        # at 0.5 both rules ask for 0.51; exactly at the threshold is not better
    (0.5101, 0.5, True),
    (0.9804, 0.98, False),     # 2% of the error 0.02 is 0.0004: exactly at it (despite float rounding)
    (0.98041, 0.98, True),     # by accuracy this needs more than 0.9996
    (0.9803, 0.98, False),
    (0.98, 0.98, False),
    (0.97, 0.98, False),
    (0.01, 0.0, False),        # unlike by accuracy, no free pass against 0: the error must fall by 2%
    (0.03, 0.0, True),
    (1.0, 0.999, True),
    (1.0, 1.0, False),         # nothing beats a perfect score
])
def test_error_rate_threshold(x, y, better):
    assert is_better(x, y, 0.02, "error") is better


@given(st.floats(0, 0.99), st.floats(0, 0.5), st.floats(0, 1))
def test_error_rate_threshold_matches_formula_away_from_the_edge(y, r, x):
    threshold = 1 - (1 - y) * (1 - r)
    if abs(x - threshold) > 1e-6:
        assert is_better(x, y, r, "error") == ((1 - x) < (1 - y) * (1 - r))


def test_the_default_comparison_is_the_seeds_and_an_unknown_one_is_refused():
    assert EvolutionConfig().better_by == "accuracy"
    for x, y in ((0.9804, 0.98), (0.51, 0.5), (0.1, 0.0), (0.99, 0.98)):
        seeds = x > y and (y == 0 or (x - y) / y > 0.02 + 1e-9)
        assert is_better(x, y, 0.02) == is_better(x, y, 0.02, "accuracy") == seeds
    with pytest.raises(ValueError, match="better_by"):
        is_better(0.9, 0.5, 0.02, "loss")
    with pytest.raises(ValueError, match="better_by"):
        EvolutionConfig(better_by="loss")


@pytest.mark.parametrize("better_by, outcome", [("accuracy", Outcome.NO_CHANGE), ("error", Outcome.REPLACE_BOTH)])
def test_near_the_top_only_the_error_rule_lets_a_better_child_in(better_by, outcome):
    config = EvolutionConfig(lattice=5, better_by=better_by)
    lat = fixed_lattice(config, 0.98)
    before = lat.to_dict()
    # 0.985 < 0.98 * 1.02, yet a quarter less error; it goes to aH+bH (16 + 224, a genome no cell
    # holds: a genome never replaces itself)
    ev = ByOperator([0.97, 0.98, 0.985, 0.96, 0.9], mutant=0.95)
    record = evolve_step(lat, config, np.random.default_rng(4), ev, step=1)
    assert record.outcome == outcome.value and record.best_index == 2
    if better_by == "accuracy":
        assert lat.to_dict() == before and record.mutants == []
    else:  # both s1 and s2 (also 0.98) are beaten: the partner is replaced too, and two mutants spread
        assert all(lat.fitness[c] == 0.985 for c in record.replaced) and len(record.mutants) == 2


def test_the_error_rule_decides_the_partner_too():
    # master 0.90 (error 0.10), partner 0.98 (error 0.02): 0.95 halves the master's error, not the partner's
    config = EvolutionConfig(lattice=5, better_by="error")
    lat = fixed_lattice(config, 0.98)
    probe = np.random.default_rng(6)
    s1 = lat.pick_master(probe)
    lat.fitness[s1] = 0.90
    record = evolve_step(lat, config, np.random.default_rng(6), ByOperator([0.95, 0.1, 0.1, 0.1, 0.1]), step=2)
    assert record.master == s1 and record.outcome == Outcome.REPLACE_MASTER.value and record.replaced == [s1]


def test_initialisation_fills_and_scores_every_cell():
    config = EvolutionConfig(lattice=4)
    calls = []

    def ev(step, requests):
        calls.append(step)
        return length_fitness(step, requests)

    lat, record = initialize_lattice(config, np.random.default_rng(0), ev)
    assert calls == [0] and record.outcome == Outcome.INIT.value and len(record.candidates) == 16
    for cell in lat.cells():
        g = lat.genome(cell)
        assert len(g) in (1, 2) and isinstance(g[0], Conv)
        assert lat.fitness[cell] == pytest.approx(length_fitness(0, [type("R", (), {"genome": g})])[0])


def test_no_change_when_not_better_than_master():
    config = EvolutionConfig(lattice=5)
    lat = fixed_lattice(config, 0.5)
    before = lat.to_dict()
    ev = ByOperator([0.4, 0.45, 0.51, 0.3, 0.2])  # 0.51 is within 2% of 0.5
    record = evolve_step(lat, config, np.random.default_rng(1), ev, step=1)
    assert record.outcome == Outcome.NO_CHANGE.value and record.best_index == 2 and record.max_c == 0.51
    assert record.replaced == [] and record.mutants == []
    assert lat.to_dict() == before
    assert ev.calls == [[(0, "self"), (1, "cross-aH+bT"), (2, "cross-aH+bH"), (3, "cross-bH+aH"), (4, "cross-bH+aT")]]


def test_replace_master_only_then_two_mutants():
    config = EvolutionConfig(lattice=5)
    lat = fixed_lattice(config, 0.5)
    rng = np.random.default_rng(2)
    s1 = lat.pick_master(np.random.default_rng(2))
    # make the partner strong: every neighbour of the master is 0.9 except two weak ones
    lat.fitness[:] = 0.9
    lat.fitness[s1] = 0.5
    ev = ByOperator([0.6, 0.1, 0.1, 0.1, 0.1], mutant=0.33)
    record = evolve_step(lat, config, rng, ev, step=3)
    assert record.master == s1
    assert record.outcome == Outcome.REPLACE_MASTER.value and record.replaced == [s1]
    winner = parse_genome(record.candidates[0]["genome"])
    assert lat.genome(s1) == winner and lat.fitness[s1] == 0.6 and lat.age[s1] == 3
    assert len(record.mutants) == 2
    for m in record.mutants:
        cell = tuple(m["cell"])
        assert cell in lat.neighbours(s1) and cell not in (s1, record.partner)
        assert lat.fitness[cell] == 0.33 and str(lat.genome(cell)) == m["genome"] and lat.age[cell] == 3
        assert m["replaced_fitness"] == 0.9
    assert ev.calls[1] == [(5, "mutant"), (6, "mutant")]


def test_replace_both_and_mutants_go_to_the_two_weakest():
    config = EvolutionConfig(lattice=5, torus=False)
    lat = fixed_lattice(config, 0.5)
    rng = np.random.default_rng(7)
    probe = np.random.default_rng(7)
    s1 = lat.pick_master(probe)
    s2 = lat.pick_partner(probe, s1)
    others = [c for c in lat.neighbours(s1) if c != s2]
    assert len(others) >= 2
    lat.fitness[others[0]] = 0.05
    lat.fitness[others[-1]] = 0.06
    lat.fitness[s2] = 0.01  # weakest of all, but the partner: never a mutant target
    ev = ByOperator([0.2, 0.3, 0.8, 0.1, 0.1], mutant=0.7)
    record = evolve_step(lat, config, rng, ev, step=5)
    assert (record.master, record.partner) == (s1, s2)
    assert record.outcome == Outcome.REPLACE_BOTH.value and record.replaced == [s1, s2]
    winner = parse_genome(record.candidates[2]["genome"])
    assert lat.genome(s1) == winner == lat.genome(s2) and lat.fitness[s2] == 0.8
    assert [tuple(m["cell"]) for m in record.mutants] == [others[0], others[-1]]
    for m in record.mutants:
        mutant = parse_genome(m["genome"])
        diffs = [i for i in range(len(winner)) if mutant[i] != winner[i]]
        assert len(mutant) == len(winner) and len(diffs) <= 1


def test_record_round_trips_through_dict():
    config = EvolutionConfig(lattice=4)
    rng = np.random.default_rng(0)
    lat, _ = initialize_lattice(config, rng, length_fitness)
    for step in range(1, 6):
        record = evolve_step(lat, config, rng, length_fitness, step)
        assert StepRecord.from_dict(record.to_dict()) == record


def run_engine(seed, steps, config, state_break=None):
    rng = np.random.default_rng(seed)
    lat, first = initialize_lattice(config, rng, length_fitness)
    records = [first.to_dict()]
    for step in range(1, steps + 1):
        if state_break == step:  # save and restore generator + lattice, as a resume would
            saved_rng, saved_lat = rng.bit_generator.state, lat.to_dict()
            rng = np.random.default_rng(12345)
            rng.bit_generator.state = saved_rng
            lat = type(lat).from_dict(saved_lat)
        records.append(evolve_step(lat, config, rng, length_fitness, step).to_dict())
    return records, lat


def test_same_seed_same_records_and_restore_continues_identically():
    config = EvolutionConfig(lattice=5, radius=2)
    a, lat_a = run_engine(11, 25, config)
    b, lat_b = run_engine(11, 25, config)
    c, lat_c = run_engine(11, 25, config, state_break=13)
    assert a == b == c and lat_a == lat_b == lat_c
    d, _ = run_engine(12, 25, config)
    assert d != a
    assert {r["outcome"] for r in a[1:]} >= {"replace_both", "no_change"}


def test_proportional_master_selection_runs():
    config = EvolutionConfig(lattice=3, master_selection="proportional")
    records, _ = run_engine(0, 5, config)
    assert len(records) == 6


def test_config_validation():
    with pytest.raises(ValueError):
        EvolutionConfig(filters=(16,))
    with pytest.raises(ValueError):
        EvolutionConfig(ratio=-1)
    with pytest.raises(ValueError):
        EvolutionConfig(master_selection="best")


# --- rounds of K masters (our parallel variant) ------------------------------------------------
def hashed_fitness(step, requests):
    """Deterministic fake that depends on each request alone (genome and index), never on the batch."""
    out = []
    for r in requests:
        h = int(hashlib.sha256(f"{r.genome}|{r.index}".encode()).hexdigest()[:6], 16) / 16**6
        out.append(round(0.3 + 0.6 * h, 3))
    return out


class Counting:
    """Wraps an evaluator and records each call's step and request indices."""

    def __init__(self, evaluate):
        self.evaluate, self.calls = evaluate, []

    def __call__(self, step, requests):
        self.calls.append((step, [(r.index, r.operator) for r in requests]))
        return self.evaluate(step, requests)


@st.composite
def round_configs(draw, least=1):
    """Lattices of side 3..12, radius 1..2, torus or bounded, with ``least``..max allowed masters."""
    radius = draw(st.integers(1, 2))
    size = draw(st.integers(3 if least == 1 else 2 * (2 * radius + 1), 12))
    masters = draw(st.integers(least, max_masters(size, radius)))
    return EvolutionConfig(lattice=size, radius=radius, torus=draw(st.booleans()), masters=masters)


def written_cells(move):
    return [tuple(c) for c in move["replaced"]] + [tuple(m["cell"]) for m in move["mutants"]]


def round_moves(record):
    return record["moves"] if record["outcome"] == Outcome.ROUND.value else [record]


@settings(max_examples=40, deadline=None)
@given(round_configs(), st.integers(0, 2**32))
def test_a_round_touches_only_its_masters_disjoint_areas(config, seed):
    rng = np.random.default_rng(seed)
    lat, _ = initialize_lattice(config, rng, hashed_fitness)
    for step in range(1, 4):
        before = lat.to_dict()
        record = evolve_round(lat, config, rng, hashed_fitness, step)
        moves = round_moves(record)
        assert 1 <= len(moves) <= config.masters
        areas = [set(lat.area(tuple(m["master"]))) for m in moves]
        for i, j in itertools.combinations(range(len(areas)), 2):
            assert not areas[i] & areas[j]
        for move, area in zip(moves, areas):
            assert tuple(move["partner"]) in area and set(written_cells(move)) <= area
        written = {cell for move in moves for cell in written_cells(move)}
        changed = {(r, c) for r in range(lat.size) for c in range(lat.size)
                   if lat.fitness[r, c] != before["fitness"][r][c] or str(lat.genome((r, c))) != before["genomes"][r][c]}
        assert changed <= written and all(lat.age[cell] == step for cell in written)


def decided_moves(lat, config, rng, evaluate, step):
    """A round's moves taken apart: each master's (record, writes), from the building blocks."""
    cells = lat.pick_masters(rng, config.masters, config.master_selection)
    out = []
    for k, (move_rng, cell) in enumerate(zip(move_generators(rng, len(cells)), cells)):
        record, requests = propose_move(lat, config, move_rng, cell, step, 7 * k)
        record, mutant_requests = decide_move(lat, config, move_rng, record, requests, evaluate(step, requests))
        mutant_scores = evaluate(step, mutant_requests) if mutant_requests else []
        out.append(complete_move(record, requests, mutant_requests, mutant_scores))
    return out


@settings(max_examples=30, deadline=None)
@given(round_configs(least=2), st.integers(0, 2**32), st.randoms(use_true_random=False))
def test_applying_a_rounds_moves_in_any_order_gives_the_same_lattice(config, seed, shuffler):
    rng = np.random.default_rng(seed)
    lat, _ = initialize_lattice(config, rng, hashed_fitness)
    state = rng.bit_generator.state
    moves = decided_moves(lat, config, rng, hashed_fitness, 1)
    orders = list(itertools.permutations(range(len(moves)))) if len(moves) <= 4 else [
        shuffler.sample(range(len(moves)), len(moves)) for _ in range(20)]
    results = []
    for order in orders:
        copy = type(lat).from_dict(lat.to_dict())
        for k in order:
            apply_move(copy, moves[k][1], 1)
        results.append(copy)
    assert all(r == results[0] for r in results)
    # the building blocks, chained by hand, are what evolve_round does
    rng.bit_generator.state = state
    record = evolve_round(lat, config, rng, hashed_fitness, 1)
    assert lat == results[0]
    assert round_moves(record) == [m.to_dict() for m, _ in moves]


@settings(max_examples=25, deadline=None)
@given(round_configs(least=2), st.integers(0, 2**32), st.randoms(use_true_random=False))
def test_deciding_moves_one_by_one_in_any_order_changes_nothing(config, seed, shuffler):
    rng = np.random.default_rng(seed)
    lat, _ = initialize_lattice(config, rng, hashed_fitness)
    together = type(lat).from_dict(lat.to_dict())
    state = rng.bit_generator.state
    record = evolve_round(together, config, rng, hashed_fitness, 1)
    # move by move: each proposed, decided and written before the next one starts, in a shuffled order
    rng.bit_generator.state = state
    cells = lat.pick_masters(rng, config.masters, config.master_selection)
    rngs = move_generators(rng, len(cells))
    records = {}
    for k in shuffler.sample(range(len(cells)), len(cells)):
        one, requests = propose_move(lat, config, rngs[k], cells[k], 1, 7 * k)
        one, mutant_requests = decide_move(lat, config, rngs[k], one, requests, hashed_fitness(1, requests))
        one, writes = complete_move(one, requests, mutant_requests, hashed_fitness(1, mutant_requests))
        apply_move(lat, writes, 1)
        records[k] = one.to_dict()
    assert lat == together and round_moves(record) == [records[k] for k in range(len(cells))]


@pytest.mark.parametrize("config", [
    EvolutionConfig(lattice=5, radius=2),
    EvolutionConfig(lattice=4, torus=False, master_selection="proportional"),
])
def test_one_master_rounds_are_exactly_steps(config):
    runs = []
    for step_fn in (lambda lat, rng, s: evolve_step(lat, config, rng, hashed_fitness, s).to_dict(),
                    lambda lat, rng, s: evolve_round(lat, config, rng, hashed_fitness, s),
                    lambda lat, rng, s: evolve_round(lat, config, rng, hashed_fitness, s, masters=1)):
        rng = np.random.default_rng(3)
        lat, _ = initialize_lattice(config, rng, hashed_fitness)
        records = [step_fn(lat, rng, s) for s in range(1, 16)]
        runs.append((records, lat.to_dict(), rng.bit_generator.state))
    assert runs[0] == runs[1] == runs[2]
    assert {r["outcome"] for r in runs[0][0]} >= {"no_change", "replace_both"}


def run_rounds(seed, config, steps, evaluate=hashed_fitness):
    rng = np.random.default_rng(seed)
    lat, _ = initialize_lattice(config, rng, evaluate)
    return [evolve_round(lat, config, rng, evaluate, s) for s in range(1, steps + 1)], lat


def test_a_round_is_a_function_of_the_seed_and_batches_all_masters():
    config = EvolutionConfig(lattice=9, masters=4)
    a, lat_a = run_rounds(5, config, 10)
    b, lat_b = run_rounds(5, config, 10)
    c, _ = run_rounds(6, config, 10)
    assert a == b and lat_a == lat_b and a != c
    assert json.loads(json.dumps(a)) == a  # JSON-safe
    counting = Counting(hashed_fitness)
    rng = np.random.default_rng(5)
    lat, _ = initialize_lattice(config, rng, counting)
    for step, expected in enumerate(a, start=1):
        counting.calls.clear()
        record = evolve_round(lat, config, rng, counting, step)
        assert record == expected
        assert set(record) == {"step", "outcome", "masters", "moves", "max_c"} and record["outcome"] == "round"
        k = record["masters"]
        assert 2 <= k <= 4 and len(record["moves"]) == k
        assert record["max_c"] == max(m["max_c"] for m in record["moves"])
        for move in record["moves"]:
            assert StepRecord.from_dict(move).to_dict() == move
        # one batch of all 5K candidates, then at most one batch of every move's mutants
        first, *rest = counting.calls
        assert first == (step, [(7 * m + i, op) for m in range(k) for i, op in enumerate(
            ["self", "cross-aH+bT", "cross-aH+bH", "cross-bH+aH", "cross-bH+aT"])])
        mutants = [(7 * m + 5 + i, "mutant") for m, move in enumerate(record["moves"]) for i in range(len(move["mutants"]))]
        assert rest == ([(step, mutants)] if mutants else [])
    assert any(r["masters"] == 4 for r in a) and any(m["mutants"] for r in a for m in r["moves"])


def test_round_scores_do_not_depend_on_the_order_they_are_computed_in():
    config = EvolutionConfig(lattice=6, masters=4)

    def reversed_order(step, requests):  # scores computed back to front, returned in request order
        return list(reversed(hashed_fitness(step, list(reversed(requests)))))

    assert run_rounds(1, config, 6) == run_rounds(1, config, 6, reversed_order)


def test_masters_validation():
    assert EvolutionConfig(lattice=6, masters=4).masters == 4
    assert EvolutionConfig(lattice=10, radius=2, masters=4).masters == 4
    assert EvolutionConfig(lattice=3, radius=2).masters == 1  # no 5×5 area fits: one master only
    assert max_masters(9, 1) == 9 and max_masters(4, 2) == 1
    for bad in ({"lattice": 5, "masters": 2}, {"lattice": 6, "masters": 5}, {"lattice": 9, "radius": 2, "masters": 2}):
        with pytest.raises(ValueError, match="masters must be at most .* areas may not overlap") as info:
            EvolutionConfig(**bad)
        assert "\n" not in str(info.value)
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match="masters"):
            EvolutionConfig(lattice=6, masters=bad)


def test_a_genome_never_replaces_itself():
    """A winner equal to the master's genome (a crossover can rebuild a parent) does not replace
    it, whatever fitness it got (with --reevaluate a genome's mean moves between trainings)."""
    config = EvolutionConfig(lattice=5, better_by="error")
    lat = fixed_lattice(config, 0.98)
    for i, cell in enumerate(lat.cells()):
        lat.set(cell, parse_genome(f"{config.filters[i % len(config.filters)]}-M"), 0.98, 0)
    before = lat.to_dict()
    ev = ByOperator([0.97, 0.985, 0.98, 0.96, 0.9], mutant=0.95)  # the best is aH+bT, here s1's own genome
    record = evolve_step(lat, config, np.random.default_rng(4), ev, step=1)
    assert record.candidates[1]["genome"] == record.master_genome and record.best_index == 1
    assert record.outcome == Outcome.NO_CHANGE.value and lat.to_dict() == before and record.mutants == []
