import dataclasses
import itertools

import pytest

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.search import Search
from alife_nas.store import SCHEMA_VERSION, RunStore
from tests.conftest import make_search, run_search


def history(run_dir):
    with RunStore.open(run_dir) as store:
        evals = [dataclasses.replace(e, created_at="") for e in store.evaluations()]
        rows = [(r.step, r.record, r.lattice, r.trainings, r.cache_hits) for r in store.step_rows()]
        return evals, rows


class Crash(BaseException):
    """Not an Exception: passes through the evaluator's isolation like a real kill would."""


def open_or_create(run_dir, config, score):
    if (run_dir / "run.sqlite").exists():
        return Search.open(run_dir, score=score)
    return Search.create(run_dir, config, score=score)


def run_to_end(run_dir, config, score, kills=()):
    """Run to the end; first die in the `after`-th training of each attempt in `kills`."""
    crashes = 0
    for after in kills:
        calls = itertools.count(1)

        def dying(genome, seed):
            if next(calls) == after:
                raise Crash
            return score(genome, seed)

        with open_or_create(run_dir, config, dying) as search:
            try:
                search.run()
            except Crash:
                crashes += 1
    with open_or_create(run_dir, config, score) as search:
        search.run()
    return crashes


@pytest.mark.parametrize("strategy", ["neuralfinder", "random", "regularized"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, score, strategy):
    steps = 12 if strategy == "neuralfinder" else 50  # enough trainings for every kill to land
    options = {"neuralfinder": {"lattice": 4}, "regularized": {"population": 6, "tournament": 3}, "random": {}}
    config = SearchConfig.from_options(strategy=strategy, steps=steps, seed=5, **options[strategy])
    run_to_end(tmp_path / "a", config, score)
    assert run_to_end(tmp_path / "b", config, score, kills=[3, 17, 5, 1, 9, 2]) == 6
    assert history(tmp_path / "a") == history(tmp_path / "b")


def test_same_seed_same_run_other_seed_differs(tmp_path, score):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        run_to_end(tmp_path / name, SearchConfig.from_options(lattice=3, steps=6, seed=seed), score)
    assert history(tmp_path / "a") == history(tmp_path / "b") != history(tmp_path / "c")


@pytest.mark.parametrize("strategy", ["neuralfinder", "random", "regularized"])
def test_budget_counts_trainings_not_cache_hits(tmp_path, strategy):
    # A tiny space (two filter counts, short genomes) makes cache hits frequent.
    def score(genome, seed):
        return {"genome": str(genome), "fitness": 0.2 + 0.01 * len(genome)}

    own = {"neuralfinder": {"lattice": 3}, "regularized": {"population": 5, "tournament": 2},
           "random": {"random_max_layers": 3}}
    search = make_search(tmp_path / "r", score, strategy=strategy, budget=25, filters=[16, 32], **own[strategy])
    assert search.config.stop.steps is None  # budget alone: no step limit
    search.run()
    totals = search.store.totals()
    assert totals["trainings"] >= 25 or search.store.events()  # exhausted spaces stop with an event
    assert totals["trainings"] <= 25 + 7  # one step may overshoot by at most its own trainings
    rows = search.store.step_rows()
    # the search stopped at the first step that reached the budget
    assert sum(r.trainings for r in rows[:-1]) < 25
    assert sum(r.trainings for r in rows) == totals["trainings"]
    if strategy != "neuralfinder":
        assert totals["cache_hits"] > 0


def test_more_steps_on_resume_continue_the_run(tmp_path, score):
    run_to_end(tmp_path / "a", SearchConfig.from_options(lattice=3, steps=8), score)
    run_to_end(tmp_path / "b", SearchConfig.from_options(lattice=3, steps=4), score)
    with Search.open(tmp_path / "b", score=score, steps=8) as search:
        assert search.changes == ["steps: 4 -> 8"]
        search.run()
    assert history(tmp_path / "a") == history(tmp_path / "b")
    with RunStore.open(tmp_path / "b") as store:
        assert any(e["message"] == "steps: 4 -> 8" for e in store.events())


def test_open_refuses_options_that_change_results(tmp_path, score):
    run_search(tmp_path / "r", score, lattice=3, steps=1)
    with pytest.raises(ConfigError, match="lattice: 3 -> 4; seed: 0 -> 9; max_epochs: 12 -> 3"):
        Search.open(tmp_path / "r", score=score, lattice=4, seed=9, max_epochs=3)
    with Search.open(tmp_path / "r", score=score, lattice=3, seed=0, filters=[512, 16, 32, 64, 96, 128, 192, 224, 256]):
        pass  # the same values (filters in another order are the same set) are fine


def test_unknown_strategy_writes_nothing(tmp_path, score):
    with pytest.raises(ConfigError, match="strategy must be one of"):
        make_search(tmp_path / "x", score, strategy="nope")
    assert not (tmp_path / "x").exists()


def test_summary_and_progress_callbacks(tmp_path, score):
    steps, results = [], []
    with make_search(tmp_path / "r", score, lattice=3, steps=2) as search:
        final = search.run(on_step=steps.append, on_result=lambda req, ev, cached: results.append((req, ev, cached)))
    assert [s.step for s in steps] == [0, 1, 2] and steps[0].record["outcome"] == "init"
    assert final.finished and final.step == 2 and final.trainings == sum(not c for _, _, c in results)
    assert final.best_fitness == max(ev.fitness for _, ev, _ in results) and final.best_genome
    assert final.worst <= final.mean <= final.best_fitness


def make_v3(run_dir, states=None):
    """Rewrite a run's database the way alife_nas 0.3 wrote it (schema 3): no ``resume_state`` table,
    every ``steps`` row holds the strategy's and the generator's state after it. ``states`` maps a
    step to its (strategy state, generator state); without it, every row gets the newest."""
    import json
    import sqlite3

    conn = sqlite3.connect(run_dir / "run.sqlite")
    with conn:
        newest = conn.execute("SELECT strategy_state, rng_state FROM resume_state").fetchone()
        conn.execute("ALTER TABLE steps ADD COLUMN strategy_state TEXT")
        conn.execute("ALTER TABLE steps ADD COLUMN rng_state TEXT")
        for (step,) in conn.execute("SELECT step FROM steps").fetchall():
            row = newest if states is None else tuple(json.dumps(s) for s in states[step])
            conn.execute("UPDATE steps SET strategy_state = ?, rng_state = ? WHERE step = ?", (*row, step))
        conn.execute("DROP TABLE resume_state")
        conn.execute("UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    conn.close()


def make_v1(run_dir):
    """Rewrite a run's database the way alife_nas 0.1 wrote it (schema 1: flat config, lattice in states)."""
    import json
    import sqlite3

    make_v3(run_dir)
    with RunStore.open(run_dir) as store:
        config = store.config
    flat = {k: v for k, v in config.options().items() if k in (
        "strategy", "seed", "device", "steps", "budget", "dataset", "data_dir", "val_size", "lattice", "radius", "torus",
        "ratio", "master_selection", "filters")}
    flat.update(population=20, tournament=5, random_max_layers=12, settings=config.training.to_dict(),
                input_shape=[1, 8, 8], num_classes=10)
    conn = sqlite3.connect(run_dir / "run.sqlite")
    with conn:
        conn.execute("UPDATE config SET body = ?", (json.dumps(flat),))
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        conn.execute("DELETE FROM meta WHERE key = 'dataset_info'")
        conn.execute("ALTER TABLE evaluations DROP COLUMN history")  # added by schema 3
        conn.execute("DROP TABLE samples")
        for step, lattice in conn.execute("SELECT step, snapshot FROM steps").fetchall():
            conn.execute("UPDATE steps SET strategy_state = ? WHERE step = ?",
                         (json.dumps({"lattice": json.loads(lattice)}), step))
    conn.close()


def test_a_run_of_version_0_1_is_read_and_resumed_exactly(tmp_path, score):
    run_to_end(tmp_path / "whole", SearchConfig.from_options(lattice=3, steps=6, seed=2), score)
    run_to_end(tmp_path / "old", SearchConfig.from_options(lattice=3, steps=3, seed=2), score)
    make_v1(tmp_path / "old")
    with RunStore.open(tmp_path / "old") as store:  # readers work on the old schema as it is
        assert store.schema_version == 1 and store.config.method.lattice == 3 and store.config.seed == 2
        assert store.dataset_info == {"input_shape": [1, 8, 8], "num_classes": 10, "classes": None}
    with Search.open(tmp_path / "old", score=score, steps=6) as search:
        assert search.store.schema_version == SCHEMA_VERSION
        search.run()
    assert history(tmp_path / "old") == history(tmp_path / "whole")
    with RunStore.open(tmp_path / "old") as store:
        assert store.last_step().strategy_state == {}  # the lattice is no longer repeated there
        assert [e["kind"] for e in store.events()][:1] == ["upgrade"]


def test_a_run_of_version_0_2_is_read_and_resumed_exactly(tmp_path, score):
    run_to_end(tmp_path / "whole", SearchConfig.from_options(lattice=3, steps=4, seed=3), score)
    run_to_end(tmp_path / "old", SearchConfig.from_options(lattice=3, steps=2, seed=3), score)
    import sqlite3

    make_v3(tmp_path / "old")
    conn = sqlite3.connect(tmp_path / "old" / "run.sqlite")  # schema 2: no curves, no samples table
    with conn:
        conn.execute("ALTER TABLE evaluations DROP COLUMN history")
        conn.execute("DROP TABLE samples")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    with RunStore.open(tmp_path / "old", readonly=True) as store:
        assert store.schema_version == 2 and all(e.history == () for e in store.evaluations())
    with Search.open(tmp_path / "old", score=score, steps=4) as search:
        assert search.store.schema_version == SCHEMA_VERSION
        search.run()
    assert history(tmp_path / "old") == history(tmp_path / "whole")


def test_a_resume_on_another_kind_of_device_says_so_in_one_line(tmp_path):
    import sqlite3

    from alife_nas.search import device_change
    from alife_nas.store import DB_NAME
    from tests.conftest import fake_score, run_search

    assert device_change(["cpu"], "cpu") is None and device_change([], "cuda:0") is None
    assert device_change(["cuda:0", "cuda:1"], "cuda:0") is None  # the same kind: bf16 on both
    run_search(tmp_path / "r", lattice=2, steps=1, device="cpu")
    with Search.open(tmp_path / "r", score=fake_score, steps=2) as search:
        assert search.device_note is None
    conn = sqlite3.connect(tmp_path / "r" / DB_NAME)
    with conn:  # as if the run had trained on a GPU so far
        conn.execute("UPDATE evaluations SET device = 'cuda:0'")
    conn.close()
    with Search.open(tmp_path / "r", score=fake_score, steps=3) as search:
        note = search.device_note
        assert note.startswith("note: this run trained on cuda:0 so far and goes on on cpu") and "\n" not in note
        assert note in [e["message"] for e in search.store.events()]


def test_status_shows_the_training_compute_of_a_run(tmp_path, digits):
    from alife_nas.search import read_status
    from tests.conftest import make_search

    with make_search(tmp_path / "r", data=digits, lattice=2, steps=2, reevaluate=2) as search:
        search.run()
        info = read_status(search.store)
        evaluations = search.store.evaluations()
        repeats = [key.partition(":")[2] for key, values in search.store.sample_fitness().items()
                   for _ in values[1:]]  # genomes of the further samples, one entry each
    # fake_score: 9000 forward FLOPs per layer and image, 3 epochs, every training (samples too)
    flops = {ev.genome: ev.flops for ev in evaluations}
    flop_epochs = sum(flops[ev.genome] * ev.epochs for ev in evaluations) + sum(3 * flops[g] for g in repeats)
    assert repeats and info["train_flops"] == 3 * flop_epochs * digits.sizes()["train"]
    assert info["epochs"] == 3 * info["trainings"]
    with make_search(tmp_path / "bare", lattice=2, steps=0) as search:  # no data set: no split sizes
        search.run()
        assert read_status(search.store)["train_flops"] is None
