"""--reevaluate K: a genome is re-trained before a strategy relies on one (lucky) training."""
import dataclasses
import hashlib
import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.cli import main
from alife_nas.config import ConfigError, SearchConfig, settings_hash
from alife_nas.contract import EvalRequest, FitnessStats, mean_fitness
from alife_nas.evaluation import (
    CachedEvaluator,
    Reevaluating,
    cache_key,
    candidate_seed,
)
from alife_nas.executors import SerialExecutor
from alife_nas.export import to_json, to_markdown, top_architectures
from alife_nas.genome import parse_genome
from alife_nas.search import Search
from alife_nas.store import RunStore
from tests.conftest import fake_score, make_search
from tests.test_search import Crash, run_to_end


def noisy_score(genome, seed):
    """fake_score plus up to 0.06 of seed noise: one training of a genome says little about it."""
    result = fake_score(genome, seed)
    result["fitness"] = min(0.99, result["fitness"] + (seed % 601) / 1e4)
    return result


#: The seeds of every genome's first training (sample 0) in these tests: candidate seeds of run seed 0.
FIRST_SEEDS = {candidate_seed(0, t, i) for t in range(6) for i in range(40)}


class Table:
    """A score read from a table: a genome's first training gets ``first[g]``, every later one ``later[g]``."""

    def __init__(self, first, later):
        self.first, self.later, self.calls = first, later, []

    def __call__(self, genome, seed):
        self.calls.append(str(genome))
        table = self.first if seed in FIRST_SEEDS else self.later
        return {"genome": str(genome), "fitness": table[str(genome)], "epochs": 1}


def gate(tmp_path, score, k, would_enter=lambda request, fitness: False):
    store = RunStore.create(tmp_path / "run", SearchConfig(), settings_hash({"lr": 0.1}))
    inner = CachedEvaluator(store, SerialExecutor(lambda genome, seed, on_epoch=None: score(genome, seed)), run_seed=0)
    return store, inner, Reevaluating(inner, k, would_enter)


def reqs(*genomes, operator="x"):
    return [EvalRequest(parse_genome(g), i, operator) for i, g in enumerate(genomes)]


def stored(store, genome):
    return [ev.fitness for _, ev in sorted(store.samples_of(cache_key(store.settings_hash, genome)).items())]


# --- the gate, one batch at a time -----------------------------------------------------------------
def test_the_best_is_re_trained_until_the_best_of_the_batch_has_k_trainings(tmp_path):
    # 32's first training is lucky: re-trained, it falls below 16's, which is re-trained in turn
    score = Table(first={"32": 0.9, "16": 0.85, "64": 0.5, "96": 0.6}, later={"32": 0.7, "16": 0.84})
    store, inner, evaluate = gate(tmp_path, score, 3)
    out = evaluate(0, reqs("32", "16", "64", "96"))
    assert out == [mean_fitness([0.9, 0.7, 0.7]), mean_fitness([0.85, 0.84, 0.84]), 0.5, 0.6]
    assert score.calls == ["32", "16", "64", "96", "32", "32", "16", "16"]
    assert stored(store, "32") == [0.9, 0.7, 0.7] and stored(store, "64") == [0.5]
    assert (inner.trainings, inner.cache_hits) == (8, 0) == (store.count_evaluations(), 0)
    # the best found is the mean of K trainings, not the luckiest single one
    best = store.best_evaluation()
    assert (best.genome, best.fitness) == ("16", out[1])
    assert store.genome_fitness()["32"] == FitnessStats(out[0], 0.7, 0.9, 3)
    one = store.genome_fitness()["64"]
    assert one == FitnessStats(0.5, 0.5, 0.5, 1) and one.spread is None


