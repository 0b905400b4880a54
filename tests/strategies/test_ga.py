"""Genetic CNN's GA: its operators' rules and probabilities, survivors' samples, resume, budget, real training."""
import dataclasses
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.config import SearchConfig
from alife_nas.contract import EvalRequest
from alife_nas.genome import DEFAULT_FILTERS, Conv, Genome, MaxPool, parse_genome
from alife_nas.search import Search
from alife_nas.store import RunStore
from alife_nas.strategies.ga import (
    LAYER_EDITS,
    GeneticCNN,
    GeneticOptions,
    exchange_stages,
    mutate_layers,
    roulette,
    stages,
)
from tests.conftest import make_search, run_strategy
from tests.test_search import run_to_end

layers = st.one_of(st.sampled_from(DEFAULT_FILTERS).map(Conv), st.just(MaxPool()))
genomes = st.lists(layers, min_size=1, max_size=12).map(lambda ls: Genome(tuple(ls)))


def by_length(step, requests):
    return [min(0.95, 0.05 * len(r.genome)) for r in requests]


# --- selection ------------------------------------------------------------------------------
def test_roulette_picks_in_proportion_to_fitness():
    counts = Counter(roulette(np.random.default_rng(0), [0.1, 0.2, 0.0, 0.7], 40_000))
    assert counts[2] == 0
    for i, share in ((0, 0.1), (1, 0.2), (3, 0.7)):
        assert abs(counts[i] / 40_000 - share) < 0.01


def test_roulette_is_uniform_when_every_fitness_is_zero():
    counts = Counter(roulette(np.random.default_rng(1), [0.0] * 4, 40_000))
    assert all(abs(counts[i] / 40_000 - 0.25) < 0.01 for i in range(4))


# --- crossover: whole stages change places --------------------------------------------------
def test_stages_cut_after_each_pool():
    assert [str(Genome(s)) for s in stages(parse_genome("32-64-M-128-M-256"))] == ["32-64-M", "128-M", "256"]
    assert [str(Genome(s)) for s in stages(parse_genome("M-M-16"))] == ["M", "M", "16"]


@given(genomes)
def test_stages_partition_the_genome(g):
    parts = stages(g)
    assert sum(parts, ()) == g.layers and all(parts)
    assert all(isinstance(p[-1], MaxPool) for p in parts[:-1])


@given(genomes, genomes, st.integers(0, 2**32 - 1), st.floats(0, 1))
def test_exchange_swaps_the_listed_stages_and_keeps_every_layer(a, b, seed, rate):
    child_a, child_b, exchanged = exchange_stages(np.random.default_rng(seed), a, b, rate)
    assert len(child_a) + len(child_b) == len(a) + len(b)
    assert Counter(child_a.layers + child_b.layers) == Counter(a.layers + b.layers)
    # the children are the parents with the listed stage indices swapped
    sa, sb = stages(a), stages(b)
    units = max(len(sa), len(sb))
    sa, sb = sa + [()] * (units - len(sa)), sb + [()] * (units - len(sb))
    expect_a = sum((sb[s] if s in exchanged else sa[s] for s in range(units)), ())
    expect_b = sum((sa[s] if s in exchanged else sb[s] for s in range(units)), ())
    assert (child_a.layers, child_b.layers) == (expect_a, expect_b)


def test_exchange_rate_zero_and_one():
    a, b = parse_genome("16-M-32-M-64"), parse_genome("128-M")
    assert exchange_stages(np.random.default_rng(0), a, b, 0.0)[:2] == (a, b)
    assert exchange_stages(np.random.default_rng(0), a, b, 1.0)[:2] == (b, a)


def test_each_stage_is_exchanged_with_probability_qc():
    rng = np.random.default_rng(2)
    a, b = parse_genome("16-M-32-M-64-M-96"), parse_genome("128-M-192-M-224-M-256")
    swapped = [len(exchange_stages(rng, a, b, 0.2)[2]) for _ in range(5000)]
    assert abs(sum(swapped) / (5000 * 4) - 0.2) < 0.01


