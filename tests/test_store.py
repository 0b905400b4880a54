import sqlite3

import pytest

from alife_nas.config import SearchConfig
from alife_nas.store import DB_NAME, SCHEMA_VERSION, Evaluation, RunStore, RunStoreError
from tests.conftest import run_search, tree_state


@pytest.fixture
def run_dir(tmp_path, score):
    return run_search(tmp_path / "run", score, lattice=3, steps=3)


def test_round_trip_of_a_run(run_dir):
    with RunStore.open(run_dir) as store:
        assert store.config.method.lattice == 3 and store.config == SearchConfig.from_options(lattice=3, steps=3,
                                                                                             device="cpu")
        assert store.steps_done == 3 and store.initialized
        rows = store.step_rows()
        assert [r.step for r in rows] == [0, 1, 2, 3]
        assert rows[0].lattice["size"] == 3 and rows[0].record["outcome"] == "init"
        evals = store.evaluations()
        assert all(isinstance(e, Evaluation) for e in evals)
        assert [e.order for e in evals] == list(range(1, len(evals) + 1))
        assert sum(r.trainings for r in rows) == len(evals) == store.totals()["trainings"]
        first = evals[0]
        assert first.step == 0 and first.operator == "init" and first.position == (0, 0)
        assert store.lookup(f"{store.settings_hash}:{first.genome}") == first
        last = store.last_step()
        assert last.strategy_state == {} and last.lattice == rows[-1].lattice  # the lattice is stored once
        mode = store._conn.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"


def test_the_states_are_one_row_for_the_newest_step(run_dir):
    with RunStore.open(run_dir) as store:
        assert store._conn.execute("SELECT id, step FROM resume_state").fetchall() == [(1, 3)]
        store._conn.execute("UPDATE resume_state SET step = 2")  # a step and states apart: never written so
        with pytest.raises(RunStoreError, match="no saved state for its last step 3; the run is damaged"):
            store.last_step()


def test_create_refuses_existing_run(run_dir):
    before = tree_state(run_dir)
    with pytest.raises(RunStoreError, match="already holds a run"):
        RunStore.create(run_dir, SearchConfig(), "x")
    assert tree_state(run_dir) == before


def refused(path, match):
    before = tree_state(path)
    with pytest.raises(RunStoreError, match=match) as info:
        RunStore.open(path)
    assert "\n" not in str(info.value)
    assert tree_state(path) == before


def test_not_a_run_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    refused(tmp_path, "not an alife_nas run directory")
    with pytest.raises(RunStoreError, match="not a directory"):
        RunStore.open(tmp_path / "missing")


def test_foreign_sqlite_file(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE people (name TEXT)")
    conn.commit()
    conn.close()
    refused(tmp_path, "not an alife_nas run")


def test_foreign_meta_table(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('tool', 'other')")
    conn.commit()
    conn.close()
    refused(tmp_path, "not an alife_nas run")


def test_garbage_file(tmp_path):
    (tmp_path / DB_NAME).write_bytes(b"this is not a database at all" * 100)
    refused(tmp_path, "not a readable alife_nas run database")


def test_truncated_database(run_dir):
    with RunStore.open(run_dir) as store:  # fold the WAL into the main file first
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = run_dir / DB_NAME
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    for side in run_dir.glob(DB_NAME + "-*"):
        side.unlink()
    refused(run_dir, "corrupted|not a readable")


def test_corrupted_pages(run_dir):
    with RunStore.open(run_dir) as store:
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db = run_dir / DB_NAME
    data = bytearray(db.read_bytes())
    for i in range(4096, len(data), 97):  # scribble over every page but the header page
        data[i] = (data[i] + 91) % 256
    db.write_bytes(bytes(data))
    refused(run_dir, "corrupted|not a readable|damaged")


def test_newer_schema(run_dir):
    with RunStore.open(run_dir) as store:
        store._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    refused(run_dir, "newer than this alife_nas")


def test_events_and_config_update(run_dir):
    with RunStore.open(run_dir) as store:
        store.update_config(store.config.with_options(steps=10))
        store.log_event("resume", "steps: 3 -> 10")
    with RunStore.open(run_dir) as store:
        assert store.config.stop.steps == 10
        assert store.events()[-1]["message"] == "steps: 3 -> 10"


# --- failures by kind (status) and the failed trainings (export --failures) ----------------------
def _failures_run(path):
    """A run with failures of three kinds in first trainings and further samples, and a success."""
    store = RunStore.create(path, SearchConfig(), "h")

    def add(genome, step, index, failure=None, kind=None):
        store.add_evaluation(f"h:{genome}", Evaluation(order=0, genome=genome, fitness=0.0 if failure else 0.5,
                                                       step=step, index=index, failure=failure, failure_kind=kind))

    def sample(genome, number, step, failure, kind):
        store.add_sample(f"h:{genome}", number, Evaluation(order=0, genome=genome, fitness=0.0, step=step, index=0,
                                                           failure=failure, failure_kind=kind))

    add("16", 0, 0)
    add("32", 0, 1, "network has 1,054,538 parameters", "too_large")
    add("64", 1, 0, "out of memory: late", "oom")
    add("32-32", 1, 1, "network has 2 parameters", "too_large")
    add("16-M", 2, 0, "custom reason")  # a custom fitness function's failure: no kind
    sample("16", 1, 0, "out of memory: early", "oom")  # before the oom of step 1: the example
    sample("64", 1, 2, "out of memory: again", "oom")
    store.close()
    return path


def test_failures_by_kind_count_like_the_totals_with_the_first_failure_as_example(tmp_path):
    run = _failures_run(tmp_path / "run")
    with RunStore.open(run, readonly=True) as store:  # a reader's query
        by_kind = store.failures_by_kind()
        assert sum(e["count"] for e in by_kind.values()) == store.totals()["failures"] == 6
        assert list(by_kind.items()) == [  # most frequent first
            ("oom", {"count": 3, "example": "out of memory: early", "genome": "16"}),
            ("too_large", {"count": 2, "example": "network has 1,054,538 parameters", "genome": "32"}),
            ("unknown", {"count": 1, "example": "custom reason", "genome": "16-M"})]
        failed = store.failed_trainings()
        assert [(n, ev.step, ev.genome, ev.failure_kind) for n, ev in failed] == [
            (0, 0, "32", "too_large"), (1, 0, "16", "oom"), (0, 1, "64", "oom"), (0, 1, "32-32", "too_large"),
            (0, 2, "16-M", None), (1, 2, "64", "oom")]
        assert failed[0][1].order == 2 and failed[1][1].order == 0  # first trainings keep their training order


def test_failures_by_kind_on_a_run_without_failures_and_without_a_samples_table(tmp_path, score):
    run = run_search(tmp_path / "ok", score, lattice=2, steps=1)
    with RunStore.open(run, readonly=True) as store:
        assert store.failures_by_kind() == {} and store.failed_trainings() == []
    run = _failures_run(tmp_path / "old")
    conn = sqlite3.connect(run / DB_NAME)  # as a run of schema 2 (alife_nas 0.2): no samples table yet
    with conn:
        conn.execute("DROP TABLE samples")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    conn.close()
    with RunStore.open(run, readonly=True) as store:
        assert {k: e["count"] for k, e in store.failures_by_kind().items()} == {"too_large": 2, "oom": 1, "unknown": 1}
        assert store.failures_by_kind()["oom"]["example"] == "out of memory: late"
        assert len(store.failed_trainings()) == 4 == store.totals()["failures"]
