"""Local worker processes: the same results as serial, worker deaths retried then recorded."""
import dataclasses

import pytest

from alife_nas.config import SearchConfig
from alife_nas.executors import Task, TrainingJob
from alife_nas.executors.local import LocalExecutor
from alife_nas.genome import parse_genome
from alife_nas.search import Search
from alife_nas.store import RunStore, RunStoreError
from tests.conftest import dying_score, fake_score, make_search, run_search


def history(run_dir):
    """Every evaluation by (step, index) — the order they finished in may differ — and the lattice."""
    with RunStore.open(run_dir) as store:
        evals = sorted((dataclasses.replace(e, order=0, created_at="", train_time=None, images_per_sec=None)
                        for e in store.evaluations()), key=lambda e: (e.step, e.index))
        return evals, [(r.step, r.record, r.lattice, r.trainings, r.cache_hits) for r in store.step_rows()]


@pytest.mark.slow
def test_two_workers_reproduce_the_serial_run_with_the_real_trainer(tmp_path):
    options = dict(lattice=3, steps=4, filters=[16, 32, 64], max_epochs=1, device="cpu", seed=1, threads=1)
    for name, workers in (("serial", 1), ("workers", 2)):
        config = SearchConfig.from_options(workers=workers, **options)
        with Search.create(tmp_path / name, config) as search:
            search.run()
    serial, parallel = history(tmp_path / "serial"), history(tmp_path / "workers")
    assert serial == parallel and len(serial[0]) > 9
    assert all(e.epochs == 1 and e.fitness > 0 for e in serial[0])


def test_a_killed_worker_is_retried_once_then_recorded(tmp_path):
    job = TrainingJob(SearchConfig().data, SearchConfig().training, score=dying_score)
    tasks = [Task(0, "16", 1), Task(1, "16-M-32", 2), Task(2, "32-M", 3)]
    executor = LocalExecutor(job, workers=2)
    try:
        results = dict((task.index, result) for task, result in executor.run(tasks))
        again = dict((task.index, result) for task, result in executor.run([Task(0, "64", 4)]))
    finally:
        executor.close()
    assert results[1]["fitness"] == 0.0 and results[1]["failure_kind"] == "worker"
    assert "died twice" in results[1]["failure"] and "SIGKILL" in results[1]["failure"]
    assert results[0]["fitness"] == fake_score(parse_genome("16"), 1)["fitness"] and results[2]["fitness"] > 0
    assert again[0]["fitness"] == fake_score(parse_genome("64"), 4)["fitness"]  # the pool still works: dead workers replaced


def test_a_worker_that_dies_once_costs_one_retry(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIFE_TEST_DIE_ONCE", str(tmp_path))
    job = TrainingJob(SearchConfig().data, SearchConfig().training, score=dying_score)
    executor = LocalExecutor(job, workers=2)
    try:
        (task, result), = list(executor.run([Task(0, "16-M-32", 7)]))
    finally:
        executor.close()
    assert (tmp_path / "16-M-32").exists() and result["fitness"] == fake_score(parse_genome("16-M-32"), 7)["fitness"]


@pytest.mark.slow
def test_a_search_goes_on_when_workers_die(tmp_path):
    with make_search(tmp_path / "r", dying_score, lattice=3, steps=3, workers=2) as search:
        search.run()
        failures = [e for e in search.store.evaluations() if e.failure_kind == "worker"]
        assert search.steps_done == 3 and failures and all(len(e.genome.split("-")) >= 3 for e in failures)


def test_one_writer_per_run(tmp_path, score):
    run_search(tmp_path / "r", score, lattice=3, steps=1)
    with Search.open(tmp_path / "r", score=score, steps=2):
        with pytest.raises(RunStoreError, match="is being written by process"):
            Search.open(tmp_path / "r", score=score, steps=3)
        with RunStore.open(tmp_path / "r") as reader:  # readers are never refused
            assert reader.steps_done == 1
    with Search.open(tmp_path / "r", score=score, steps=2) as search:  # released on close
        search.run()


@pytest.mark.slow  # worker processes finishing in every order: ~5 s
def test_a_k_master_search_is_a_function_of_the_seed_whichever_worker_finishes_first(tmp_path):
    options = dict(lattice=6, masters=3, steps=4, seed=8)
    run_search(tmp_path / "serial", fake_score, **options)
    run_search(tmp_path / "workers", fake_score, workers=2, **options)
    serial = history(tmp_path / "serial")
    assert serial == history(tmp_path / "workers")
    assert any(r[1].get("outcome") == "round" and r[1]["masters"] >= 2 for r in serial[1])


def test_a_cuda_error_that_poisons_the_worker_replaces_it():
    from tests.conftest import poisoning_score

    job = TrainingJob(SearchConfig().data, SearchConfig().training, score=poisoning_score)
    executor = LocalExecutor(job, workers=2)
    try:
        results = dict((task.index, result) for task, result in executor.run([Task(0, "16-M-32", 1), Task(1, "16", 2)]))
        later = list(executor.run([Task(0, "32", 3), Task(1, "64", 4)]))  # fresh workers: no poisoned context
    finally:
        executor.close()
    assert results[0]["failure_kind"] == "worker" and "illegal memory access" in results[0]["failure"]
    assert results[1]["fitness"] > 0 and all(r["fitness"] > 0 for _, r in later)
