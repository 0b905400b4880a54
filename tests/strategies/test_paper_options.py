"""The baselines' options that follow their papers (issue 21): each rule with a cheap fitness, and
that a run stored before the options existed reads and resumes with today's behaviour."""
import json
import sqlite3
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.config import SearchConfig
from alife_nas.genome import DEFAULT_FILTERS, Conv, Genome, MaxPool, parse_genome
from alife_nas.search import Search
from alife_nas.store import RunStore
from alife_nas.strategies.ga import (
    PAPER_BITS,
    GeneticCNN,
    GeneticOptions,
    mutate_bits,
    mutate_layers,
    roulette,
    selection_probabilities,
)
from alife_nas.strategies.regularized import RegularizedEvolution, RegularizedOptions
from alife_nas.strategies.rl import ControllerOptions, NasRL, reward_of
from tests.conftest import run_search, run_strategy
from tests.test_search import history, run_to_end

layers = st.one_of(st.sampled_from(DEFAULT_FILTERS).map(Conv), st.just(MaxPool()))
conv_first = st.tuples(st.sampled_from(DEFAULT_FILTERS).map(Conv), st.lists(layers, max_size=11)).map(
    lambda t: Genome((t[0], *t[1])))


def by_length(step, requests):
    return [min(0.95, 0.05 * len(r.genome)) for r in requests]


class Grid:
    """A stand-in generator whose ``random(n)`` is the n midpoints of [0, 1): a roulette over it
    picks each member exactly its probability times n (when no edge falls on a midpoint)."""

    def random(self, n):
        return (np.arange(n) + 0.5) / n


class Scripted:
    """A stand-in generator that answers ``random()`` and ``integers(n)`` from two lists."""

    def __init__(self, uniforms, integers):
        self.uniforms, self.ints = list(uniforms), list(integers)

    def random(self, size=None):
        if size is None:
            return self.uniforms.pop(0)
        return np.array([self.uniforms.pop(0) for _ in range(size)])

    def integers(self, n):
        value = self.ints.pop(0)
        assert 0 <= value < n
        return value


# --- ga: selection -----------------------------------------------------------------------------
def test_selection_probabilities_of_both_rules_are_exact():
    fitness = [0.25, 0.5, 0.75, 0.75]
    assert selection_probabilities(fitness) == pytest.approx([1 / 9, 2 / 9, 3 / 9, 3 / 9], abs=1e-15)
    assert selection_probabilities(fitness, "proportional") == selection_probabilities(fitness)
    # the paper's: fitness minus the generation's lowest (0.25): 0, 0.25, 0.5, 0.5 of 1.25
    assert selection_probabilities(fitness, "min-shifted") == pytest.approx([0.0, 0.2, 0.4, 0.4], abs=1e-15)
    # degenerate generations fall back to a uniform draw
    assert selection_probabilities([0.0, 0.0, 0.0]) == pytest.approx([1 / 3] * 3)
    assert selection_probabilities([0.6, 0.6, 0.6, 0.6], "min-shifted") == pytest.approx([0.25] * 4)
    assert selection_probabilities([0.0, 0.0, 0.5], "proportional") == [0.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="selection"):
        selection_probabilities(fitness, "tournament")


@pytest.mark.parametrize("rule,expected", [("proportional", [100, 200, 300, 300]),
                                           ("min-shifted", [0, 180, 360, 360])])
def test_the_roulette_picks_each_member_with_exactly_its_probability(rule, expected):
    picks = Counter(roulette(Grid(), [0.25, 0.5, 0.75, 0.75], 900, rule))
    assert [picks[i] for i in range(4)] == expected
    assert [n / 900 for n in expected] == pytest.approx(selection_probabilities([0.25, 0.5, 0.75, 0.75], rule))


def test_the_default_rule_is_todays_draw_for_draw():
    fitness = [0.91, 0.93, 0.0, 0.97, 0.95]
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    assert roulette(a, fitness, 500) == roulette(b, fitness, 500, "proportional")