# --- mutation: each layer edited with probability qM -----------------------------------------
@given(genomes, st.integers(0, 2**32 - 1), st.floats(0, 1))
def test_mutation_keeps_the_filter_set_and_edits_at_most_each_layer_once(g, seed, rate):
    child, edits = mutate_layers(np.random.default_rng(seed), g, rate, DEFAULT_FILTERS)
    assert not child.filters_outside(DEFAULT_FILTERS) and len(child) >= 1
    positions = [int(e.split(":")[0]) for e in edits]
    assert positions == sorted(set(positions)) and all(0 <= p < len(g) for p in positions)
    assert len(g) - len(edits) <= len(child) <= len(g) + len(edits)


def test_mutation_rate_zero_one_and_in_between():
    g = parse_genome("16-32-M-64-96-M-128-192-M-224-256")
    rng = np.random.default_rng(3)
    assert mutate_layers(rng, g, 0.0, DEFAULT_FILTERS) == (g, [])
    assert len(mutate_layers(rng, g, 1.0, DEFAULT_FILTERS)[1]) == len(g)
    edits = [e for _ in range(3000) for e in mutate_layers(rng, g, 0.05, DEFAULT_FILTERS)[1]]
    assert abs(len(edits) / (3000 * len(g)) - 0.05) < 0.005
    assert {e.split(":")[1] for e in edits} == set(LAYER_EDITS)


def test_a_filter_edit_changes_the_count_and_a_pool_becomes_a_conv():
    rng = np.random.default_rng(4)
    seen = 0
    for _ in range(200):
        child, edits = mutate_layers(rng, parse_genome("64-M"), 1.0, (16, 64))
        if [e.split(":")[1] for e in edits] == ["filter", "filter"]:
            seen += 1
            assert child[0] == Conv(16) and isinstance(child[1], Conv) and len(child) == 2
    assert seen > 0


# --- the generation --------------------------------------------------------------------------
def run_generations(options, score, steps, seed=0):
    strat = GeneticCNN(options)
    rng = np.random.default_rng(seed)
    records = [strat.initialize(rng, score)]
    records += [strat.step(rng, score, t) for t in range(1, steps + 1)]
    return strat, records


