import numpy as np
import pytest

from alife_nas.config import ConfigError, SearchConfig
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


def test_masters_is_an_option_and_a_step_is_a_round():
    assert SearchConfig.from_options(lattice=6, masters=3).method.masters == 3
    assert SearchConfig().method.masters == 1
    with pytest.raises(ConfigError, match="masters must be at most 1"):
        SearchConfig.from_options(masters=3)  # the default 4×4 lattice holds one 3×3 area apart
    score = lambda step, reqs: [min(0.99, 0.1 * len(r.genome) + 0.001 * r.index) for r in reqs]  # noqa: E731
    runs = []
    for _ in range(2):
        strat = NeuralFinder(EvolutionConfig(lattice=6, masters=3))
        rng = np.random.default_rng(7)
        strat.initialize(rng, score)
        runs.append([strat.step(rng, score, step) for step in (1, 2, 3)])
    assert runs[0] == runs[1]
    assert all(r["outcome"] == "round" and r["masters"] == len(r["moves"]) == 3 for r in runs[0])


def test_resumed_rounds_continue_identically(tmp_path, score):
    from tests.test_search import history, run_to_end

    config = SearchConfig.from_options(lattice=6, masters=4, steps=5, seed=2)
    run_to_end(tmp_path / "a", config, score)
    assert run_to_end(tmp_path / "b", config, score, kills=[30, 41, 3]) == 3
    assert history(tmp_path / "a") == history(tmp_path / "b")
    _evals, rows = history(tmp_path / "a")
    assert [row[1]["outcome"] for row in rows] == ["init"] + ["round"] * 5


def test_would_enter_asks_the_cell_a_request_is_meant_for_under_the_ratio_rule():
    from alife_nas.contract import EvalRequest
    from alife_nas.genome import parse_genome

    strat = NeuralFinder(EvolutionConfig(lattice=3))
    g = parse_genome("32")
    assert not strat.would_enter(EvalRequest(g, 0, "init", position=(0, 0)), 0.99)  # the first lattice: no test
    strat.initialize(np.random.default_rng(0), lambda step, reqs: [0.5] * len(reqs))
    strat._lattice.fitness[1, 1] = 0.98
    candidate = EvalRequest(g, 0, "self", position=(0, 0))  # a candidate carries its master's cell
    assert strat.would_enter(candidate, 0.5101) and not strat.would_enter(candidate, 0.51)
    mutant = EvalRequest(g, 5, "mutant", position=(1, 1))  # a mutant its target's
    assert not strat.would_enter(mutant, 0.985) and not strat.would_enter(EvalRequest(g, 1, "x"), 0.99)
    by_error = NeuralFinder(EvolutionConfig(lattice=3, better_by="error"))
    by_error.load_state(strat.state(), strat.lattice())
    assert by_error.would_enter(mutant, 0.985)  # a quarter less error
