"""Known genomes first (``--init-genomes``): where each strategy puts them, what stays as it was,
and that a resumed run needs no file."""
from __future__ import annotations

import json

import numpy as np
import pytest

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.contract import init_keywords, takes_init_genomes
from alife_nas.feasibility import initial_genomes
from alife_nas.genome import parse_genome
from alife_nas.search import Search, read_status
from alife_nas.store import RunStore
from alife_nas.strategies import STRATEGIES
from tests.conftest import fake_score, make_search, run_search
from tests.plugins.alife_nas_tiny import TinyStrategy

BUILT_IN = ["neuralfinder", "random", "regularized", "ga", "rl"]
#: Small runs of each strategy: a 3×3 lattice, populations of 6, a controller batch of 4.
SMALL = {"neuralfinder": {"lattice": 3}, "random": {}, "regularized": {"population": 6, "tournament": 2},
         "ga": {"population": 6}, "rl": {"controller_batch": 4}}
#: Known genomes, one of them outside the run's filter set and one in the tuple form.
KNOWN = ["512-512-M-256", "[('conv', [('nb_filter', 24)]), ('maxp', [('pool_size', 2)])]", "16-M-16"]
CANONICAL = ["512-512-M-256", "24-M", "16-M-16"]


def options(strategy: str, **more) -> dict:
    return {"strategy": strategy, "seed": 5, "filters": [16, 32, 64], **SMALL[strategy], **more}


def step_zero(run_dir) -> list:
    """The requests of step 0 as the store has them: (index, genome, operator), in index order."""
    with RunStore.open(run_dir) as store:
        return sorted((ev.index, ev.genome, ev.operator) for ev in store.evaluations() if ev.step == 0)


def test_every_built_in_strategy_takes_known_genomes_and_a_plugin_without_them_is_refused():
    assert all(takes_init_genomes(STRATEGIES[name]) for name in BUILT_IN)
    assert not takes_init_genomes(TinyStrategy) and init_keywords(None) == init_keywords(()) == {}
    config = SearchConfig.from_options(init_genomes=KNOWN)
    assert config.init_genomes == tuple(CANONICAL)  # stored canonical, whatever form it came in
    assert SearchConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.to_dict()["init_genomes"] == CANONICAL and config.options()["init_genomes"] == CANONICAL
    assert SearchConfig.from_options(init_genomes=[]).init_genomes is None  # none given
    stored = SearchConfig().to_dict()
    del stored["init_genomes"]  # a run stored before the option existed
    assert SearchConfig.from_dict(stored) == SearchConfig()
    for bad, needle in (("16-M", "a list of genomes"), (["16", "16-X"], "genome 2"), ([16], "must be a text")):
        with pytest.raises(ConfigError, match=needle):
            SearchConfig.from_options(init_genomes=bad)


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_known_genomes_come_first_and_the_rest_is_drawn_as_without_them(tmp_path, strategy):
    plain = initial_genomes(SearchConfig.from_options(**options(strategy)))
    config = SearchConfig.from_options(**options(strategy, init_genomes=KNOWN))
    seeded = initial_genomes(config)  # what the creation-time size check sees
    assert [str(g) for g in seeded[:3]] == CANONICAL
    if strategy in ("random", "rl"):  # extra samples, scored before the strategy's own
        assert seeded[3:] == plain
    else:  # they take the first cells / members; every other one is the run's without them
        assert seeded[3:] == plain[3:] and len(seeded) == len(plain)
    run_dir = run_search(tmp_path / "run", steps=1, **options(strategy, init_genomes=KNOWN))
    first = step_zero(run_dir)
    assert [(i, g) for i, g, _ in first[:3]] == list(enumerate(CANONICAL)) and {op for _, _, op in first[:3]} == {"init"}
    with RunStore.open(run_dir) as store:
        record = store.step_rows()[0].record
        assert [c["genome"] for c in record["candidates"] if c.get("given")] == CANONICAL
        assert store.config.init_genomes == tuple(CANONICAL)  # the genomes, not a file
        status = read_status(store)
        assert status["init_trainings"] == len(seeded) and status["config"]["init_genomes"] == CANONICAL
        if strategy == "neuralfinder":  # row-major from (0, 0)
            lattice = store.step_rows()[0].lattice
            cells = [lattice["genomes"][0][0], lattice["genomes"][0][1], lattice["genomes"][0][2]]
            assert [str(parse_genome(g)) for g in cells] == CANONICAL


@pytest.mark.parametrize("strategy, size", [("neuralfinder", 9), ("regularized", 6), ("ga", 6)])
def test_more_known_genomes_than_places_is_refused_at_creation(tmp_path, strategy, size):
    genomes = [f"{16 * (1 + n % 4)}-M-{8 * (n + 1)}" for n in range(size + 1)]
    with pytest.raises(ConfigError, match=f"{size + 1} genomes for a .*give at most {size}"):
        make_search(tmp_path / "run", **options(strategy, init_genomes=genomes))
    assert not (tmp_path / "run").exists()
    with make_search(tmp_path / "full", **options(strategy, init_genomes=genomes[:size])) as search:
        assert search.initial_trainings() == size  # exactly full is fine


