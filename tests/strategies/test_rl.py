"""NAS-RL's controller: valid genomes, exact gradients, REINFORCE and its baseline, resume, budget, real training."""
import itertools
import json
import sqlite3

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alife_nas.config import SearchConfig
from alife_nas.genome import DEFAULT_FILTERS, Conv
from alife_nas.search import Search
from alife_nas.store import DB_NAME, SCHEMA_VERSION, RunStore
from alife_nas.strategies.rl import Controller, ControllerOptions, NasRL
from tests.conftest import make_search, run_search, run_strategy
from tests.test_search import Crash, history, make_v3, open_or_create, run_to_end


def controller(seed=0, filters=DEFAULT_FILTERS, max_layers=12, hidden=35):
    return Controller.random(np.random.default_rng(seed), filters, max_layers, hidden)


@settings(max_examples=50)
@given(st.integers(0, 2**32 - 1), st.integers(1, 8))
def test_the_controller_writes_valid_genomes(seed, max_layers):
    ctl = controller(seed % 7, max_layers=max_layers, hidden=8)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        tokens = ctl.sample(rng)
        genome = ctl.genome(tokens)
        assert isinstance(genome[0], Conv) and 1 <= len(genome) <= max_layers
        assert not genome.filters_outside(DEFAULT_FILTERS)
        assert (tokens[-1] == ctl.end) == (len(genome) < max_layers) and ctl.end not in tokens[:-1]
        assert ctl.tokens(genome) == tokens and np.isfinite(ctl.log_prob(tokens))


def test_the_policy_is_a_distribution_over_every_genome():
    ctl = controller(1, filters=(16, 32), max_layers=3, hidden=5)
    total = 0.0
    for length in (1, 2, 3):
        for rest in itertools.product(range(3), repeat=length - 1):  # 16, 32 or M after a first conv
            for first in range(2):
                tokens = [first, *rest] + ([ctl.end] if length < 3 else [])
                total += np.exp(ctl.log_prob(tokens))
    assert total == pytest.approx(1.0, abs=1e-12)


def test_the_gradient_matches_finite_differences():
    ctl = controller(2, max_layers=6, hidden=6)
    tokens = ctl.sample(np.random.default_rng(3))
    grads = ctl.gradient(tokens, weight=0.7)
    rng = np.random.default_rng(4)
    for name in Controller.NAMES:
        for _ in range(8):
            at = tuple(int(rng.integers(n)) for n in ctl.params[name].shape)
            if name == "embed":  # rows that the sequence reads: the start row or an emitted token
                at = (int(rng.choice([ctl.vocab, *tokens[:-1]])), at[1])
            old = ctl.params[name][at]
            ctl.params[name][at] = old + 1e-5
            up = ctl.log_prob(tokens)
            ctl.params[name][at] = old - 1e-5
            down = ctl.log_prob(tokens)
            ctl.params[name][at] = old
            assert grads[name][at] == pytest.approx(0.7 * (up - down) / 2e-5, rel=1e-5, abs=1e-8)


def started(options=ControllerOptions(), seed=0):
    strat = NasRL(options)
    strat.initialize(np.random.default_rng(seed), lambda step, requests: [0.5] * len(requests))
    return strat


def test_reinforce_makes_a_rewarded_sequence_more_likely():
    strat = started()
    ctl, rng = strat.controller, np.random.default_rng(5)
    good, bad = ctl.sample(rng), ctl.sample(rng)
    assert good != bad
    before = ctl.log_prob(good), ctl.log_prob(bad)
    strat.baseline = 0.5
    for _ in range(5):
        strat.reinforce([good, bad], [0.9, 0.1])
    assert ctl.log_prob(good) > before[0] + 0.1 and ctl.log_prob(bad) < before[1] - 0.1


def test_a_reward_equal_to_the_baseline_changes_nothing():
    strat = started()
    weights = {k: v.copy() for k, v in strat.controller.params.items()}
    strat.baseline = 0.5
    tokens = strat.controller.sample(np.random.default_rng(6))
    strat.reinforce([tokens], [0.5])
    assert all(np.array_equal(weights[k], strat.controller.params[k]) for k in weights)