def test_pairs_cross_with_probability_pc_and_the_others_mutate_with_probability_pm():
    opts = GeneticOptions(DEFAULT_FILTERS, population=10, mutation_prob=0.8, mutation_per_layer=0.05,
                          crossover_prob=0.2, crossover_per_stage=0.2, random_max_layers=6)
    _, records = run_generations(opts, by_length, 300)
    generations = records[1:]
    crossed_pairs = sum(len(r["crossed"]) // 2 for r in generations)
    assert abs(crossed_pairs / (300 * 5) - 0.2) < 0.03
    not_crossed = sum(10 - len(r["crossed"]) for r in generations)
    drawn = sum(len(r["mutated"]) for r in generations)
    assert abs(drawn / not_crossed - 0.8) < 0.03
    # crossed members never mutate (the paper's "for each non-crossover individual")
    assert all(not set(r["crossed"]) & {m["member"] for m in r["mutated"]} for r in generations)
    operators = Counter(c["operator"] for r in generations for c in r["candidates"])
    assert set(operators) == {"survivor", "crossover", "mutation"}


def test_survivors_are_resampled_and_their_fitness_is_the_mean_of_their_samples():
    seen = []

    def noisy(step, requests):
        seen.extend((step, str(r.genome), r.sample, r.index) for r in requests)
        return [0.1 * len(r.genome) + 0.01 * r.sample for r in requests]

    opts = GeneticOptions(DEFAULT_FILTERS, population=6, mutation_prob=0.0, crossover_prob=0.0, random_max_layers=5)
    strat, records = run_generations(opts, noisy, 4)
    assert all(c["operator"] == "survivor" for r in records[1:] for c in r["candidates"])
    # every (genome, sample) is asked for once: each member of each generation is a new training
    pairs = [(g, k) for _, g, k, _ in seen]
    assert len(pairs) == len(set(pairs)) == 6 * 5
    for g, values in strat.samples.items():
        assert sorted(k for genome, k in pairs if genome == g) == list(range(len(values)))
        assert values == [0.1 * len(parse_genome(g)) + 0.01 * k for k in range(len(values))]
    for g, fitness in strat.population:
        assert fitness == pytest.approx(np.mean(strat.samples[g]))
    last = records[-1]["candidates"]
    assert all(c["mean"] == pytest.approx(np.mean(strat.samples[c["genome"]])) for c in last)
    assert strat.best()[1] == max(strat.population_fitness())


def test_state_round_trip_continues_identically():
    opts = GeneticOptions(DEFAULT_FILTERS, population=6, random_max_layers=6)

    def run(break_at=None):
        records, strat = run_strategy(lambda: GeneticCNN(opts), by_length, seed=7, steps=12, break_at=break_at)
        return records, strat.best(), strat.samples

    assert run() == run(break_at=5)


def test_would_enter_means_beating_the_weakest_member_of_the_generation_before():
    strat = GeneticCNN(GeneticOptions(population=3))
    request = EvalRequest(parse_genome("32"), 0, "mutation")
    assert not strat.would_enter(request, 0.99)  # the first generation takes everyone
    strat.load_state({"population": [["16", 0.4], ["32", 0.6], ["64", 0.5]], "samples": {}}, None)
    assert strat.would_enter(request, 0.41) and not strat.would_enter(request, 0.4)


def test_options_are_checked():
    with pytest.raises(ValueError, match="mutation_prob"):
        GeneticOptions(mutation_prob=1.5)
    with pytest.raises(ValueError, match="population"):
        GeneticOptions(population=1)
    assert SearchConfig.from_options(strategy="ga", crossover_prob=0.5).method.crossover_prob == 0.5


# --- through the search: resume, budget, a real training -----------------------------------------
def history_with_samples(run_dir):
    with RunStore.open(run_dir) as store:
        evals = [dataclasses.replace(e, created_at="") for e in store.evaluations()]
        samples = [(k, n, dataclasses.replace(e, created_at="")) for k, n, e in store.samples()]
        rows = [(r.step, r.record, r.trainings, r.cache_hits) for r in store.step_rows()]
        return evals, samples, rows


def test_killed_and_resumed_equals_uninterrupted(tmp_path, score):
    config = SearchConfig.from_options(strategy="ga", steps=8, seed=5, population=4, random_max_layers=5)
    run_to_end(tmp_path / "a", config, score)
    assert run_to_end(tmp_path / "b", config, score, kills=[3, 17, 5, 1, 9, 2]) == 6
    whole = history_with_samples(tmp_path / "a")
    assert whole[1]  # survivors were re-sampled, so the comparison covers samples too
    assert whole == history_with_samples(tmp_path / "b")


def test_budget_counts_every_sample(tmp_path, score):
    search = make_search(tmp_path / "r", score, strategy="ga", budget=10, population=4, random_max_layers=4)
    search.run()
    totals = search.store.totals()
    rows = search.store.step_rows()
    # each generation trains all 4 members once more; the generation that reaches 10 finishes
    assert [r.trainings for r in rows] == [4, 4, 4] and [r.cache_hits for r in rows] == [0, 0, 0]
    assert totals["trainings"] == search.trainings == 12 and totals["samples"] > 0
    assert totals["trainings"] == len(search.store.evaluations()) + totals["samples"]
    search.close()


def test_a_real_training_run_on_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = SearchConfig.from_options(strategy="ga", dataset="digits", device="cpu", max_epochs=1, steps=1,
                                       population=2, filters=[8, 16], random_max_layers=2, crossover_prob=0.0,
                                       mutation_prob=0.0)
    with Search.create(tmp_path / "r", config) as search:
        search.run()
        evaluations, samples = search.store.evaluations(), search.store.samples()
        assert search.trainings == 4 and len(evaluations) + len(samples) == 4
        assert samples and all(ev.epochs == 1 and 0 < ev.fitness <= 1 for _, _, ev in samples)
        assert all(e.epochs == 1 and 0 < e.fitness <= 1 for e in evaluations)
        record = search.store.step_rows()[-1].record
        means = {c["genome"]: c["mean"] for c in record["candidates"]}
        for key in {key for key, _, _ in samples}:  # a survivor's fitness is the mean of all its trainings
            stored = search.store.samples_of(key)
            genome = stored[0].genome
            assert sorted(stored) == list(range(len(stored))) and len(stored) >= 2
            assert means[genome] == pytest.approx(np.mean([ev.fitness for ev in stored.values()]))
