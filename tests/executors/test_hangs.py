"""Workers that cannot hang: a stopped worker is killed and replaced (its task retried once, then
recorded as failed); workers, and a Ray instance alife-nas started, end when their coordinator is
SIGKILLed. Real processes and real signals; the fitness is the cheap deterministic one, reporting
epochs like the trainer. Every wait polls, with generous limits (a loaded 2-core machine)."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from alife_nas.config import SearchConfig
from alife_nas.executors import Task, TrainingJob
from alife_nas.executors._base import EPOCH_FLOOR, FIRST_EPOCH_FLOOR, SLACK, STARTUP_LIMIT, HangWatch
from alife_nas.executors.local import LocalExecutor
from alife_nas.genome import parse_genome
from tests.conftest import fake_score, make_search, run_search
from tests.executors.test_local import history

REPO = Path(__file__).resolve().parents[2]


# --- fitness functions the workers import by name ---------------------------------------------
def _epochs(on_epoch, count=3, pause=0.02):
    for epoch in range(1, count + 1):
        time.sleep(pause)
        if on_epoch is not None:
            on_epoch(epoch, count, 0.5)


def stalling_score(genome, seed, on_epoch=None):
    """fake_score after three short epochs. With ALIFE_TEST_STALL set to a folder, the first
    training there writes its process id to STALL/pid, then goes on reporting an epoch every 0.1 s
    for up to 60 s (a live worker is never taken for a hung one) — the test stops it meanwhile."""
    folder = os.environ.get("ALIFE_TEST_STALL")
    if folder:
        try:
            os.close(os.open(os.path.join(folder, "claimed"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            pass
        else:
            Path(folder, "pid.tmp").write_text(str(os.getpid()))
            os.replace(os.path.join(folder, "pid.tmp"), os.path.join(folder, "pid"))
            deadline, epoch = time.monotonic() + 60, 0
            while time.monotonic() < deadline:
                epoch += 1
                on_epoch(epoch, 10_000, 0.5)
                time.sleep(0.1)
    _epochs(on_epoch)
    return fake_score(genome, seed)


def hanging_score(genome, seed, on_epoch=None):
    """fake_score, except that a genome of three or more layers stops its own process (SIGSTOP)
    after one epoch: every training of it hangs."""
    _epochs(on_epoch, 1)
    if len(genome) >= 3:
        os.kill(os.getpid(), signal.SIGSTOP)
    return fake_score(genome, seed)


def pid_score(genome, seed, on_epoch=None):
    """Notes its process id in $ALIFE_TEST_PIDS, then computes for two minutes without reporting
    an epoch: only a worker that watches its coordinator can stop early."""
    Path(os.environ["ALIFE_TEST_PIDS"], str(os.getpid())).touch()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return fake_score(genome, seed)


# --- processes, by id --------------------------------------------------------------------------
def alive(pid):
    """True while the process exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def descendants(pid):
    """Every process below ``pid`` in the process tree, now."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as file:
                    ppid = int(file.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {seconds} s for {what}")
        time.sleep(0.1)
    return time.monotonic() - (deadline - seconds)


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="walks the process tree in /proc")


# --- the rule ----------------------------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_the_hang_rule_scales_with_the_waits_seen_and_obeys_an_explicit_timeout():
    clock = FakeClock()
    watch = HangWatch(None, clock)
    watch.launched(0)
    watch.begin(0)  # handed a task while still starting up: the start-up limit
    assert watch.limit(0) == STARTUP_LIMIT
    clock.now += STARTUP_LIMIT + 1
    assert "did not start" in watch.overdue(0)
    watch.ready(0)  # the first wait starts now: the floor, no first epoch seen yet
    assert watch.limit(0) == FIRST_EPOCH_FLOOR and watch.overdue(0) is None
    clock.now += 200.0
    watch.progress(0)  # a first epoch after 200 s: later epochs get 10 x 200 s
    assert watch.limit(0) == SLACK * 200.0
    clock.now += 5.0
    watch.progress(0)
    watch.end(0)
    watch.begin(0)  # the next task's first epoch: 10 x the slowest first epoch of the run
    assert watch.limit(0) == max(FIRST_EPOCH_FLOOR, SLACK * 200.0)
    clock.now += 1.0
    watch.progress(0)
    assert watch.limit(0) == EPOCH_FLOOR  # 10 x 1 s is under the floor
    clock.now += EPOCH_FLOOR + 1
    assert "automatic training timeout of 300 s" in watch.overdue(0)
    assert watch.next_check() == 0.05

    explicit = HangWatch(7.5, clock)
    explicit.launched(1)
    explicit.ready(1)
    assert explicit.limit(1) is None and explicit.next_check() is None  # no task, no clock
    explicit.begin(1)
    clock.now += 7.0
    assert explicit.overdue(1) is None and abs(explicit.next_check() - 0.55) < 1e-9
    clock.now += 1.0
    assert "training_timeout of 7.5 s" in explicit.overdue(1)


def test_the_option_is_checked_and_may_change_on_resume():
    assert SearchConfig.from_options(training_timeout=30).execution.training_timeout == 30
    assert SearchConfig().execution.training_timeout is None
    for bad in (-1, float("nan"), "10", True):
        with pytest.raises(ValueError, match="training_timeout must be"):
            SearchConfig.from_options(training_timeout=bad)
    from alife_nas.config import SAFE_TO_CHANGE

    assert "training_timeout" in SAFE_TO_CHANGE


# --- local worker processes --------------------------------------------------------------------
def stop_one_training_and_compare_with_serial(tmp_path, monkeypatch, **execution):
    """Run a search serially, then with ``execution`` while the test stops (SIGSTOP) one of its
    trainings in the middle; the second run must end, equal to the first."""
    options = dict(lattice=3, steps=2, seed=3)
    run_search(tmp_path / "serial", stalling_score, **options)
    monkeypatch.setenv("ALIFE_TEST_STALL", str(tmp_path))  # the workers inherit it
    stopped, missed = [], []

    def stop_the_worker():
        pid_file = tmp_path / "pid"
        wait_for(pid_file.exists, 240, "a worker to report its pid")
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        try:  # a hang that is never noticed fails the test instead of hanging it
            wait_for(lambda: not alive(pid), 120, "the stopped worker to be killed")
        except AssertionError:
            missed.append(pid)
            os.kill(pid, signal.SIGKILL)

    stopper = threading.Thread(target=stop_the_worker, daemon=True)
    stopper.start()
    try:
        with make_search(tmp_path / "workers", stalling_score, workers=2, training_timeout=5, **execution,
                         **options) as search:
            search.run()
    finally:
        stopper.join(timeout=130)
        for pid in stopped:  # never leave a stopped process behind, whatever happened
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert stopped, "the stalling training never started"
    assert not missed, "the stopped worker was not noticed in 120 s"
    assert not alive(stopped[0])  # killed, not left stopped
    serial, parallel = history(tmp_path / "serial"), history(tmp_path / "workers")
    assert serial == parallel and not any(e.failure for e in parallel[0])


@pytest.mark.slow
@needs_proc
def test_a_stopped_worker_is_killed_and_replaced_and_the_run_equals_the_serial_one(tmp_path, monkeypatch):
    stop_one_training_and_compare_with_serial(tmp_path, monkeypatch)


@pytest.mark.slow  # two trainings wait out their timeouts: ~5 s
def test_a_task_that_hangs_twice_is_recorded_failed_naming_the_timeout():
    job = TrainingJob(SearchConfig().data, SearchConfig().training, score=hanging_score)
    executor = LocalExecutor(job, workers=2, training_timeout=2)
    try:
        results = dict((task.index, result) for task, result in executor.run([Task(0, "16-M-32", 1), Task(1, "16", 2)]))
        later = list(executor.run([Task(0, "32", 3)]))  # the pool still works
    finally:
        executor.close()
    assert results[0]["fitness"] == 0.0 and results[0]["failure_kind"] == "worker"
    assert "died twice" in results[0]["failure"] and "training_timeout of 2 s" in results[0]["failure"]
    assert results[1]["fitness"] == fake_score(parse_genome("16"), 2)["fitness"]
    assert later[0][1]["fitness"] == fake_score(parse_genome("32"), 3)["fitness"]


COORDINATOR = """
import sys
from tests.conftest import make_search
from tests.executors.test_hangs import pid_score
options = dict(lattice=3, steps=2, workers=2)
if sys.argv[2] != "-":
    options["ray"] = sys.argv[2]
