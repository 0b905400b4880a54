import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.genome import DEFAULT_FILTERS, Conv, Genome, MaxPool, parse_genome
from alife_nas.operators import MUTATIONS, mutate_structure
from alife_nas.strategies.regularized import RegularizedEvolution, RegularizedOptions
from tests.conftest import run_strategy

layers = st.one_of(st.sampled_from(DEFAULT_FILTERS).map(Conv), st.just(MaxPool()))
genomes = st.lists(layers, min_size=1, max_size=12).map(lambda ls: Genome(tuple(ls)))


def by_length(step, requests):
    return [min(0.95, 0.1 * len(r.genome)) for r in requests]


@given(genomes, st.integers(0, 2**32 - 1))
def test_mutation_always_changes_and_keeps_the_filter_set(g, seed):
    child, name = mutate_structure(np.random.default_rng(seed), g, DEFAULT_FILTERS)
    assert name in MUTATIONS and child != g
    assert not child.filters_outside(DEFAULT_FILTERS)
    assert abs(len(child) - len(g)) <= 1


def test_every_mutation_kind_happens():
    rng = np.random.default_rng(0)
    g = parse_genome("32-M-64-M")
    assert {mutate_structure(rng, g, DEFAULT_FILTERS)[1] for _ in range(200)} == set(MUTATIONS)


def test_aging_removes_oldest_and_tournament_picks_fittest():
    strat = RegularizedEvolution(RegularizedOptions(DEFAULT_FILTERS, population=6, tournament=6))
    rng = np.random.default_rng(1)
    init = strat.initialize(rng, by_length)
    assert len(init["candidates"]) == 6 and len(strat.population) == 6
    oldest = strat.population[0]
    fittest = max(strat.population, key=lambda p: p[1])
    record = strat.step(rng, by_length, 1)
    # with the tournament as large as the population, the parent is the fittest member
    assert record["parent"] == fittest[0] and record["parent_fitness"] == fittest[1]
    assert record["removed"] == {"genome": oldest[0], "fitness": oldest[1]}
    assert strat.population[-1][0] == record["candidates"][0]["genome"] and len(strat.population) == 6


def test_state_round_trip_continues_identically():
    def run(break_at=None):
        records, strat = run_strategy(
            lambda: RegularizedEvolution(RegularizedOptions(DEFAULT_FILTERS, population=5, tournament=2)),
            by_length, seed=3, steps=15, break_at=break_at)
        return records, strat.best()

    assert run() == run(break_at=7)


def test_tournament_larger_than_population_refused():
    with pytest.raises(ValueError, match="tournament"):
        RegularizedOptions(DEFAULT_FILTERS, population=3, tournament=4)


def test_would_enter_means_beating_the_weakest_member():
    from alife_nas.contract import EvalRequest

    strat = RegularizedEvolution(RegularizedOptions(DEFAULT_FILTERS, population=4, tournament=2))
    request = EvalRequest(parse_genome("32"), 0, "mutate-filter")
    assert not strat.would_enter(request, 0.99)  # the first population takes everyone
    strat.initialize(np.random.default_rng(0), by_length)
    weakest = min(f for _, f in strat.population)
    assert strat.would_enter(request, weakest + 0.01) and not strat.would_enter(request, weakest)
