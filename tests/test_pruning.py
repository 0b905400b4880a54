"""--prune median: a training below the median of the finished trainings at its epoch stops."""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math

import pytest

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.contract import PRUNED, EvalRequest, Pruned
from alife_nas.executors import Task, score_safely
from alife_nas.genome import parse_genome
from alife_nas.search import Search
from alife_nas.store import RunStore
from tests.conftest import make_search

EPOCHS = 8


def curve(genome) -> list[float]:
    """A cheap deterministic, rising validation curve per genome: q * (1 - 0.6^e)."""
    q = 0.5 + 0.45 * int(hashlib.sha256(str(genome).encode()).hexdigest()[:6], 16) / 16**6
    return [q * (1 - 0.6 ** e) for e in range(1, EPOCHS + 1)]


def curve_score(genome, seed, on_epoch=None):
    """Trains epoch by epoch through on_epoch (which may stop it, as the trainer's does)."""
    seen = []
    try:
        for e, value in enumerate(curve(genome), start=1):
            seen.append(value)
            if on_epoch is not None:
                on_epoch(e, EPOCHS, value)
    except Pruned as exc:
        return {"genome": str(genome), "fitness": 0.0, "failure": str(exc), "failure_kind": PRUNED,
                "epochs": len(seen), "history": seen, "val_accuracy": max(seen)}
    return {"genome": str(genome), "fitness": max(seen), "epochs": EPOCHS, "history": seen, "best_epoch": EPOCHS,
            "val_accuracy": max(seen)}


def test_the_epoch_check_stops_below_the_threshold_and_never_at_the_last_epoch():
    task = Task(0, "16", 1, stop_below=(-math.inf, 0.5, 0.9))
    stopped = score_safely(lambda g, s, on_epoch: (on_epoch(1, 3, 0.1), on_epoch(2, 3, 0.4), {"fitness": 1})[-1], task)
    assert stopped["failure_kind"] == PRUNED and stopped["fitness"] == 0.0 and "epoch 2" in stopped["failure"]
    last = score_safely(lambda g, s, on_epoch: (on_epoch(3, 3, 0.1), {"fitness": 0.1})[-1], task)
    assert last.get("failure") is None and last["fitness"] == 0.1  # complete by then
    free = score_safely(lambda g, s, on_epoch: (on_epoch(1, 3, 0.0), {"fitness": 0.2})[-1], Task(0, "16", 1),
                        lambda *progress: None)
    assert free["fitness"] == 0.2


def pruned_run(tmp_path, **options):
    search = make_search(tmp_path / "r", curve_score, prune="median", lattice=3, steps=25, seed=4, **options)
    search.run()
    return search


def test_median_pruning_on_a_lattice_run(tmp_path):
    search = pruned_run(tmp_path)
    store = search.store
    evaluations = store.evaluations()
    pruned = [ev for ev in evaluations if ev.failure_kind == PRUNED]
    assert pruned, "nothing was pruned"
    assert all(ev.operator not in ("init", "mutant") for ev in pruned)  # those take cells as they are
    assert all(ev.fitness == 0.0 and 0 < ev.epochs < EPOCHS and len(ev.history) == ev.epochs for ev in pruned)
    # each stopped where it fell below the median of what had finished before its step, past the warm-up
    for ev in pruned:
        medians = store.epoch_medians(before_step=ev.step)
        e = ev.epochs
        assert e > math.ceil(0.25 * len(medians)) - 1 and medians[e - 1][1] >= 5
        assert ev.history[-1] < medians[e - 1][0]
        assert all(v >= medians[i][0] or medians[i][1] < 5 or i + 1 <= math.ceil(0.25 * len(medians)) - 1
                   for i, v in enumerate(ev.history[:-1]))
    # the first trainings of a run are never stopped, and a pruned training is never the best
    assert all(ev.failure_kind != PRUNED for ev in evaluations[:5])
    assert store.best_evaluation().failure_kind is None
    totals = store.totals()
    assert totals["epochs"] == sum(ev.epochs for ev in evaluations) < EPOCHS * len(evaluations)
    search.close()