with make_search(sys.argv[1], pid_score, **options) as search:
    search.run()
"""


def kill_the_coordinator_mid_training(tmp_path, ray=None, wait=240):
    """Start a coordinator with two trainings in flight, SIGKILL it; returns (its descendants just
    before the kill, the training processes' ids, seconds until every one of them was gone)."""
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "ALIFE_TEST_PIDS": str(pids)}
    with open(tmp_path / "stderr", "wb") as stderr:
        coordinator = subprocess.Popen([sys.executable, "-c", COORDINATOR, str(tmp_path / "run"), ray or "-"],
                                       cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    everything = set()
    try:
        wait_for(lambda: len(list(pids.iterdir())) >= 2 or coordinator.poll() is not None, wait,
                 "two trainings to start")
        assert coordinator.poll() is None, (tmp_path / "stderr").read_text()[-2000:]
        tree = descendants(coordinator.pid)
        training = [int(p.name) for p in pids.iterdir()]
        everything = set(tree) | set(training)
        assert set(training) <= set(tree)
        coordinator.kill()
        coordinator.wait()
        took = wait_for(lambda: not any(alive(pid) for pid in everything), 60, "the processes to end")
        return tree, training, took
    finally:  # whatever happened, leave nothing behind
        for pid in everything | (set(descendants(coordinator.pid)) if coordinator.poll() is None else set()):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        coordinator.kill()
        coordinator.wait()


@pytest.mark.slow  # worker processes and a killed coordinator: ~4 s
@needs_proc
def test_workers_exit_at_once_when_the_coordinator_is_killed(tmp_path):
    tree, training, took = kill_the_coordinator_mid_training(tmp_path)
    assert len(training) == 2
    assert took < 10, f"the workers outlived their coordinator by {took:.1f} s"


# --- Ray ---------------------------------------------------------------------------------------
@needs_proc
@pytest.mark.slow
def test_a_stopped_ray_actor_is_killed_and_replaced_and_the_run_equals_the_serial_one(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    stop_one_training_and_compare_with_serial(tmp_path, monkeypatch, ray="local")


@pytest.mark.slow  # a Ray instance started and its coordinator killed: ~6 s
@needs_proc
def test_a_ray_instance_started_here_ends_when_the_coordinator_is_killed(tmp_path):
    pytest.importorskip("ray")
    tree, training, took = kill_the_coordinator_mid_training(tmp_path, ray="local")
    assert len(training) == 2 and len(tree) > 4  # gcs, raylet, agents, actors, the watchdog
    assert took < 15, f"Ray processes outlived their coordinator by {took:.1f} s"