def test_a_genome_is_re_trained_when_it_would_enter_or_be_best_and_only_then(tmp_path):
    first = {"32": 0.9, "16": 0.85, "64": 0.8, "96": 0.86, "128": 0.7, "192": 0.81}
    later = {"32": 0.7, "16": 0.84, "64": 0.7, "96": 0.80, "128": 0.6, "192": 0.5}
    score = Table(first, later)
    # "enters": an 'enter' request whose fitness so far is above 0.75 (a strategy's hook)
    store, inner, evaluate = gate(tmp_path, score, 3, lambda r, f: r.operator == "enter" and f > 0.75)
    evaluate(0, reqs("32", "16"))
    best = mean_fitness([0.85, 0.84, 0.84])
    inner.reset_counts()
    batch = [EvalRequest(parse_genome("64"), 0, "enter"), EvalRequest(parse_genome("96"), 1, "x"),
             EvalRequest(parse_genome("128"), 2, "enter"), EvalRequest(parse_genome("192"), 3, "x"),
             EvalRequest(parse_genome("32"), 4, "x")]
    out = evaluate(1, batch)
    # 64 enters (0.8 > 0.75), 96 would be the best (0.86 > 0.843), 128 is too weak to enter, 192 below
    # the best; 32 is a cache hit answered with the mean of its three trainings
    assert [len(stored(store, g)) for g in ("64", "96", "128", "192", "32")] == [3, 3, 1, 1, 3]
    assert out == [mean_fitness([0.8, 0.7, 0.7]), mean_fitness([0.86, 0.8, 0.8]), 0.7, 0.81,
                   mean_fitness([0.9, 0.7, 0.7])]
    assert out[1] < best  # 96's mean fell below the best: nothing more to re-train
    assert (inner.trainings, inner.cache_hits) == (3 + 3 + 1 + 1, 1)
    # every training is stored, as sample 0..K-1 of its genome, made in the step and at the index asking for it
    samples = store.samples_of(cache_key(store.settings_hash, "96"))
    assert [(n, ev.step, ev.index) for n, ev in sorted(samples.items())] == [(0, 1, 1), (1, 1, 1), (2, 1, 1)]
    assert store.count_evaluations() == 2 * 3 + 8 == store.totals()["trainings"]


def test_a_cache_hit_gets_the_mean_of_all_its_trainings_and_a_genome_re_trained_once_is_not_again(tmp_path):
    score = Table(first={"32": 0.9, "16": 0.5}, later={"32": 0.6})
    store, inner, evaluate = gate(tmp_path, score, 2)
    assert evaluate(0, reqs("32", "16")) == [0.75, 0.5]
    inner.reset_counts()
    assert evaluate(1, reqs("16", "32")) == [0.5, 0.75] and (inner.trainings, inner.cache_hits) == (0, 2)
    assert evaluate.samples(2, reqs("32")) == [(0.9, 0.6)]
    assert score.calls == ["32", "16", "32"]


def test_k_equal_to_one_changes_nothing(tmp_path):
    score = Table(first={"32": 0.9, "16": 0.5}, later={})
    store, inner, evaluate = gate(tmp_path, score, 1, lambda r, f: True)
    assert evaluate(0, reqs("32", "16")) == [0.9, 0.5] and store.count_samples() == 0 and inner.trainings == 2


def test_a_step_replayed_after_a_kill_decides_as_the_first_attempt_did(tmp_path):
    # step 1: 96 is first asked for by a batch that leaves it alone (not the best, not entering),
    # then by a second batch that re-trains it (it enters). A kill during the second batch leaves
    # 96's extra trainings stored; the replayed first batch must still see only its first training.
    first = {"32": 0.9, "96": 0.80}
    later = {"32": 0.9, "96": 0.70}
    store, inner, evaluate = gate(tmp_path, Table(first, later), 3, lambda r, f: r.operator == "enter")
    evaluate(0, reqs("32"))
    calls = itertools.count(1)

    def dying(genome, seed):
        if next(calls) == 3:  # 96's second extra training
            raise Crash
        return Table(first, later)(genome, seed)

    inner.executor = SerialExecutor(lambda genome, seed, on_epoch=None: dying(genome, seed))
    assert evaluate(1, reqs("96")) == [0.80]
    with pytest.raises(Crash):
        evaluate(1, [EvalRequest(parse_genome("96"), 5, "enter")])
    assert stored(store, "96") == [0.80, 0.70]  # what the killed attempt left

    replay = Reevaluating(inner, 3, lambda r, f: r.operator == "enter")  # a fresh process
    inner.executor = SerialExecutor(lambda genome, seed, on_epoch=None: Table(first, later)(genome, seed))
    inner.reset_counts()
    assert replay(1, reqs("96")) == [0.80]
    assert replay(1, [EvalRequest(parse_genome("96"), 5, "enter")]) == [mean_fitness([0.80, 0.70, 0.70])]
    # the stored sample replays as a training of this step (as the uninterrupted run counts it)
    assert (inner.trainings, inner.cache_hits) == (3, 1) and stored(store, "96") == [0.80, 0.70, 0.70]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["16", "32", "64", "16-M", "32-M", "64-M", "16-32"]), st.booleans()),
                min_size=1, max_size=8),
       st.integers(2, 4), st.integers(0, 10**6))
