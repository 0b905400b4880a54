import pytest
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.config import ConfigError, DataConfig, SearchConfig, StopConfig
from alife_nas.evolution import EvolutionConfig
from alife_nas.settings import PRESETS
from alife_nas.strategies import RegularizedOptions


def test_one_set_of_defaults():
    config = SearchConfig()
    assert config == SearchConfig.from_options()
    assert config.method == EvolutionConfig() and config.method.lattice == 4
    assert config.stop == StopConfig(steps=6, budget=None) and config.data == DataConfig()
    assert config.data.val_size == 0.2 and config.training == PRESETS["fast"]


def test_flat_names_reach_their_sections():
    config = SearchConfig.from_options(lattice=3, torus=False, steps=2, dataset="mnist", val_size=100, preset="paper",
                                       max_epochs=5, seed=7, device="cuda:1", filters=[64, 16, 16, 32])
    assert (config.method.lattice, config.method.torus, config.method.filters) == (3, False, (16, 32, 64))
    assert (config.stop.steps, config.data.dataset, config.data.val_size, config.seed) == (2, "mnist", 100, 7)
    assert config.training.preset == "paper" and config.training.max_epochs == 5 and config.training.lr == 0.01
    assert config.device == "cuda:1"
    assert SearchConfig.from_dict(config.to_dict()) == config
    options = config.options()
    assert options["lattice"] == 3 and options["max_epochs"] == 5 and options["filters"] == [16, 32, 64]


def test_budget_alone_lifts_the_step_limit():
    assert SearchConfig.from_options(budget=50).stop == StopConfig(steps=None, budget=50)
    assert SearchConfig.from_options(budget=50, steps=3).stop == StopConfig(steps=3, budget=50)


def test_each_strategy_owns_its_options():
    config = SearchConfig.from_options(strategy="regularized", population=8, tournament=3, filters=[16, 32])
    assert config.method == RegularizedOptions(filters=(16, 32), population=8, tournament=3)
    with pytest.raises(ConfigError, match="population is an option of the regularized strategy, not of neuralfinder"):
        SearchConfig.from_options(population=8)
    with pytest.raises(ConfigError, match="tournament must be between 1 and 4"):
        SearchConfig.from_options(strategy="regularized", population=4, tournament=5)
    switched = config.with_options(strategy="random")
    assert switched.method.filters == (16, 32)  # shared option names carry over


@pytest.mark.parametrize("options, words", [
    ({"lattice": 1}, "lattice must be between 2"),
    ({"lattice": 3.9}, "lattice must be a whole number"),
    ({"lattice": {"a": 1}}, "lattice must be a whole number"),
    ({"seed": True}, "seed must be a whole number"),
    ({"steps": -1}, "steps must be between 0"),
    ({"ratio": float("nan")}, "ratio must be a finite number"),
    ({"ratio": None}, None),  # None = not given
    ({"filters": [16, 1e20]}, "filter counts must be whole numbers"),
    ({"filters": [16]}, "at least two distinct"),
    ({"val_size": 1.5}, "val_size must be a whole number"),
    ({"preset": "slow"}, "preset must be one of"),
    ({"patience": -1}, "patience"),
    ({"device": "gpu"}, "device must be auto, cpu, cuda or cuda:N"),
    ({"colour": "red"}, "unknown option 'colour'"),
])
def test_bad_values_are_one_line_errors_naming_the_option(options, words):
    if words is None:
        assert SearchConfig.from_options(**{k: v for k, v in options.items() if v is not None}) == SearchConfig()
        return
    with pytest.raises(ConfigError, match=words) as info:
        SearchConfig.from_options(**options)
    assert "\n" not in str(info.value) and "--" not in str(info.value)


def test_stored_form_refuses_unknown_keys_and_reads_old_runs():
    with pytest.raises(ConfigError, match="unknown config key"):
        SearchConfig.from_dict({**SearchConfig().to_dict(), "colour": 1})
    with pytest.raises(ConfigError, match="unknown option"):
        SearchConfig.from_dict({**SearchConfig().to_dict(), "method": {"lattice": 3, "population": 2}})
    old = {"strategy": "neuralfinder", "dataset": "digits", "data_dir": "data", "val_size": 0.2, "seed": 3,
           "steps": 6, "budget": None, "device": "cpu", "lattice": 3, "radius": 1, "torus": True, "ratio": 0.02,
           "master_selection": "uniform", "filters": [16, 32], "population": 20, "tournament": 5,
           "random_max_layers": 12, "settings": PRESETS["fast"].to_dict(), "input_shape": [1, 8, 8], "num_classes": 10}
    config = SearchConfig.from_flat_v1(old)
    assert config == SearchConfig.from_options(seed=3, lattice=3, filters=[16, 32], device="cpu")


def test_differences_compare_normalised_values():
    config = SearchConfig.from_options(lattice=3, filters=[16, 32])
    assert config.differences({"lattice": 3, "filters": [32, 16], "seed": None}) == []
    assert config.differences({"lattice": 5, "max_epochs": 2}) == ["lattice: 3 -> 5", "max_epochs: 12 -> 2"]


@given(st.integers(2, 20), st.integers(1, 2), st.booleans(), st.floats(0, 1), st.integers(0, 10**6))
def test_round_trip(lattice, radius, torus, ratio, seed):
    config = SearchConfig.from_options(lattice=lattice, radius=radius, torus=torus, ratio=ratio, seed=seed)
    assert SearchConfig.from_dict(config.to_dict()) == config
    assert SearchConfig.from_options(**config.options()) == config
