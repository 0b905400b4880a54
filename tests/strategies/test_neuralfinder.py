import numpy as np

from alife_nas.config import SearchConfig
from alife_nas.evolution import EvolutionConfig
from alife_nas.strategies import STRATEGIES
from alife_nas.strategies.neuralfinder import NeuralFinder


def test_built_from_its_options_and_round_trips():
    config = SearchConfig.from_options(lattice=4, radius=2, torus=False, ratio=0.05, filters=[64, 16, 32],
                                       master_selection="proportional")
    strat = STRATEGIES["neuralfinder"](config.method)
    assert isinstance(strat, NeuralFinder) and isinstance(config.method, EvolutionConfig)
    c = strat.config
    assert (c.lattice, c.radius, c.torus, c.ratio, c.filters, c.master_selection) == (
        4, 2, False, 0.05, (16, 32, 64), "proportional")
    rng = np.random.default_rng(0)
    score = lambda step, reqs: [0.1 * len(r.genome) for r in reqs]  # noqa: E731
    record = strat.initialize(rng, score)
    assert record["outcome"] == "init" and len(strat.population_fitness()) == 16
    strat.step(rng, score, 1)
    other = NeuralFinder(c)
    other.load_state(strat.state(), strat.lattice())
    assert other.lattice() == strat.lattice() and other.best() == strat.best()
    assert strat.lattice()["size"] == 4
    assert "lattice" not in strat.state()  # stored once, as the step's lattice
