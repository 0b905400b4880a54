import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.evolution import (
    EvolutionConfig,
    Outcome,
    StepRecord,
    evolve_step,
    initialize_lattice,
    is_better,
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
