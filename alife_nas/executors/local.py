"""Local worker processes: N trainings at once on this machine, over its cores or GPUs.

Each worker is a spawned process that builds its trainer once (loads the data set, moves it to
its device) and then trains one task at a time, sending epoch progress and the result back
through a pipe. The coordinator hands tasks to idle workers and yields results as they arrive.
A worker that dies (killed, segfault, a CUDA error that poisons its context) is replaced by a
fresh one and its task retried once; a second death records the task as failed. A worker that
sends no progress for too long (stopped, deadlocked, a hung CUDA kernel, a dead network mount:
see :class:`~alife_nas.executors._base.HangWatch` for the limits) is killed (SIGKILL) and counts
as a death.

Workers ignore SIGINT: Ctrl-C reaches the coordinator, which stops them all (``close``); SIGTERM
(as the CLI's coordinator takes it, the same stop) ends a worker silently at once. A worker
exits at once when its coordinator is gone (killed in any way): a thread watches its parent.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from multiprocessing.connection import Connection, wait
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

__all__ = ["LocalExecutor", "default_threads"]


def default_threads(workers: int) -> int:
    """Torch threads per worker: the cores split between the workers, never more threads than cores."""
    return max(1, (os.cpu_count() or 1) // workers)


#: How often a worker looks whether its coordinator is still there (seconds).
PARENT_POLL = 0.2


def exit_with_parent(parent: int, poll: float = PARENT_POLL) -> threading.Thread:
    """Start a daemon thread that ends this process at once (``os._exit``) when ``parent`` is no
    longer its parent process: the coordinator died, in any way, even by SIGKILL. Torch releases
    the GIL in its kernels, so the thread runs while a training computes."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(0)

    thread = threading.Thread(target=watch, name="alife-nas-parent-watch", daemon=True)
    thread.start()
    return thread


def _worker_main(conn: Connection, job: TrainingJob, device: str, parent: int | None = None) -> None:
    """A worker process: build the scorer once, then train tasks until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM ends a worker at once and silently (also one started from a coordinator that ignores
    # it); sent to the whole job (a batch scheduler), the coordinator stops the run and says so.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = parent or os.getppid()
    exit_with_parent(parent)  # also while it loads the data set
    try:
        scorer = job.scorer(device)
    except BaseException as exc:  # noqa: BLE001 - tell the coordinator why, in one line
        conn.send(("broken", f"{type(exc).__name__}: {one_line(exc)}"))
        return
    try:
        conn.send(("ready", None))
        while True:
            task = conn.recv()
            if task is None:
                return

            def on_epoch(epoch: int, max_epochs: int, val: float, task: Task = task) -> None:
                if os.getppid() != parent:  # the coordinator was killed: stop now, not after the training
                    os._exit(0)
                conn.send(("epoch", (task.index, epoch, max_epochs, val)))

            result = score_safely(scorer, task, on_epoch)
            reason = poisoned(result)
            if reason:  # this process's GPU is unusable now: die, so a fresh worker retries the task
                conn.send(("dying", reason))
                os._exit(70)
            result["device"] = device
            conn.send(("done", (task.index, result)))
    except (EOFError, OSError):  # the coordinator is gone: nothing to report to
        return


class _Worker:
    """One worker process, its end of the pipe, and the task it is training (if any)."""

    def __init__(self, context: Any, job: TrainingJob, device: str, number: int) -> None:
        self.number = number
        self.device = device
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_worker_main, args=(child, job, device, os.getpid()), daemon=True,
                                       name=f"alife-nas-worker-{number}")
        self.process.start()
        child.close()
        self.task: Task | None = None
        self.last_words: str | None = None  # why it is about to die, when it knows

    def stop(self, kill: bool = False) -> None:
        try:
            if not kill and self.process.is_alive():
                self.conn.send(None)
                self.process.join(timeout=5)
        except (OSError, ValueError):
            pass
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


class LocalExecutor:
    """``workers`` spawned processes; device of worker i = ``devices[i % len(devices)]``."""

    def __init__(self, job: TrainingJob, workers: int, devices: Sequence[str] = ("cpu",),
                 training_timeout: float | None = None) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        # spawn, not fork: a forked child of a process that already runs torch threads or CUDA can hang
        self._context = multiprocessing.get_context("spawn")
        self.job = job
        self.devices = list(devices)
        self.slots = workers
        self.watch = HangWatch(training_timeout)
        self._workers = [self._start(i) for i in range(workers)]

    def _start(self, number: int) -> _Worker:
        self.watch.launched(number)
        return _Worker(self._context, self.job, self.devices[number % len(self.devices)], number)

    def run(self, tasks: Sequence[Task], on_progress: ProgressFn | None = None) -> Iterator[tuple[Task, dict]]:
        pending = deque(tasks)
        deaths = Deaths()
        by_index = {task.index: task for task in tasks}
        while pending or any(w.task is not None for w in self._workers):
            for worker in list(self._workers):
                if worker.task is None and pending:
                    if not worker.process.is_alive():  # died while idle: costs no task a retry
                        worker = self._replace(worker)
                    worker.task = pending.popleft()
                    self.watch.begin(worker.number)
                    self._send(worker, worker.task)
                    if on_progress:
                        on_progress(Progress(worker.number, worker.task))
            busy = [w for w in self._workers if w.task is not None]
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=self.watch.next_check())
            for worker in list(self._workers):
                done = self._drain(worker, by_index, on_progress)  # every report, before any verdict
                if done is not None:
                    yield done
                    continue
                if worker.task is None:
                    continue
                if not worker.process.is_alive():
                    reason = worker.last_words or _exit_reason(worker.process.exitcode)
                else:
                    reason = self.watch.overdue(worker.number)
                    if reason is None:
                        continue
                task = worker.task
                self._replace(worker)  # kills it (SIGKILL) if it is still there
                if deaths.retry(task):
                    pending.appendleft(task)
                else:
                    yield task, death_result(task, reason)
        if on_progress:
            for worker in self._workers:
                on_progress(Progress(worker.number, None))

    def _drain(self, worker: _Worker, by_index: dict[int, Task], on_progress: ProgressFn | None) -> tuple[Task, dict] | None:
        """Read what the worker sent; returns (task, result) once its task is done."""
        while worker.conn.poll():
            try:
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                return None  # the pipe broke: the worker died; the caller sees its sentinel
            if kind == "broken":
                self.close()
                raise ExecutorError(f"a worker process could not start: {payload}")
            if kind == "ready":
                self.watch.ready(worker.number)
            elif kind == "dying":
                worker.last_words = payload
            elif kind == "epoch" and worker.task is not None:
                self.watch.progress(worker.number)
                if on_progress:
                    _index, epoch, max_epochs, val = payload
                    on_progress(Progress(worker.number, worker.task, epoch, max_epochs, val))
            elif kind == "done":
                index, result = payload
                task = by_index[index]
                worker.task = None
                self.watch.end(worker.number)
                return task, result
        return None

    def _send(self, worker: _Worker, task: Task) -> None:
        try:
            worker.conn.send(task)
        except (OSError, ValueError):
            pass  # a dead worker: its sentinel tells the loop, which retries the task

    def _replace(self, worker: _Worker) -> _Worker:
        worker.stop(kill=True)
        self.watch.forget(worker.number)
        fresh = self._start(worker.number)
        self._workers[self._workers.index(worker)] = fresh
        return fresh

    def close(self) -> None:
        for worker in self._workers:
            worker.stop(kill=worker.task is not None)
        self._workers = []


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