def test_min_shifted_selection_never_keeps_the_weakest_member_of_a_generation():
    def noisy(step, requests):  # distinct fitness values, so one member is the weakest
        return [0.5 + 0.03 * len(r.genome) + 0.001 * ((r.index * 7 + step) % 11) for r in requests]

    strat = GeneticCNN(GeneticOptions(DEFAULT_FILTERS, population=8, random_max_layers=6, selection="min-shifted"))
    rng = np.random.default_rng(0)
    records = [strat.initialize(rng, noisy)] + [strat.step(rng, noisy, t) for t in range(1, 30)]
    for before, record in zip(records, records[1:]):
        means = [c["mean"] for c in before["candidates"]]
        if len(set(means)) > 1:
            assert all(means[i] > min(means) for i in record["selected"])


# --- ga: mutation keeps a conv first ---------------------------------------------------------------
def test_removing_the_first_conv_in_front_of_a_pool_is_not_made():
    # edit layer 0 (uniform 0.0 < rate), edit "remove" (index 3); keep layers 1 and 2
    child, edits = mutate_layers(Scripted([0.0, 0.9, 0.9], [3]), parse_genome("32-M-64"), 0.5, DEFAULT_FILTERS)
    assert (str(child), edits) == ("32-M-64", [])
    # the other edits of that mutation are made: layer 2 gets another count (edit 0, "filter"; 128 is
    # index 1 of the others, 32 and 128)
    child, edits = mutate_layers(Scripted([0.0, 0.9, 0.0], [3, 0, 1]), parse_genome("32-M-64"), 0.5, (32, 64, 128))
    assert (str(child), edits) == ("32-M-128", ["2:filter"])
    # removing the first conv in front of another conv is made
    child, edits = mutate_layers(Scripted([0.0, 0.9, 0.9], [3]), parse_genome("32-16-M"), 0.5, DEFAULT_FILTERS)
    assert (str(child), edits) == ("16-M", ["0:remove"])


@settings(max_examples=300)
@given(conv_first, st.integers(0, 2**32 - 1), st.floats(0, 1))
def test_per_layer_mutation_never_leaves_a_pool_first(g, seed, rate):
    child, edits = mutate_layers(np.random.default_rng(seed), g, rate, DEFAULT_FILTERS)
    assert isinstance(child[0], Conv)
    assert len(g) - len(edits) <= len(child) <= len(g) + len(edits)


@settings(max_examples=300)
@given(conv_first, st.integers(0, 2**32 - 1), st.floats(0, 1), st.integers(1, 40))
def test_bit_mutation_never_leaves_a_pool_first(g, seed, rate, bits):
    child, edits = mutate_bits(np.random.default_rng(seed), g, bits, rate, DEFAULT_FILTERS)
    assert isinstance(child[0], Conv) and not child.filters_outside(DEFAULT_FILTERS)
    assert len(edits) <= bits and abs(len(child) - len(g)) <= len(edits)
    if len(edits) <= 1:  # an edit made always changes the genome (two may undo each other)
        assert (child == g) == (not edits)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([None, 3, PAPER_BITS]))
def test_no_generation_of_the_ga_holds_a_pool_first_member(seed, bits):
    opts = GeneticOptions((16, 32), population=6, random_max_layers=5, mutation_prob=1.0, mutation_per_layer=0.5,
                          crossover_prob=0.3, mutation_bits=bits)
    strat = GeneticCNN(opts)
    rng = np.random.default_rng(seed)
    records = [strat.initialize(rng, by_length)] + [strat.step(rng, by_length, t) for t in range(1, 6)]
    assert all(isinstance(parse_genome(c["genome"])[0], Conv) for r in records for c in r["candidates"])


# --- ga: mutation strength -------------------------------------------------------------------------
def test_the_bit_mutation_tries_binomial_bits_qm_edits():
    rng, g = np.random.default_rng(11), parse_genome("32-64-M-128")
    tried = []
    for _ in range(20_000):
        state = rng.bit_generator.state
        flips = int(np.count_nonzero(rng.random(PAPER_BITS) < 0.05))
        rng.bit_generator.state = state  # the same draws again, through the mutation
        mutate_bits(rng, g, PAPER_BITS, 0.05, DEFAULT_FILTERS)
        tried.append(flips)
    share = np.mean([t > 0 for t in tried])
    assert share == pytest.approx(1 - 0.95**19, abs=0.01)  # 62.3%, the paper's 19 bits
    assert np.mean(tried) == pytest.approx(19 * 0.05, abs=0.02)