def test_invariants_of_a_batch(tmp_path_factory, batch, k, salt):
    """Whatever the batch: answers are means of the stored trainings, the best found has K of them,
    every genome that entered has K, and every genome has either one training or K."""
    def score(genome, seed):
        digest = hashlib.sha256(f"{genome}|{seed}|{salt}".encode()).hexdigest()
        return {"genome": str(genome), "fitness": int(digest[:8], 16) / 16**8}

    entered = set()

    def would_enter(request, fitness):
        if request.operator == "enter" and fitness > 0.5:
            entered.add(str(request.genome))
            return True
        return False

    store, inner, evaluate = gate(tmp_path_factory.mktemp("g"), score, k, would_enter)
    for step in (0, 1):
        requests = [EvalRequest(parse_genome(g), i, "enter" if e else "x") for i, (g, e) in enumerate(batch)]
        out = evaluate(step, requests)
        stats = store.genome_fitness()
        assert out == [stats[str(r.genome)].mean for r in requests]
        assert all(stats[g].samples == k for g in entered)
        assert all(s.samples in (1, k) for s in stats.values())
        best = store.best_evaluation()
        assert stats[best.genome].samples == k and best.fitness == max(s.mean for s in stats.values())
        assert store.count_evaluations() == sum(s.samples for s in stats.values())


# --- through a search --------------------------------------------------------------------------
def test_config_option_round_trips_and_is_result_changing_but_not_a_cache_setting(tmp_path):
    config = SearchConfig.from_options(reevaluate=2, strategy="regularized")
    assert config.fitness.reevaluate == 2 and config.options()["reevaluate"] == 2
    assert SearchConfig.from_dict(config.to_dict()) == config and config.to_dict()["fitness"] == {"reevaluate": 2, "prune": "none"}
    assert config.cache_settings() == SearchConfig(strategy="regularized").cache_settings()
    old = config.to_dict()
    del old["fitness"]  # stored before the section existed
    assert SearchConfig.from_dict(old).fitness.reevaluate == 1 and SearchConfig().fitness.reevaluate == 1
    for bad in (0, -1, 1.5, "2", True, 10**6):
        with pytest.raises(ConfigError, match="reevaluate"):
            SearchConfig.from_options(reevaluate=bad)
    with make_search(tmp_path / "r", noisy_score, lattice=2, steps=1, reevaluate=2) as search:
        search.run()
    with pytest.raises(ConfigError, match="reevaluate: 2 -> 3"):
        Search.open(tmp_path / "r", score=noisy_score, reevaluate=3)
    with Search.open(tmp_path / "r", score=noisy_score, reevaluate=2, steps=2) as search:
        search.run()


def test_the_default_is_the_seeds_protocol(tmp_path):
    with make_search(tmp_path / "d", noisy_score, lattice=3, steps=4, seed=1) as search:
        assert search.evaluate is search.evaluator  # no gate in between
        search.run()
        assert search.store.count_samples() == 0
    with make_search(tmp_path / "one", noisy_score, lattice=3, steps=4, seed=1, reevaluate=1) as search:
        search.run()
    assert history(tmp_path / "d") == history(tmp_path / "one")


def history(run_dir):
    with RunStore.open(run_dir) as store:
        evals = [dataclasses.replace(e, created_at="") for e in store.evaluations()]
        samples = [(k, n, dataclasses.replace(e, created_at="")) for k, n, e in store.samples()]
        rows = [(r.step, r.record, r.lattice, r.trainings, r.cache_hits) for r in store.step_rows()]
        return evals, samples, rows