def test_baseline_starts_at_the_first_batch_mean_then_moves_as_an_ema():
    strat = NasRL(ControllerOptions(baseline_decay=0.9, controller_batch=2))
    scores = iter([[0.2, 0.4], [0.8, 0.6]])
    first = strat.initialize(np.random.default_rng(0), lambda step, requests: next(scores))
    assert first["baseline"] == pytest.approx(0.3) and first["advantages"] == pytest.approx([-0.1, 0.1])
    after_first = 0.9 * (0.9 * 0.3 + 0.1 * 0.2) + 0.1 * 0.4
    assert strat.baseline == pytest.approx(after_first) == first["next_baseline"]
    second = strat.step(np.random.default_rng(1), lambda step, requests: next(scores), 1)
    assert second["baseline"] == pytest.approx(after_first)
    assert second["advantages"] == pytest.approx([0.8 - after_first, 0.6 - after_first])
    assert strat.baseline == pytest.approx(0.9 * (0.9 * after_first + 0.1 * 0.8) + 0.1 * 0.6)


def test_the_controller_learns_what_is_rewarded():
    def pools(step, requests):  # more pools (up to 3) score higher; their position does not matter
        return [0.3 + 0.2 * min(r.genome.num_pools, 3) for r in requests]

    strat, rng = NasRL(ControllerOptions(filters=(16, 32), controller_max_layers=6)), np.random.default_rng(8)
    first = strat.initialize(rng, pools)
    records = [first] + [strat.step(rng, pools, t) for t in range(1, 40)]
    mean = [np.mean([c["fitness"] for c in r["candidates"]]) for r in records]
    assert np.mean(mean[-5:]) > np.mean(mean[:5]) + 0.2
    assert strat.best() == max(((c["genome"], c["fitness"]) for r in records for c in r["candidates"]),
                               key=lambda p: p[1])


def test_state_is_json_and_continues_exactly():
    def score(step, requests):
        return [0.2 + 0.05 * len(r.genome) for r in requests]

    def run(break_at=None):
        records, strat = run_strategy(lambda: NasRL(ControllerOptions(controller_batch=3)), score, seed=9,
                                      steps=10, break_at=break_at)
        return records, strat.state()

    assert run() == run(break_at=4)


def test_options_are_checked():
    with pytest.raises(ValueError, match="baseline_decay"):
        ControllerOptions(baseline_decay=1.5)
    with pytest.raises(ValueError, match="controller_lr"):
        ControllerOptions(controller_lr=0)
    assert SearchConfig.from_options(strategy="rl", controller_batch=3).method.controller_batch == 3


# --- through the search: resume, budget, a real training -----------------------------------------
def test_killed_and_resumed_equals_uninterrupted(tmp_path, score):
    config = SearchConfig.from_options(strategy="rl", steps=10, seed=5, controller_batch=4, controller_max_layers=6)
    run_to_end(tmp_path / "a", config, score)
    assert run_to_end(tmp_path / "b", config, score, kills=[3, 17, 5, 1, 9, 2]) == 6
    assert history(tmp_path / "a") == history(tmp_path / "b")


def saved(run_dir):
    with RunStore.open(run_dir, readonly=True) as store:
        last = store.last_step()
        return last.step, last.strategy_state, last.rng_state


def test_stopped_between_steps_and_resumed_equals_uninterrupted(tmp_path, score):
    config = SearchConfig.from_options(strategy="rl", steps=8, seed=6, controller_batch=3, controller_max_layers=6)
    run_to_end(tmp_path / "a", config, score)
    for stop_after in (0, 1, 4, 7):  # each attempt ends right after a step's commit

        def stop(summary, at=stop_after):
            if summary.step == at:
                raise Crash

        with open_or_create(tmp_path / "b", config, score) as search, pytest.raises(Crash):
            search.run(on_step=stop)
    with open_or_create(tmp_path / "b", config, score) as search:
        search.run()
    assert history(tmp_path / "a") == history(tmp_path / "b") and saved(tmp_path / "a") == saved(tmp_path / "b")


def stored_bytes(run_dir):
    """(bytes of every steps row together, bytes of the saved states, steps stored)."""
    conn = sqlite3.connect(run_dir / DB_NAME)
    try:
        steps, rows = conn.execute(
            "SELECT SUM(LENGTH(record) + COALESCE(LENGTH(snapshot), 0) + LENGTH(finished_at) + 32), COUNT(*) "
            "FROM steps").fetchone()
        columns = {c[1] for c in conn.execute("PRAGMA table_info(steps)")}
        assert not columns & {"strategy_state", "rng_state"}  # no state is kept per step
        (states,) = conn.execute("SELECT LENGTH(strategy_state) + LENGTH(rng_state) FROM resume_state").fetchone()
        return steps, states, rows
    finally:
        conn.close()


