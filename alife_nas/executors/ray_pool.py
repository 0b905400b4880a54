"""Ray: trainings on a Ray cluster (or a Ray instance started on this machine).

Each worker is a Ray actor that builds its trainer once (loads the data set on its node, moves it
to its device) and trains one task at a time. An actor asks Ray for ``threads`` CPUs and
``gpus_per_trial`` GPUs, so ``gpus_per_trial=0.25`` packs four trainings on one GPU; Ray decides
where actors run and gives each its GPU share (``CUDA_VISIBLE_DEVICES``). An actor that dies is
replaced and its task retried once; a second death records the task as failed. An actor whose
training sends no progress for too long (:class:`~alife_nas.executors._base.HangWatch`; the
coordinator asks each busy actor every second what it is doing) is killed — SIGKILL when it runs
on this node, and ``ray.kill`` — and counts as a death. Ray is an optional extra:
``pip install -e ".[ray]"``.

A Ray instance this executor starts (``local``) is stopped when it closes (``ray.shutdown``), and
when the coordinator dies in any way, by a watchdog process started with it
(:mod:`alife_nas.executors._ray_reaper`). A cluster it joins (``auto``, an address), or a Ray the
caller had already initialised, is never stopped.

Every node must be able to load the data set: the same ``data_dir`` path (or ``digits``).
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from alife_nas.executors._base import (
    Deaths,
    ExecutorError,
    HangWatch,
    Progress,
    ProgressFn,
    Task,
    TrainingJob,
    death_result,
    poisoned,
    score_safely,
)
from alife_nas.genome import one_line

__all__ = ["RayExecutor"]

#: Seconds between two questions to the busy actors about their progress.
POLL_SECONDS = 1.0


class _TrainerActor:
    """The body of a Ray actor: one scorer, kept for the actor's life. It runs two calls at once
    (a threaded actor), so :meth:`progress` answers while :meth:`train` computes."""

    def __init__(self, job: TrainingJob, device: str) -> None:
        self.scorer = job.scorer(device)
        self._reports = 0  # epochs reported, all tasks together
        self._last: tuple[int, int, int, float] = (-1, 0, 0, 0.0)  # task index, epoch, max epochs, val

    def train(self, task: Task) -> dict:
        self._last = (task.index, 0, 0, 0.0)

        def on_epoch(epoch: int, max_epochs: int, val: float) -> None:
            self._last = (task.index, epoch, max_epochs, val)
            self._reports += 1

        result = score_safely(self.scorer, task, on_epoch)
        if poisoned(result):  # the GPU context is unusable: die, so Ray's error makes a fresh actor retry
            os._exit(70)
        return result

    def progress(self) -> tuple[int, str, int, tuple[int, int, int, float]]:
        """(process id, node id, epochs reported so far, the last report)."""
        import ray

        return os.getpid(), ray.get_runtime_context().get_node_id(), self._reports, self._last


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError("Ray is not installed; install the extra: pip install 'alife-nas[ray]'") from None
    return ray


class RayExecutor:
    """A pool of Ray actors; ``address`` is ``local`` (start Ray here), ``auto`` or a cluster address."""

    def __init__(self, job: TrainingJob, address: str = "local", workers: int | None = None,
                 gpus_per_trial: float | None = None, num_cpus: int | None = None,
                 training_timeout: float | None = None) -> None:
        ray = self.ray = _import_ray()
        self.job = job
        self._started_ray = False
        self._reaper: subprocess.Popen | None = None
        self._actors: list[Any] = []
        if not ray.is_initialized():
            try:
                if address == "local":
                    # workers must import what the driver imports (its working directory included)
                    path = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
                    token = secrets.token_hex(12)
                    self._reaper = _start_reaper(token)
                    with _environment(_REAPER_MARK, token):  # every process of the instance inherits it
                        # "local": a new instance even where RAY_ADDRESS or a `ray start` cluster exists
                        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                                 runtime_env={"env_vars": {"PYTHONPATH": path}})
                    self._started_ray = True
                else:
                    ray.init(address=address, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user needs one line
                self._stop_reaper()  # and with it whatever a failed start left running
                raise ExecutorError(f"cannot start or join Ray at {address!r}: {one_line(exc)}") from None
        self.watch = HangWatch(training_timeout)
        self._node = ray.get_runtime_context().get_node_id()
        self._polls: dict[int, Any] = {}  # actor number -> its unanswered progress call
        self._seen: dict[int, int] = {}  # actor number -> epochs it had reported at the last answer
        self._where: dict[int, tuple[int, str]] = {}  # actor number -> (process id, node id)
        threads = job.threads or 1
        self.gpus = float(gpus_per_trial or 0.0)
        if not workers or workers < 2:
            resources = ray.cluster_resources()
            if self.gpus > 0:
                workers = int(resources.get("GPU", 0) / self.gpus)
            else:
                workers = int(resources.get("CPU", 1) // threads)
        if workers < 1:
            self.close()
            raise ExecutorError(f"the Ray cluster has no room for one training ({threads} CPU, {self.gpus} GPU)")
        self.slots = workers
        self._actor_class = ray.remote(num_cpus=threads, num_gpus=self.gpus, max_restarts=0,
                                       max_concurrency=2)(_TrainerActor)
        self._actors = [self._new_actor(number) for number in range(workers)]

    def _new_actor(self, number: int) -> Any:
        device = "cuda" if self.gpus > 0 else "cpu"
        for known in (self._polls, self._seen, self._where):
            known.pop(number, None)
        self.watch.launched(number)
        return self._actor_class.remote(self.job, device)

    def _replace(self, number: int, kill: bool = False) -> None:
        """A fresh actor in place of actor ``number``; ``kill``: end the old one first (a hung one)."""
        if kill:
            pid, node = self._where.get(number, (0, ""))
            if pid and node == self._node:  # on this machine: at once, even a stopped process
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                self.ray.kill(self._actors[number], no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.watch.forget(number)
        self._actors[number] = self._new_actor(number)

    def _check(self, busy: dict[int, Task], on_progress: ProgressFn | None) -> list[tuple[int, str]]:
        """Ask every busy actor for its progress (at most one question each in flight), note the
        answers, and return ``(actor number, reason)`` for each one that counts as hung now."""
        ray = self.ray
        for number in busy:
            if number not in self._polls:
                self._polls[number] = self._actors[number].progress.remote()
        answered, _ = ray.wait(list(self._polls.values()), num_returns=len(self._polls), timeout=0.2)
        answered_set = set(answered)
        for number, ref in list(self._polls.items()):
            if ref not in answered_set:
                continue
            del self._polls[number]
            try:
                pid, node, reports, (index, epoch, max_epochs, val) = ray.get(ref)
            except Exception:  # noqa: BLE001 - a dead actor: its training's own error says so
                continue
            self._where[number] = (pid, node)
            self.watch.ready(number)  # it answers: its trainer is built
            seen = self._seen.get(number)
            self._seen[number] = reports
            task = busy.get(number)
            if seen is not None and reports > seen and task is not None and index == task.index:
                self.watch.progress(number)
                if on_progress:
                    on_progress(Progress(number, task, epoch, max_epochs, val))
        return [(number, reason) for number in busy if (reason := self.watch.overdue(number))]

    def run(self, tasks: Sequence[Task], on_progress: ProgressFn | None = None) -> Iterator[tuple[Task, dict]]:
        ray = self.ray
        pending = list(reversed(tasks))  # pop() from the end = first task first
        deaths = Deaths()
        idle = list(range(len(self._actors)))
        in_flight: dict[Any, tuple[int, Task]] = {}  # object ref -> (actor number, task)
        next_check = time.monotonic() + POLL_SECONDS
        while pending or in_flight:
            while idle and pending:
                number, task = idle.pop(0), pending.pop()
                in_flight[self._actors[number].train.remote(task)] = (number, task)
                self.watch.begin(number)
                if on_progress:
                    on_progress(Progress(number, task))
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + POLL_SECONDS
                hung = dict(self._check({number: task for number, task in in_flight.values()}, on_progress))
                for ref, (number, task) in list(in_flight.items()):
                    if number not in hung:
                        continue
                    del in_flight[ref]  # its result, an actor error, is never fetched
                    self._replace(number, kill=True)
                    idle.append(number)
                    if deaths.retry(task):
                        pending.append(task)
                        continue
                    if on_progress:
                        on_progress(Progress(number, None))
                    yield task, death_result(task, hung[number])
                if hung:
                    continue
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=max(0.0, next_check - time.monotonic()))
            if not done:
                continue
            number, task = in_flight.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayActorError as exc:
                self._replace(number)
                if deaths.retry(task):
                    pending.append(task)
                    idle.append(number)
                    continue
                result = death_result(task, type(exc).__name__)
            self.watch.end(number)
            idle.append(number)
            if on_progress:
                on_progress(Progress(number, None))
            yield task, result

    def close(self) -> None:
        for actor in self._actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self._actors = []
        try:
            if self._started_ray and self.ray.is_initialized():
                self.ray.shutdown()
        finally:
            self._started_ray = False
            self._stop_reaper()

    def _stop_reaper(self) -> None:
        """Tell the watchdog the run ended: it kills what ``ray.shutdown`` left of the instance, then exits."""
        reaper, self._reaper = self._reaper, None
        if reaper is None:
            return
        try:
            reaper.communicate(b"stop\n", timeout=_REAPER_WAIT)
        except (OSError, ValueError, subprocess.TimeoutExpired):
            reaper.kill()
            reaper.wait()


_REAPER_MARK = "ALIFE_NAS_RAY_INSTANCE"  # the same name as _ray_reaper.MARK (that file imports nothing)
#: How long closing waits for the watchdog's last sweep (seconds).
_REAPER_WAIT = 30.0


def _start_reaper(token: str) -> subprocess.Popen:
    """The watchdog that stops the instance marked ``token`` when this process ends (see _ray_reaper)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_ray_reaper.py")
    env = {k: v for k, v in os.environ.items() if k != _REAPER_MARK}
    return subprocess.Popen([sys.executable, "-I", script, token, str(os.getpid())], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)


@contextmanager
def _environment(name: str, value: str) -> Iterator[None]:
    """``name=value`` in this process's environment for the duration, then as it was."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