def flat(step, requests):
    return [0.5] * len(requests)  # no selection pressure on the length: it stays near random search's


def mutated_share(**options):
    """Of the members a GA drew to mutate, the share whose genome changed (10 runs, 10 generations of 20;
    the per-layer share grows as the genomes do: two of the four edits insert a layer, one removes one)."""
    drawn = changed = 0
    for seed in range(10):
        strat, rng = GeneticCNN(GeneticOptions(DEFAULT_FILTERS, **options)), np.random.default_rng(seed)
        strat.initialize(rng, flat)
        for t in range(1, 11):
            record = strat.step(rng, flat, t)
            drawn += len(record["mutated"])
            changed += sum(record["candidates"][m["member"]]["operator"] == "mutation" for m in record["mutated"])
    return changed / drawn


def test_the_paper_strength_changes_about_62_percent_of_the_members_drawn_to_mutate():
    # the paper's 19 bits: 1 - 0.95**19 = 62% are tried an edit (a few are not made: no removal of a lone layer)
    assert mutated_share(mutation_bits=PAPER_BITS) == pytest.approx(0.60, abs=0.03)
    assert mutated_share() == pytest.approx(0.27, abs=0.04)  # per layer: 1 - 0.95**len, lengths 1..12 at first


def test_ga_options_are_checked():
    with pytest.raises(ValueError, match="selection"):
        GeneticOptions(selection="rank")
    with pytest.raises(ValueError, match="mutation_bits"):
        GeneticOptions(mutation_bits=0)
    config = SearchConfig.from_options(strategy="ga", selection="min-shifted", mutation_bits=19)
    assert (config.method.selection, config.method.mutation_bits) == ("min-shifted", 19)


# --- rl: the reward --------------------------------------------------------------------------------
def test_reward_values():
    assert reward_of(0.9) == reward_of(0.9, "best") == 0.9
    assert reward_of(0.9, "cubed") == pytest.approx(0.729, abs=1e-15)
    assert reward_of(0.5, "cubed") == 0.125 and reward_of(0.0, "cubed") == 0.0 and reward_of(1.0, "cubed") == 1.0
    with pytest.raises(ValueError, match="reward"):
        reward_of(0.5, "last5")
    with pytest.raises(ValueError, match="reward"):
        ControllerOptions(reward="squared")


def test_the_cubed_reward_drives_reinforce_and_the_record_keeps_both():
    strat = NasRL(ControllerOptions(controller_batch=3, reward="cubed", baseline_decay=0.5))
    scores = [0.5, 0.8, 0.9]
    record = strat.initialize(np.random.default_rng(0), lambda step, requests: scores)
    cubes = [0.125, 0.512, 0.729]
    assert [c["fitness"] for c in record["candidates"]] == scores
    assert [c["reward"] for c in record["candidates"]] == pytest.approx(cubes, abs=1e-15)
    assert record["baseline"] == pytest.approx(np.mean(cubes))  # the first batch's mean reward
    assert record["advantages"] == pytest.approx([c - np.mean(cubes) for c in cubes])
    b = np.mean(cubes)
    for c in cubes:
        b = 0.5 * b + 0.5 * c
    assert record["next_baseline"] == pytest.approx(b)
    assert strat.best()[1] == 0.9 and strat.population_fitness() == scores  # fitness, not reward
    assert record["max_c"] == 0.9


def test_the_best_reward_is_todays_record_for_record():
    def score(step, requests):
        return [0.2 + 0.05 * len(r.genome) for r in requests]

    def run(options):
        strat, rng = NasRL(options), np.random.default_rng(4)
        return [strat.initialize(rng, score)] + [strat.step(rng, score, t) for t in range(1, 6)], strat.state()

    default, explicit = run(ControllerOptions(controller_batch=3)), run(ControllerOptions(controller_batch=3,
                                                                                          reward="best"))
    assert default == explicit
    assert all("reward" not in c for r in default[0] for c in r["candidates"])
    cubed = run(ControllerOptions(controller_batch=3, reward="cubed"))
    assert cubed[0][0]["candidates"][0]["genome"] == default[0][0]["candidates"][0]["genome"]  # same first draw
    assert cubed[1]["weights"] != default[1]["weights"]  # but the updates differ