@pytest.mark.parametrize("strategy", ["random", "rl"])
def test_extra_samples_have_no_upper_bound(strategy):
    genomes = [f"{8 * (n + 1)}-M" for n in range(40)]
    config = SearchConfig.from_options(**options(strategy, init_genomes=genomes))
    cls = STRATEGIES[strategy]
    assert cls(config.method).initial_trainings(**init_keywords(config.init_genomes)) == \
        cls(config.method).initial_trainings() + 40
    assert [str(g) for g in initial_genomes(config)[:40]] == genomes


def test_the_best_known_genome_counts_for_random_and_rl(tmp_path):
    def score(genome, seed):  # the known genome is the best there is
        result = fake_score(genome, seed)
        return {**result, "fitness": 0.999} if str(genome) == "24-M" else result

    for strategy in ("random", "rl"):
        with make_search(tmp_path / strategy, score=score, steps=0, **options(strategy, init_genomes=KNOWN)) as search:
            assert search.run().best_genome == "24-M"


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_a_run_with_known_genomes_resumes_exactly_without_the_file(tmp_path, strategy):
    whole = run_search(tmp_path / "whole", steps=4, **options(strategy, init_genomes=KNOWN))
    part = run_search(tmp_path / "part", steps=2, **options(strategy, init_genomes=KNOWN))
    with Search.open(part, score=fake_score, steps=4) as search:  # no init_genomes given: the stored ones
        search.run()
    with Search.open(tmp_path / "part", score=fake_score, init_genomes=KNOWN) as search:  # the same ones: fine
        assert search.config.init_genomes == tuple(CANONICAL)
    with pytest.raises(ConfigError, match="init_genomes"):  # other ones would change the run
        Search.open(tmp_path / "part", score=fake_score, init_genomes=["16-M"])

    def trained(run_dir):
        with RunStore.open(run_dir) as store:
            return [(ev.step, ev.index, ev.genome, ev.fitness) for ev in store.evaluations()]

    assert trained(whole) == trained(part)


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_without_known_genomes_the_run_is_todays(tmp_path, strategy):
    """The keyword is passed only when there are known genomes: the plain call and the search agree."""
    config = SearchConfig.from_options(**options(strategy))
    cls = STRATEGIES[strategy]
    asked = {}
    for how in ("plain", "empty"):
        seen = []

        def evaluate(step, requests, seen=seen):
            seen.extend((r.index, str(r.genome), r.operator) for r in requests)
            return [fake_score(r.genome, r.index)["fitness"] for r in requests]

        rng = np.random.default_rng(config.seed)
        strategy_ = cls(config.method)
        record = (strategy_.initialize(rng, evaluate) if how == "plain"
                  else strategy_.initialize(rng, evaluate, init_genomes=()))
        asked[how] = (seen, json.dumps(record, sort_keys=True), rng.bit_generator.state)
    assert asked["plain"] == asked["empty"]
    run_dir = run_search(tmp_path / "run", steps=0, **options(strategy))
    assert {g for _, g, _ in step_zero(run_dir)} == {g for _, g, _ in asked["plain"][0]}  # repeats: cache hits


def test_known_genomes_keep_the_generator_where_the_plain_run_leaves_it():
    """Lattice and populations draw every random genome as before: the generator ends step 0 where it would."""
    for strategy in ("neuralfinder", "regularized", "ga"):
        config = SearchConfig.from_options(**options(strategy))
        states = []
        for keywords in ({}, init_keywords(KNOWN)):
            rng = np.random.default_rng(config.seed)
            STRATEGIES[strategy](config.method).initialize(
                rng, lambda step, requests: [0.5] * len(requests), **keywords)
            states.append(rng.bit_generator.state)
        assert states[0] == states[1], strategy


@pytest.mark.parametrize("strategy", BUILT_IN)
def test_initial_trainings_counts_the_known_genomes_as_initialize_asks_for_them(strategy):
    config = SearchConfig.from_options(**options(strategy, init_genomes=KNOWN))
    instance = STRATEGIES[strategy](config.method)
    asked = []

    def evaluate(step, requests):
        asked.extend(requests)
        return [fake_score(r.genome, r.index)["fitness"] for r in requests]

    instance.initialize(np.random.default_rng(0), evaluate, **init_keywords(config.init_genomes))
    assert instance.initial_trainings(**init_keywords(config.init_genomes)) == len(asked)
    assert len({r.index for r in asked}) == len(asked)  # one index (and training seed) each
