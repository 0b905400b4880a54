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
    with pytest.raises(ConfigError, match="population is an option of the regularized( and [a-z]+)* strateg(y|ies), not of neuralfinder"):
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


# --- edges: every number finite, every value bounded, every message one short line ---------------
NOT_FINITE = [float("nan"), float("inf"), float("-inf"), 10**400]


@pytest.mark.parametrize("name", ["ratio", "conv_prob", "val_size", "lattice", "radius", "seed", "steps", "budget",
                                  "split_seed", "masters", "workers", "threads", "image_size"])
@pytest.mark.parametrize("value", NOT_FINITE, ids=["nan", "inf", "-inf", "10**400"])
def test_no_number_option_takes_nan_inf_or_a_huge_int(name, value):
    with pytest.raises(ConfigError) as info:
        SearchConfig.from_options(**{name: value})
    message = str(info.value)
    assert message.startswith(f"{name} must be") and "\n" not in message and len(message) < 120, message


@pytest.mark.parametrize("options, words", [
    ({"seed": -1}, "seed must be between 0 and 9223372036854775807, got -1"),
    ({"seed": 2**63}, "seed must be between 0 and 9223372036854775807"),
    ({"lattice": 100_000}, "lattice must be between 2 and 256, got 100000"),
    ({"lattice": 3, "radius": 10**6}, "radius must be between 1 and 3, got 1000000"),
    ({"lattice": 10**5000}, "lattice must be between 2 and 256, got <a number of about 5,000 digits>"),
    ({"budget": 10**5000}, "budget must be between 1 and 1000000000000, got <a number of about"),
    ({"filters": [16, 10**5000]}, "filter counts must be whole numbers in 1..65536, got <a number of about"),
    ({"filters": None}, None),  # None = not given
    ({"filters": "16,32"}, "filters must be a list"),
    ({"master_selection": "x" * 10_000}, r"master_selection must be one of uniform, proportional, got 'xxx.*10,002 ch"),
    ({"data_dir": "a\0b"}, "data_dir must not contain a NUL character"),
    ({"dataset": ""}, "dataset must be a non-empty text"),
    ({"device": "cuda:" + "9" * 5000}, r"device must be auto, cpu, cuda or cuda:N, got 'cuda:999.*5,007 characters"),
    ({"device": "cpu\n"}, "device must be auto, cpu, cuda or cuda:N"),
    ({"devices": "cuda:0,cuda:\uff11"}, "devices must name cpu, cuda or cuda:N devices"),
    ({"ray": "local", "gpus_per_trial": float("nan")}, "gpus_per_trial must be a finite number, got nan"),
])
def test_edge_values_are_refused_naming_the_option(options, words):
    if words is None:
        assert SearchConfig.from_options(**{k: v for k, v in options.items() if v is not None}) == SearchConfig()
        return
    with pytest.raises(ConfigError, match=words) as info:
        SearchConfig.from_options(**options)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_the_largest_seed_is_stored_and_read_back():
    config = SearchConfig.from_options(seed=2**63 - 1)
    assert SearchConfig.from_dict(config.to_dict()).seed == 2**63 - 1
    assert SearchConfig.from_options(seed=0.0).seed == 0


@pytest.mark.parametrize("address", ["local", "auto", "head:6379", "10.0.0.7:6379", "[fe80::1]:6379",
                                     "head-1.cluster.example:6379", "ray://head:10001", "ray://10.0.0.7:10001"])
def test_ray_takes_local_auto_and_cluster_addresses(address):
    assert SearchConfig.from_options(ray=address).execution.ray == address


@pytest.mark.parametrize("address", ["5", "head", ":6379", "head:", "head:0", "head:65536", "head:port", "ray://head",
                                     "http://head:8265", "head:6379/x", " auto", "auto\n", "", "-head:6379", 5, True])
def test_ray_refuses_what_no_cluster_answers_to_before_anything_starts(address):
    with pytest.raises(ConfigError, match="ray must be local, auto, HOST:PORT or ray://HOST:PORT, got") as info:
        SearchConfig.from_options(ray=address)
    assert "\n" not in str(info.value)