# --- regularized: re-trained re-discoveries ------------------------------------------------------
def asking(log):
    def evaluate(step, requests):
        log.extend((step, str(r.genome), r.sample) for r in requests)
        return [min(0.95, 0.1 * len(r.genome)) + 0.01 * r.sample for r in requests]
    return evaluate


def test_a_rediscovered_genome_is_trained_again_as_its_next_sample():
    log = []
    strat = RegularizedEvolution(RegularizedOptions((16, 32), population=6, tournament=2, retrain_rediscovered=True))
    rng = np.random.default_rng(0)
    records = [strat.initialize(rng, asking(log))] + [strat.step(rng, asking(log), t) for t in range(1, 40)]
    asked = [(g, k) for _, g, k in log]
    assert len(asked) == len(set(asked)) == 6 + 39  # every request is a new training of its genome
    for genome in {g for g, _ in asked}:  # each genome's samples asked for in order 0, 1, 2, ...
        assert [k for g, k in asked if g == genome] == list(range(sum(g == genome for g, _ in asked)))
    assert max(k for _, k in asked) >= 2  # two filters and short genomes: re-discoveries are common
    children = [c for r in records[1:] for c in r["candidates"]]
    rediscovered = [c for c in children if c["sample"] >= 1]
    assert rediscovered and all(c["fitness"] == pytest.approx(min(0.95, 0.1 * len(parse_genome(c["genome"])))
                                                              + 0.01 * c["sample"]) for c in rediscovered)
    assert strat.state()["trainings"] == dict(Counter(g for g, _ in asked))


def test_without_the_option_a_rediscovered_genome_gets_its_stored_fitness():
    log = []
    strat = RegularizedEvolution(RegularizedOptions((16, 32), population=6, tournament=2))
    rng = np.random.default_rng(0)
    records = [strat.initialize(rng, asking(log))] + [strat.step(rng, asking(log), t) for t in range(1, 40)]
    assert {k for _, _, k in log} == {0}
    assert "trainings" not in strat.state() and all("sample" not in c for r in records for c in r["candidates"])


def test_retraining_state_round_trip_continues_identically():
    opts = RegularizedOptions((16, 32), population=5, tournament=2, retrain_rediscovered=True,
                              tournament_sampling="with-replacement")

    def run(break_at=None):
        records, strat = run_strategy(lambda: RegularizedEvolution(opts), asking([]), seed=3, steps=25,
                                      break_at=break_at)
        return records, strat.best(), strat.trainings

    assert run() == run(break_at=9)


@pytest.mark.parametrize("reevaluate", [1, 2])
def test_rediscoveries_are_stored_as_samples_through_the_search(tmp_path, score, reevaluate):
    run_dir = run_search(tmp_path / "r", score, strategy="regularized", steps=30, population=4, tournament=2,
                         filters=[16, 32], retrain_rediscovered=True, reevaluate=reevaluate)
    with RunStore.open(run_dir, readonly=True) as store:
        samples, evaluations, rows = store.samples(), store.evaluations(), store.step_rows()
        assert samples and all(n >= 1 for _, n, _ in samples)
        trainings = store.totals()["trainings"]
        assert trainings == len(evaluations) + len(samples)
        assert trainings == 4 + 30 if reevaluate == 1 else trainings > 4 + 30  # one per member and child
        assert sum(r.cache_hits for r in rows) == 0  # nothing is answered from the cache: every child trains
        asked = [c["sample"] for r in rows for c in r.record["candidates"]]
        assert max(asked) >= 1


def test_killed_and_resumed_with_retraining_equals_uninterrupted(tmp_path, score):
    config = SearchConfig.from_options(strategy="regularized", steps=30, seed=5, population=4, tournament=2,
                                       filters=[16, 32], retrain_rediscovered=True,
                                       tournament_sampling="with-replacement")
    run_to_end(tmp_path / "a", config, score)
    assert run_to_end(tmp_path / "b", config, score, kills=[3, 17, 5, 1, 9, 2]) == 6
    assert history(tmp_path / "a") == history(tmp_path / "b")
    with RunStore.open(tmp_path / "a", readonly=True) as a, RunStore.open(tmp_path / "b", readonly=True) as b:
        assert a.samples() and [s[:2] for s in a.samples()] == [s[:2] for s in b.samples()]


