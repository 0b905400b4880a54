import itertools

import pytest

from alife_nas.run import Run, RunConfig, config_differences
from alife_nas.store import RunStore


def history(run_dir):
    with RunStore.open(run_dir) as store:
        evals = [{k: v for k, v in e.items() if k != "created_at"} for e in store.evaluations()]
        rows = [(r["step"], r["record"], r["lattice"], r["trainings"], r["cache_hits"]) for r in store.step_rows()]
        return evals, rows


class Crash(BaseException):
    """Not an Exception: passes through the evaluator's isolation like a real kill would."""


def open_or_create(run_dir, config, score):
    if (run_dir / "run.sqlite").exists():
        return Run.open(RunStore.open(run_dir), score)
    return Run.create(str(run_dir), config, score)


def run_to_end(run_dir, config, score, kills=()):
    """Run to the end; first die in the `after`-th training of each attempt in `kills`."""
    crashes = 0
    for after in kills:
        calls = itertools.count(1)

        def dying(genome, seed):
            if next(calls) == after:
                raise Crash
            return score(genome, seed)

        run = open_or_create(run_dir, config, dying)
        try:
            run.advance()
        except Crash:
            crashes += 1
        run.store.close()
    run = open_or_create(run_dir, config, score)
    run.advance()
    run.store.close()
    return crashes


@pytest.mark.parametrize("strategy", ["neuralfinder", "random", "regularized"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, score, strategy):
    steps = 12 if strategy == "neuralfinder" else 50  # enough trainings for every kill to land
    config = RunConfig(strategy=strategy, lattice=4, steps=steps, population=6, tournament=3, seed=5)
    run_to_end(tmp_path / "a", config, score)
    assert run_to_end(tmp_path / "b", config, score, kills=[3, 17, 5, 1, 9, 2]) == 6
    assert history(tmp_path / "a") == history(tmp_path / "b")


def test_same_seed_same_run_other_seed_differs(tmp_path, score):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        run_to_end(tmp_path / name, RunConfig(lattice=3, steps=6, seed=seed), score)
    assert history(tmp_path / "a") == history(tmp_path / "b") != history(tmp_path / "c")


@pytest.mark.parametrize("strategy", ["neuralfinder", "random", "regularized"])
def test_budget_counts_trainings_not_cache_hits(tmp_path, strategy):
    # A tiny space (two filter counts, short genomes) makes cache hits frequent.
    def score(genome, seed):
        return {"genome": str(genome), "fitness": 0.2 + 0.01 * len(genome)}

    config = RunConfig(strategy=strategy, lattice=3, steps=None, budget=25, filters=[16, 32], population=5,
                       tournament=2, random_max_layers=3)
    run = Run.create(str(tmp_path / "r"), config, score)
    run.advance()
    totals = run.store.totals()
    assert totals["trainings"] >= 25 or run.store.events()  # exhausted spaces stop with an event
    assert totals["trainings"] <= 25 + 7  # one step may overshoot by at most its own trainings
    rows = run.store.step_rows()
    # the run stopped at the first step that reached the budget
    assert sum(r["trainings"] for r in rows[:-1]) < 25
    assert sum(r["trainings"] for r in rows) == totals["trainings"]
    if strategy != "neuralfinder":
        assert totals["cache_hits"] > 0


def test_more_steps_on_resume_continue_the_run(tmp_path, score):
    run_to_end(tmp_path / "a", RunConfig(lattice=3, steps=8), score)
    run_to_end(tmp_path / "b", RunConfig(lattice=3, steps=4), score)
    with RunStore.open(tmp_path / "b") as store:
        config = store.config
        config["steps"] = 8
        store.update_config(config)
    run_to_end(tmp_path / "b", RunConfig(lattice=3, steps=8), score)
    assert history(tmp_path / "a") == history(tmp_path / "b")


def test_config_differences():
    stored = {"lattice": 9, "filters": [16, 32], "seed": 0}
    assert config_differences(stored, {"lattice": 9, "filters": (16, 32), "seed": None}) == []
    assert config_differences(stored, {"lattice": 7, "seed": 3}) == ["lattice: 9 -> 7", "seed: 0 -> 3"]


def test_unknown_strategy_writes_nothing(tmp_path, score):
    with pytest.raises(ValueError, match="unknown strategy"):
        Run.create(str(tmp_path / "x"), RunConfig(strategy="nope"), score)
    assert not (tmp_path / "x").exists()
