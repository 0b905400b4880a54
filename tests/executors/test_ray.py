"""The Ray backend on a local Ray instance: the same results as serial; dead actors retried, then recorded."""
import os
from pathlib import Path

import pytest
import ray

from alife_nas.config import SearchConfig
from alife_nas.search import Search
from tests.conftest import dying_score, make_search
from tests.executors.test_hangs import alive, descendants
from tests.executors.test_local import history


@pytest.mark.slow  # a Ray instance and two real searches: ~20 s
def test_ray_reproduces_the_serial_run_with_the_real_trainer(tmp_path):
    options = dict(lattice=3, steps=3, filters=[16, 32, 64], max_epochs=1, device="cpu", seed=4, threads=1)
    with Search.create(tmp_path / "serial", SearchConfig.from_options(**options)) as search:
        search.run()
    proc = os.path.isdir("/proc/self")
    before = set(descendants(os.getpid())) if proc else set()
    with Search.create(tmp_path / "ray", SearchConfig.from_options(ray="local", workers=2, **options)) as search:
        assert search.executor.slots == 2
        search.run()
        instance = set(descendants(os.getpid())) - before if proc else set()  # Ray's processes, its watchdog
    assert not ray.is_initialized()  # the search started Ray, and stopped it when it closed
    left = {pid: Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in instance if alive(pid)}
    assert (len(instance) > 4 or not proc) and not left  # all of it, at once
    serial, on_ray = history(tmp_path / "serial"), history(tmp_path / "ray")
    assert serial == on_ray and len(serial[0]) > 9


@pytest.mark.slow  # a Ray instance whose actors are killed: ~8 s
def test_a_dead_actor_is_replaced_and_its_task_retried_then_recorded(tmp_path):
    with make_search(tmp_path / "r", dying_score, lattice=3, steps=2, ray="local", workers=2) as search:
        search.run()
        evaluations = search.store.evaluations()
    failed = [e for e in evaluations if e.failure_kind == "worker"]
    assert failed and all("died twice" in e.failure and len(e.genome.split("-")) >= 3 for e in failed)
    assert any(e.fitness > 0 for e in evaluations)
