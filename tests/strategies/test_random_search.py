import numpy as np

from alife_nas.genome import DEFAULT_FILTERS, parse_genome
from alife_nas.strategies.random_search import WINDOW, RandomOptions, RandomSearch


def test_each_step_scores_one_random_genome_and_tracks_the_best():
    seen = []

    def ev(step, requests):
        assert len(requests) == 1 and requests[0].operator == "random"
        seen.append(requests[0].genome)
        return [0.01 * len(requests[0].genome)]

    strat = RandomSearch(RandomOptions(DEFAULT_FILTERS, random_max_layers=6))
    rng = np.random.default_rng(0)
    strat.initialize(rng, ev)
    for step in range(1, 40):
        strat.step(rng, ev, step)
    assert all(1 <= len(g) <= 6 and not g.filters_outside(DEFAULT_FILTERS) for g in seen)
    best = max(seen, key=len)
    assert len(parse_genome(strat.best()[0])) == len(best)
    assert len(strat.population_fitness()) == WINDOW
    assert len({len(g) for g in seen}) > 3  # random length


def test_state_round_trip():
    strat = RandomSearch(RandomOptions(DEFAULT_FILTERS))
    strat.initialize(np.random.default_rng(0), lambda s, r: [0.5])
    other = RandomSearch(RandomOptions(DEFAULT_FILTERS))
    other.load_state(strat.state(), None)
    assert other.best() == strat.best() and other.population_fitness() == strat.population_fitness()


def test_holding_nothing_nothing_enters():
    from alife_nas.contract import EvalRequest, would_enter

    strat = RandomSearch(RandomOptions(DEFAULT_FILTERS))
    strat.initialize(np.random.default_rng(0), lambda s, r: [0.5])
    # only "it would be the best found" re-trains a random genome (--reevaluate)
    request = EvalRequest(parse_genome("32"), 0, "random")
    assert not hasattr(strat, "would_enter") and would_enter(strat, request, 0.99) is False