@pytest.mark.parametrize("strategy, options", [
    ("neuralfinder", {"lattice": 4, "steps": 10}),
    ("regularized", {"population": 6, "tournament": 3, "steps": 30}),
    ("ga", {"population": 4, "random_max_layers": 4, "steps": 10}),
])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, strategy, options):
    config = SearchConfig.from_options(strategy=strategy, seed=5, reevaluate=2, **options)
    run_to_end(tmp_path / "a", config, noisy_score)
    assert run_to_end(tmp_path / "b", config, noisy_score, kills=[3, 17, 5, 1, 9, 2]) == 6
    whole = history(tmp_path / "a")
    assert len(whole[1]) >= 5  # genomes were re-trained, so the comparison covers samples too
    assert whole == history(tmp_path / "b")


@pytest.mark.parametrize("strategy, options", [
    ("neuralfinder", {"lattice": 3}), ("random", {"random_max_layers": 4}),
    ("regularized", {"population": 5, "tournament": 2}), ("rl", {"controller_batch": 3}),
    ("ga", {"population": 4, "random_max_layers": 4}),
])
def test_budget_counts_every_training_and_the_strategy_sees_means(tmp_path, strategy, options):
    seen = []
    search = make_search(tmp_path / "r", noisy_score, strategy=strategy, budget=30, reevaluate=3, **options)
    search.run(on_result=lambda request, ev, cached: seen.append(request.sample))
    totals, rows = search.store.totals(), search.store.step_rows()
    assert sum(r.trainings for r in rows[:-1]) < 30 <= totals["trainings"] == sum(r.trainings for r in rows)
    assert totals["trainings"] == len(search.store.evaluations()) + totals["samples"] and totals["samples"] > 0
    assert max(seen) >= 2  # samples 1 and 2 were asked for
    stats = search.store.genome_fitness()
    best = search.summary()
    assert stats[best.best_genome].samples >= 3 and best.best_fitness == max(s.mean for s in stats.values())
    # what the strategy recorded for a genome is the mean of its trainings as the step saw them
    for row in rows:
        for candidate in row.record.get("candidates", []):
            fitness = candidate.get("mean", candidate["fitness"])
            trained = stored(search.store, candidate["genome"])
            assert any(fitness == mean_fitness(trained[:n]) for n in range(1, len(trained) + 1))
    search.close()


def test_ga_keeps_every_training_the_gate_adds(tmp_path):
    with make_search(tmp_path / "r", noisy_score, strategy="ga", steps=4, population=4, random_max_layers=4,
                     reevaluate=3) as search:
        search.run()
        state = search.store.last_step().strategy_state
        for genome, values in state["samples"].items():
            assert values == stored(search.store, genome)
        rows = search.store.step_rows()
        assert all(r.trainings >= 4 for r in rows)  # every member is still trained once more per generation
        for row in rows:
            for c in row.record["candidates"]:  # this training is its sample; the mean is over those so far
                trained = state["samples"][c["genome"]]
                assert c["fitness"] == trained[c["sample"]]
                assert any(c["mean"] == mean_fitness(trained[:n]) for n in range(c["sample"] + 1, len(trained) + 1))
        assert any(len(values) >= 3 for values in state["samples"].values())


