import numpy as np

from alife_nas.run import RunConfig
from alife_nas.strategies import STRATEGIES
from alife_nas.strategies.neuralfinder import NeuralFinder


def test_built_from_run_config_and_round_trips():
    config = RunConfig(lattice=4, radius=2, torus=False, ratio=0.05, filters=[16, 32, 64], master_selection="proportional")
    strat = STRATEGIES["neuralfinder"].from_run_config(config)
    assert isinstance(strat, NeuralFinder)
    c = strat.config
    assert (c.lattice, c.radius, c.torus, c.ratio, c.filters, c.master_selection) == (
        4, 2, False, 0.05, (16, 32, 64), "proportional")
    rng = np.random.default_rng(0)
    score = lambda step, reqs: [0.1 * len(r.genome) for r in reqs]  # noqa: E731
    record = strat.initialize(rng, score)
    assert record["outcome"] == "init" and len(strat.population_fitness()) == 16
    strat.step(rng, score, 1)
    other = NeuralFinder(c)
    other.load_state(strat.state())
    assert other.lattice == strat.lattice and other.best() == strat.best()
    assert strat.lattice_snapshot()["size"] == 4
