"""The size check before a run: the run's own initial genomes against its caps (no training)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.feasibility import REFUSE_ABOVE, check_initial_population, initial_genomes
from alife_nas.store import RunStore
from alife_nas.strategies import STRATEGIES
from tests.conftest import make_search, run_search

BUILT_IN = ["neuralfinder", "random", "regularized", "ga", "rl"]


def shaped(input_shape, num_classes=10):
    """What Search.create reads of a data set, without images (the fitness is the cheap one)."""
    return SimpleNamespace(input_shape=input_shape, num_classes=num_classes,
                           classes=[str(i) for i in range(num_classes)])


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_the_initial_genomes_are_those_the_run_trains_first(tmp_path, strategy):
    assert set(BUILT_IN) <= set(STRATEGIES)
    options = dict(strategy=strategy, seed=3, steps=0, lattice=3, population=6, controller_batch=4)
    options = {k: v for k, v in options.items() if k in ("strategy", "seed", "steps") or
               k in SearchConfig.from_options(strategy=strategy).method.__dataclass_fields__}
    run_search(tmp_path / "r", **options)
    with RunStore.open(tmp_path / "r") as store:
        trained = {ev.genome for ev in store.evaluations() if ev.step == 0}
    drawn = initial_genomes(SearchConfig.from_options(**options))
    assert {str(g) for g in drawn} == trained and len(drawn) >= len(trained) > 0


@pytest.mark.parametrize("strategy", BUILT_IN)
@pytest.mark.parametrize("num_classes", [10, 100])
def test_the_seeds_protocol_at_its_own_input_refuses_no_initial_genome(strategy, num_classes):
    # the paper preset, the seed's filter set, 3x32x32 (CIFAR-10/100), a 9x9 lattice
    for seed in range(4):
        config = SearchConfig.from_options(strategy=strategy, preset="paper", seed=seed,
                                           **({"lattice": 9} if strategy == "neuralfinder" else {}))
        found = check_initial_population(config, (3, 32, 32), num_classes)
        assert found.total > 0 and found.refused == 0, found.line()


def test_too_much_refused_is_refused_at_creation_with_what_helps(tmp_path):
    config = dict(lattice=2, seed=1, preset="paper")  # initial 224, 512, 64-M, 64: two too large at 128x128
    with pytest.raises(ConfigError) as refused:
        make_search(tmp_path / "big", data=shaped((3, 128, 128)), **config)
    message = str(refused.value)
    assert "\n" not in message and message.startswith("initial population: 2 of 4 genomes (50%) exceed the size caps "
                                                      "on 3×128×128 input (e.g. ")
    assert "--head gap" in message and "--image-size" in message and "--force" in message
    assert not (tmp_path / "big").exists()  # nothing left behind
    forced = SearchConfig.from_options(**config)
    from alife_nas.search import Search
    from tests.conftest import fake_score

    with Search.create(tmp_path / "forced", forced, score=fake_score, data=shaped((3, 128, 128)), force=True) as search:
        assert search.feasibility.refused == 2 and search.feasibility.too_much
    with make_search(tmp_path / "gap", data=shaped((3, 128, 128)), head="gap", **config) as search:
        assert search.feasibility.refused == 0 and search.feasibility.share <= REFUSE_ABOVE
    # the same genomes at the seed's input: nothing refused
    with make_search(tmp_path / "seed", data=shaped((3, 32, 32)), **config) as search:
        assert search.feasibility.refused == 0


def test_the_flops_cap_counts_at_creation_too(tmp_path):
    with pytest.raises(ConfigError) as refused:
        make_search(tmp_path / "r", data=shaped((3, 32, 32)), lattice=2, seed=1, max_flops=1000)
    message = str(refused.value)
    assert "4 of 4 genomes (100%)" in message and "(max_flops)" in message and "--max-flops" in message
    assert not (tmp_path / "r").exists()