def test_status_and_exports_show_mean_spread_and_samples(tmp_path):
    runner = CliRunner()
    with make_search(tmp_path / "re", noisy_score, lattice=3, steps=2, reevaluate=2) as search:
        search.run()
        stats = search.store.genome_fitness()
        evaluations = search.store.evaluations()
    with make_search(tmp_path / "one", noisy_score, lattice=3, steps=2) as search:
        search.run()
    info = json.loads(runner.invoke(main, ["status", str(tmp_path / "re"), "--json"]).output)
    best = info["best"]
    assert info["reevaluate"] == 2 and best["samples"] == 2 and best["fitness"] == stats[best["genome"]].mean
    assert best["fitness_range"] == [stats[best["genome"]].low, stats[best["genome"]].high]
    assert {"samples", "fitness_range", "cell"} <= set(info["best_in_lattice"])
    text = runner.invoke(main, ["status", str(tmp_path / "re")]).output
    low, high = best["fitness_range"]
    assert f"best found: {best['fitness']:.4f} (n=2, {low:.4f}-{high:.4f})  {best['genome']}" in text
    assert "reevaluate 2" in text
    info = json.loads(runner.invoke(main, ["status", str(tmp_path / "one"), "--json"]).output)
    assert info["reevaluate"] == 1 and info["best"]["samples"] == 1 and info["best"]["fitness_range"] is None
    assert "(n=1)" in runner.invoke(main, ["status", str(tmp_path / "one")]).output

    rows = top_architectures(evaluations, k=5, fitness=stats)
    assert rows[0]["genome"] == best["genome"] and rows[0]["fitness"] == best["fitness"]
    assert rows[0]["samples"] == 2 and rows[0]["fitness_range"] == best["fitness_range"]
    assert [r["fitness"] for r in rows] == sorted((r["fitness"] for r in rows), reverse=True)
    assert json.loads(to_json(rows))[0]["samples"] == 2
    assert "Trainings (range)" in to_markdown(rows)
    plain = top_architectures(evaluations, k=5)  # without the run's stats: one training each
    assert all(r["samples"] == 1 and r["fitness_range"] is None for r in plain)
    assert "Trainings (range)" not in to_markdown(plain)


def test_a_real_training_run_on_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = SearchConfig.from_options(dataset="digits", device="cpu", max_epochs=1, lattice=2, steps=1,
                                       filters=[8, 16], reevaluate=2)
    with Search.create(tmp_path / "r", config) as search:
        search.run()
        samples = search.store.samples()
        assert samples and all(ev.epochs == 1 and 0 < ev.fitness <= 1 for _, _, ev in samples)
        assert search.trainings == len(search.store.evaluations()) + len(samples)
        stats = search.store.genome_fitness()
        best = search.store.best_evaluation()
        assert stats[best.genome].samples == 2 and best.fitness == pytest.approx(
            np.mean([ev.fitness for ev in search.store.samples_of(cache_key(search.store.settings_hash,
                                                                             best.genome)).values()]))
        lattice = search.store.last_step().lattice
        for genome_row, fitness_row in zip(lattice["genomes"], lattice["fitness"]):
            for genome, fitness in zip(genome_row, fitness_row):
                trained = stored(search.store, genome)
                assert any(fitness == mean_fitness(trained[:n]) for n in range(1, len(trained) + 1))


def test_a_cell_compares_with_its_genomes_current_mean_and_no_genome_replaces_itself(tmp_path):
    """With K > 1 a genome's mean moves as it is re-trained; the lattice cell holding it used to
    keep the fitness it was written with, so the same genome could "beat" its own cell and spread
    mutants for nothing. Now every step starts from the current means, and a winner equal to the
    master's (or partner's) genome never replaces it."""
    search = make_search(tmp_path / "r", noisy_score, lattice=3, steps=40, seed=2, reevaluate=2,
                         filters=[16, 32])  # a small space: winners often equal the cells they face
    search.run()
    store, rows = search.store, search.store.step_rows()
    same_genome_replacements = stale = 0
    for row in rows[1:]:
        record = row.record
        if record["outcome"] in ("replace_master", "replace_both"):
            winner = record["candidates"][record["best_index"]]["genome"]
            faced = [record["master_genome"]] + ([record["partner_genome"]] if record["outcome"] == "replace_both" else [])
            same_genome_replacements += winner in faced
        known = store.sample_fitness(before_step=row.step)  # what the step began from
        for role in ("master", "partner"):
            key = cache_key(store.settings_hash, parse_genome(record[f"{role}_genome"]))
            stale += record[f"{role}_fitness"] != mean_fitness(known[key])
    moved = any(len(v) > 1 for v in store.sample_fitness(before_step=10**9).values())
    search.close()
    assert moved  # genomes were re-trained: their means moved
    assert same_genome_replacements == 0 and stale == 0