def test_the_controller_state_is_stored_once_not_per_step(tmp_path, score):
    sizes = {}
    for steps in (6, 12):  # the paper's controller: 35 units, nine filter counts (~345 kB of state)
        run_search(tmp_path / str(steps), score, strategy="rl", steps=steps, seed=1)
        sizes[steps] = (*stored_bytes(tmp_path / str(steps)), (tmp_path / str(steps) / DB_NAME).stat().st_size)
    (steps6, state6, rows6, file6), (steps12, state12, rows12, file12) = sizes[6], sizes[12]
    assert state6 > 300_000 and abs(state12 - state6) < 100  # one state; only its few plain numbers vary
    per_step = (steps12 - steps6) / (rows12 - rows6)
    assert per_step < 2_000  # the step's record: rewards, log-probabilities, baseline, advantages
    assert (file12 - file6) / (rows12 - rows6) < 10_000  # the file grows by records and trainings, not states
    with RunStore.open(tmp_path / "12", readonly=True) as store:
        record = store.step_rows()[-1].record
        assert {"baseline", "next_baseline", "advantages", "candidates"} <= set(record)
        assert all({"genome", "fitness", "log_prob"} <= set(c) for c in record["candidates"])


def test_a_run_of_version_0_3_is_read_upgraded_and_resumed_exactly(tmp_path, score):
    config = SearchConfig.from_options(strategy="rl", steps=6, seed=7, controller_batch=3, controller_max_layers=6)
    run_to_end(tmp_path / "whole", config, score)
    states = {}
    with make_search(tmp_path / "old", score, strategy="rl", steps=3, seed=7, controller_batch=3,
                     controller_max_layers=6) as search:
        search.run(on_step=lambda s: states.update(
            {s.step: (search.strategy.state(), search.rng.bit_generator.state)}))
    make_v3(tmp_path / "old", states)  # as 0.3 wrote it: every step row with its own states
    with RunStore.open(tmp_path / "old", readonly=True) as store:  # readers take it as it is
        assert store.schema_version == 3 and store.last_step().strategy_state == json.loads(json.dumps(states[3][0]))
    with Search.open(tmp_path / "old", score=score, steps=6) as search:
        assert search.store.schema_version == SCHEMA_VERSION
        search.run()
    assert history(tmp_path / "old") == history(tmp_path / "whole")
    assert saved(tmp_path / "old") == saved(tmp_path / "whole")
    stored_bytes(tmp_path / "old")  # the per-step copies are gone
    with RunStore.open(tmp_path / "old") as store:
        assert [e["kind"] for e in store.events()][:1] == ["upgrade"]


def test_budget_counts_trainings_not_cache_hits(tmp_path):
    def score(genome, seed):
        return {"genome": str(genome), "fitness": 0.2 + 0.01 * len(genome)}

    search = make_search(tmp_path / "r", score, strategy="rl", budget=15, filters=[16, 32], controller_batch=4,
                         controller_max_layers=3)
    search.run()
    totals, rows = search.store.totals(), search.store.step_rows()
    assert sum(r.trainings for r in rows[:-1]) < 15 <= sum(r.trainings for r in rows) == totals["trainings"]
    assert totals["trainings"] <= 15 + 3 and totals["cache_hits"] > 0 and totals["samples"] == 0
    search.close()


def test_a_real_training_run_on_digits(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    config = SearchConfig.from_options(strategy="rl", dataset="digits", device="cpu", max_epochs=1, steps=1,
                                       controller_batch=2, filters=[8, 16], controller_max_layers=2)
    with Search.create(tmp_path / "r", config) as search:
        summary = search.run()
        rows = search.store.step_rows()
        assert [r.step for r in rows] == [0, 1] and summary.trainings == sum(r.trainings for r in rows) >= 1
        assert all(e.epochs == 1 and 0 < e.fitness <= 1 for e in search.store.evaluations())
        assert all(len(r.record["candidates"]) == 2 for r in rows)
        assert rows[-1].record["baseline"] == pytest.approx(rows[0].record["next_baseline"])