# --- regularized: tournaments with replacement -------------------------------------------------------
def test_a_tournament_with_replacement_can_hold_a_member_twice():
    def run(sampling):
        strat = RegularizedEvolution(RegularizedOptions(DEFAULT_FILTERS, population=4, tournament=4,
                                                        tournament_sampling=sampling))
        rng = np.random.default_rng(2)
        strat.initialize(rng, by_length)
        return [strat.step(rng, by_length, t) for t in range(1, 60)]

    with_ = run("with-replacement")
    assert any(len(set(r["sample"])) < len(r["sample"]) for r in with_)
    assert all(len(r["sample"]) == 4 and all(0 <= i < 4 for i in r["sample"]) for r in with_)
    without = run("without-replacement")
    assert all(sorted(r["sample"]) == [0, 1, 2, 3] for r in without)


def test_with_replacement_each_member_is_drawn_with_probability_one_over_p():
    strat = RegularizedEvolution(RegularizedOptions(DEFAULT_FILTERS, population=5, tournament=5,
                                                    tournament_sampling="with-replacement"))
    rng = np.random.default_rng(7)
    strat.initialize(rng, by_length)
    draws = Counter(i for t in range(1, 2001) for i in strat.step(rng, by_length, t)["sample"])
    assert all(abs(draws[i] / 10_000 - 0.2) < 0.015 for i in range(5))


def test_the_default_tournament_is_todays_draw_for_draw():
    def run(options):
        strat, rng = RegularizedEvolution(options), np.random.default_rng(5)
        return [strat.initialize(rng, by_length)] + [strat.step(rng, by_length, t) for t in range(1, 30)]

    base = dict(filters=DEFAULT_FILTERS, population=6, tournament=3)
    assert run(RegularizedOptions(**base)) == run(RegularizedOptions(**base, tournament_sampling="without-replacement",
                                                                     retrain_rediscovered=False))


def test_regularized_options_are_checked():
    with pytest.raises(ValueError, match="tournament_sampling"):
        RegularizedOptions(tournament_sampling="both")
    config = SearchConfig.from_options(strategy="regularized", tournament_sampling="with-replacement",
                                       retrain_rediscovered=True)
    assert config.method.tournament_sampling == "with-replacement" and config.method.retrain_rediscovered


# --- runs stored before the options existed --------------------------------------------------------
TODAY = {"ga": {"selection": "proportional", "mutation_bits": None},
         "rl": {"reward": "best"},
         "regularized": {"tournament_sampling": "without-replacement", "retrain_rediscovered": False}}
SMALL = {"ga": {"population": 4, "random_max_layers": 5}, "rl": {"controller_batch": 3, "controller_max_layers": 5},
         "regularized": {"population": 4, "tournament": 2}}


@pytest.mark.parametrize("strategy", sorted(TODAY))
def test_a_stored_config_without_the_new_keys_reads_as_todays_behaviour(strategy):
    stored = SearchConfig.from_options(strategy=strategy).to_dict()
    for key in TODAY[strategy]:
        del stored["method"][key]
    method = SearchConfig.from_dict(stored).method
    assert {key: getattr(method, key) for key in TODAY[strategy]} == TODAY[strategy]


@pytest.mark.parametrize("strategy", sorted(TODAY))
def test_a_run_stored_before_the_options_resumes_as_todays_rules_run(tmp_path, score, strategy):
    options = dict(strategy=strategy, seed=3, filters=[16, 32, 64], **SMALL[strategy])
    run_search(tmp_path / "today", score, steps=8, **options, **TODAY[strategy])  # today's rules, spelt out
    run_search(tmp_path / "old", score, steps=3, **options)
    conn = sqlite3.connect(tmp_path / "old" / "run.sqlite")  # as it was stored before the options existed
    with conn:
        body = json.loads(conn.execute("SELECT body FROM config WHERE id = 1").fetchone()[0])
        for key in TODAY[strategy]:
            del body["method"][key]
        conn.execute("UPDATE config SET body = ? WHERE id = 1", (json.dumps(body),))
    conn.close()
    with Search.open(tmp_path / "old", score=score, steps=8) as search:
        search.run()
    assert history(tmp_path / "old") == history(tmp_path / "today")