def test_a_pruned_genome_asked_for_again_is_trained_in_full(tmp_path):
    search = pruned_run(tmp_path)
    store, evaluator = search.store, search.evaluator
    victim = next(ev for ev in store.evaluations() if ev.failure_kind == PRUNED)
    step = store.steps_done + 1
    # as a mutant (never pruned) in a later step: no cache hit on the pruned training
    fitness = evaluator(step, [EvalRequest(parse_genome(victim.genome), 5, "mutant")])
    assert fitness == [max(curve(victim.genome))]
    full = store.lookup(f"{store.settings_hash}:{victim.genome}")
    assert full.failure is None and full.epochs == EPOCHS and full.step == step
    kept = [ev for ev in store.evaluations() if ev.genome == victim.genome]
    # the pruned trainings (asked for again as candidates, pruned again) still count, with their epochs
    assert [ev.failure_kind for ev in kept] == [PRUNED] * (len(kept) - 1) + [None] and len(kept) >= 2
    search.close()


def crashed_and_resumed(tmp_path, config, crash_points) -> tuple[tuple, tuple, int]:
    """Run ``config`` with curve_score once whole (tmp_path/a) and once (tmp_path/b) dying in the
    score function after each of ``crash_points`` trainings of an attempt, resumed each time, then
    finished; returns both histories and how many attempts died."""

    def open_or_create(run_dir, score):
        if (run_dir / "run.sqlite").exists():
            return Search.open(run_dir, score=score)
        return Search.create(run_dir, config, score=score)

    class Crash(BaseException):
        pass

    crashes = 0
    for after in crash_points:
        calls = itertools.count(1)

        def dying(genome, seed, on_epoch=None):
            if next(calls) == after:
                raise Crash
            return curve_score(genome, seed, on_epoch)

        with open_or_create(tmp_path / "b", dying) as search:
            try:
                search.run()
            except Crash:
                crashes += 1
    for run_dir in (tmp_path / "a", tmp_path / "b"):
        with open_or_create(run_dir, curve_score) as search:
            search.run()

    def history(run_dir):
        with RunStore.open(run_dir) as store:
            evals = [dataclasses.replace(e, created_at="") for e in store.evaluations()]
            rows = [(r.step, r.record, r.lattice, r.trainings, r.cache_hits) for r in store.step_rows()]
            return evals, rows

    return history(tmp_path / "a"), history(tmp_path / "b"), crashes


def test_killed_and_resumed_with_pruning_equals_uninterrupted(tmp_path):
    config = SearchConfig.from_options(prune="median", lattice=3, steps=20, seed=4)
    whole, resumed, crashes = crashed_and_resumed(tmp_path, config, (3, 17, 5, 30, 9))
    assert crashes >= 3
    assert any(ev.failure_kind == PRUNED for ev in whole[0])
    assert whole == resumed


def test_no_pruning_is_todays_protocol_and_pruning_needs_one_training_per_genome():
    assert SearchConfig().fitness.prune == "none"
    with pytest.raises(ConfigError, match="cannot be combined"):
        SearchConfig.from_options(prune="median", reevaluate=2)


@pytest.mark.usefixtures("one_torch_thread")
def test_the_real_trainer_stops_where_it_is_told_and_keeps_its_curve(digits):
    from alife_nas.settings import make_settings
    from alife_nas.training import Trainer

    trainer = Trainer(digits, make_settings("fast", max_epochs=4))
    scorer = lambda genome, seed, on_epoch=None: trainer.train(genome, seed, on_epoch=on_epoch).to_dict()  # noqa: E731
    result = score_safely(scorer, Task(0, "8-M", 3, stop_below=(-math.inf, 1.01, 1.01, 1.01)))
    assert result["failure_kind"] == PRUNED and result["fitness"] == 0.0
    assert result["epochs"] == 2 and len(result["history"]) == 2 and result["val_accuracy"] == max(result["history"])
    full = score_safely(scorer, Task(0, "8-M", 3))
    assert full["failure"] is None and full["epochs"] == 4 and full["history"][:2] == result["history"]
