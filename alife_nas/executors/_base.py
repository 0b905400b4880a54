"""The executor seam: training tasks go in, their results come out as each one finishes.

A search's evaluator hands an executor the batch of trainings a step needs (candidates, then
mutants); the executor runs them — in this process, in worker processes, on a Ray cluster — and
yields ``(task, result)`` pairs in completion order, so the one coordinating process can commit
each result the moment it arrives. Scheduling, worker deaths and retries are the executor's
business; seeds, the cache and the store are not: a task already carries its seed.
"""
from __future__ import annotations

import inspect
import math
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from alife_nas.config import DataConfig
from alife_nas.contract import PRUNED, Pruned
from alife_nas.inheritance import WeightPlan
from alife_nas.genome import Genome, one_line, parse_genome
from alife_nas.settings import TrainSettings

__all__ = ["Task", "Progress", "ProgressFn", "Executor", "TrainingJob", "ScoreFn", "score_safely",
           "death_result", "poisoned", "Deaths", "ExecutorError", "HangWatch"]

#: Trains/scores one genome with a seed; returns a result dict with at least 'fitness'.
ScoreFn = Callable[[Genome, int], dict]


class ExecutorError(RuntimeError):
    """The executor cannot run at all (workers cannot start, Ray is missing); one line."""


@dataclass(frozen=True)
class Task:
    """One training: the request's position in its batch, the genome and its seed.

    ``stop_below`` (``--prune median``): per epoch e (index e - 1), the validation accuracy a
    training must reach there to go on; ``()`` never stops it (docs/method.md, "Pruning").
    ``weights`` (``--inherit-weights``): the trained layers it starts from and where its own go;
    only the trainer uses it (a score function never sees it)."""

    index: int
    genome: str
    seed: int
    stop_below: tuple[float, ...] = ()
    weights: WeightPlan | None = None  # --inherit-weights: files to start from and to save to


@dataclass(frozen=True)
class Progress:
    """What a worker is doing: started a task (``epoch`` 0), finished an epoch, or is idle (no task)."""

    worker: int
    task: Task | None
    epoch: int = 0
    max_epochs: int = 0
    val: float = 0.0


ProgressFn = Callable[[Progress], None]


class Executor(Protocol):
    """Runs training tasks; results come back in completion order."""

    slots: int  # how many trainings run at once

    def run(self, tasks: Sequence[Task], on_progress: ProgressFn | None = None) -> Iterator[tuple[Task, dict]]:
        """Yield ``(task, result)`` for every task, each as soon as it is done. A task whose worker
        died is retried once on a fresh worker; a second death gives a failed result."""
        ...

    def close(self) -> None:
        """Stop every worker (also after Ctrl-C); the executor cannot be used afterwards."""
        ...


@dataclass(frozen=True)
class TrainingJob:
    """What a worker needs to score genomes: the data set, the training settings, where to train.

    Picklable, so a worker process or a Ray actor can build its own trainer from it (loading the
    data set once and keeping it on its device). ``score`` replaces the trainer (tests use a cheap
    deterministic function; it must be importable by name in a worker).
    """

    data: DataConfig
    training: TrainSettings
    device: str = "cpu"
    threads: int | None = None
    score: ScoreFn | None = None

    def scorer(self, device: str | None = None, data: Any = None) -> Callable[..., dict]:
        """A function ``(genome, seed, on_epoch) -> result dict`` for this job on ``device``.

        ``data`` (the loaded splits) saves loading the data set again where it is at hand.
        """
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        if self.score is not None:
            score = self.score
            if _takes_on_epoch(score):  # a score function may report epochs, as the trainer does
                return lambda genome, seed, on_epoch=None: score(genome, seed, on_epoch=on_epoch)
            return lambda genome, seed, on_epoch=None: score(genome, seed)
        from alife_nas.data import load_data
        from alife_nas.training import Trainer

        trainer = Trainer(data if data is not None else load_data(self.data), self.training, device or self.device)
        return lambda genome, seed, on_epoch=None, weights=None: trainer.train(
            genome, seed, on_epoch=on_epoch, weights=weights).to_dict()


def _pruning(on_epoch: Callable | None, stop_below: tuple[float, ...]) -> Callable:
    """``on_epoch`` that also raises :class:`Pruned` when epoch e's accuracy is below ``stop_below[e-1]``
    (never at a training's last epoch: it is complete by then)."""

    def check(epoch: int, max_epochs: int, value: float) -> None:
        if on_epoch is not None:
            on_epoch(epoch, max_epochs, value)
        if epoch < max_epochs and epoch <= len(stop_below) and value < stop_below[epoch - 1]:
            raise Pruned(epoch, value, stop_below[epoch - 1])

    return check


def _parameters(function: Callable) -> Mapping[str, inspect.Parameter]:
    """A callable's parameters by name; none for one without a signature to read."""
    try:
        return inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}


def _is_trainer(scorer: Callable) -> bool:
    """Does this scorer take weight plans (the trainer's does; a plain score function's does not)?"""
    return "weights" in _parameters(scorer)


def _takes_on_epoch(score: Callable) -> bool:
    parameters = _parameters(score)
    return "on_epoch" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def score_safely(scorer: Callable[..., dict], task: Task, on_epoch: Callable | None = None) -> dict:
    """Run one training; any exception gives fitness 0 with the error recorded (the run goes on).

    A KeyboardInterrupt passes: stopping is the user's call, not a failed candidate.
    """
    genome = parse_genome(task.genome)
    if task.stop_below:
        on_epoch = _pruning(on_epoch, task.stop_below)
    try:
        if task.weights is not None and _is_trainer(scorer):
            result = dict(scorer(genome, task.seed, on_epoch, weights=task.weights))
        else:
            result = dict(scorer(genome, task.seed, on_epoch))
    except Pruned as exc:  # a scorer that lets it through (the trainer records it itself)
        result = {"fitness": 0.0, "failure": str(exc), "failure_kind": PRUNED, "epochs": exc.epoch}
    except Exception as exc:  # noqa: BLE001 - isolation is the point
        last = traceback.extract_tb(exc.__traceback__)[-1:] or None
        where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
        result = {"fitness": 0.0, "failure": f"{type(exc).__name__}: {exc}{where}", "failure_kind": "error"}
    result["genome"] = str(genome)
    fitness = float(result.get("fitness", 0.0))
    result["fitness"] = fitness if math.isfinite(fitness) else 0.0
    return result


#: Errors after which a process's CUDA context is unusable: every later training there would fail.
_POISON = ("CUDA error", "CUBLAS_STATUS", "cuDNN error", "CUDNN_STATUS", "device-side assert")


def poisoned(result: dict) -> str | None:
    """The reason a failed training left its worker's GPU context unusable, or None.

    Such a worker must die (and be replaced) instead of failing every training it gets next; an
    out-of-memory error is not one of these: the trainer frees memory and goes on.
    """
    failure = result.get("failure") or ""
    if result.get("failure_kind") == "error" and any(mark in failure for mark in _POISON):
        return one_line(failure)
    return None


def death_result(task: Task, reason: str) -> dict:
    """The result of a task whose worker died twice: fitness 0, the reason recorded."""
    return {"genome": task.genome, "fitness": 0.0, "failure_kind": "worker",
            "failure": f"the worker training it died twice ({reason}); recorded as failed"}


#: How many times a task may lose its worker before it is recorded as failed.
MAX_DEATHS = 2


class Deaths:
    """Counts each task's lost workers: the retry policy every backend shares."""

    def __init__(self) -> None:
        self._count: dict[int, int] = {}

    def retry(self, task: Task) -> bool:
        """Note that ``task`` lost its worker; True if it gets another try, False if it has failed."""
        self._count[task.index] = self._count.get(task.index, 0) + 1
        return self._count[task.index] < MAX_DEATHS


# --- hung workers -----------------------------------------------------------------------------
#: Automatic hang detection (``training_timeout`` None or 0), seconds; the rule is HangWatch's.
STARTUP_LIMIT = 600.0  # a worker's start-up: a fresh process, its imports, loading the data set
FIRST_EPOCH_FLOOR = 900.0  # a training's wait for its first epoch (includes compilation, autotuning)
EPOCH_FLOOR = 300.0  # the wait for each later epoch, and for the result after the last one
SLACK = 10.0  # times the slowest comparable wait seen


@dataclass
class _Clock:
    launched: float  # when the worker was started
    ready: bool = False  # it has built its trainer
    mark: float | None = None  # when the current wait began; None: no task
    epochs: int = 0  # progress reports of the task in hand
    slowest: float = 0.0  # the task's longest wait so far


class HangWatch:
    """When a worker counts as hung: the no-progress rule every backend shares.

    A worker with a task must report progress — an epoch finished, or the result — within a
    limit, else it is treated like a dead one (killed, its task retried once on a fresh worker,
    then recorded as failed). Each wait is timed separately: the first from the moment a ready
    worker has the task (a worker still starting up gets :data:`STARTUP_LIMIT`, or ``timeout``
    if longer, to become ready), the others from the previous epoch. The limit of a wait is

    - ``timeout`` seconds when one is set (``training_timeout``);
    - otherwise, for the first epoch: the larger of :data:`FIRST_EPOCH_FLOOR` and :data:`SLACK`
      times the longest wait for a first epoch seen in this run (by this executor); for each later
      epoch and the result: the larger of :data:`EPOCH_FLOOR` and :data:`SLACK` times the task's
      own longest wait so far (its first one included).

    Workers are known by number; times come from ``clock`` (monotonic: a suspended machine does
    not count). Times are taken when the coordinator reads a report, so a busy coordinator only
    makes the limits more generous.
    """

    def __init__(self, timeout: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = float(timeout) if timeout else None
        self.clock = clock
        self.slowest_first = 0.0
        self._workers: dict[int, _Clock] = {}

    def launched(self, worker: int) -> None:
        """A fresh worker was started (it is not ready until it says so)."""
        self._workers[worker] = _Clock(self.clock())

    def ready(self, worker: int) -> None:
        """The worker has built its trainer; a task it holds starts its first wait now."""
        clock = self._workers.setdefault(worker, _Clock(self.clock()))
        if not clock.ready:
            clock.ready = True
            if clock.mark is not None:
                clock.mark = self.clock()

    def begin(self, worker: int) -> None:
        """The worker was handed a task."""
        clock = self._workers.setdefault(worker, _Clock(self.clock(), ready=True))
        clock.mark, clock.epochs, clock.slowest = self.clock(), 0, 0.0

    def progress(self, worker: int) -> None:
        """The worker's task finished an epoch."""
        clock = self._workers.get(worker)
        if clock is None or clock.mark is None or not clock.ready:
            return
        now = self.clock()
        self._note(clock, now - clock.mark)
        clock.mark, clock.epochs = now, clock.epochs + 1

    def end(self, worker: int) -> None:
        """The worker's task is done (its result arrived) or lost."""
        clock = self._workers.get(worker)
        if clock is not None and clock.mark is not None:
            if clock.ready:
                self._note(clock, self.clock() - clock.mark)
            clock.mark = None

    def _note(self, clock: _Clock, wait: float) -> None:
        if clock.epochs == 0:
            self.slowest_first = max(self.slowest_first, wait)
        clock.slowest = max(clock.slowest, wait)

    def limit(self, worker: int) -> float | None:
        """Seconds the worker's current wait may last; None when it has no task."""
        clock = self._workers.get(worker)
        if clock is None or clock.mark is None:
            return None
        if not clock.ready:
            return max(STARTUP_LIMIT, self.timeout or 0.0)
        if self.timeout:
            return self.timeout
        if clock.epochs == 0:
            return max(FIRST_EPOCH_FLOOR, SLACK * self.slowest_first)
        return max(EPOCH_FLOOR, SLACK * clock.slowest)

    def _since(self, clock: _Clock) -> float:
        return clock.mark if clock.ready else clock.launched  # type: ignore[return-value]

    def overdue(self, worker: int) -> str | None:
        """Why the worker counts as hung now, or None."""
        limit = self.limit(worker)
        if limit is None:
            return None
        clock = self._workers[worker]
        waited = self.clock() - self._since(clock)
        if waited <= limit:
            return None
        what = "did not start" if not clock.ready else "sent no progress"
        which = "training_timeout" if self.timeout and clock.ready else "the automatic training timeout"
        if not clock.ready:
            which = "the start-up limit"
        return f"hung: {what} for {waited:.0f} s, over {which} of {limit:g} s; killed"

    def next_check(self) -> float | None:
        """Seconds until the first worker with a task could be overdue (None: no worker has one)."""
        now = self.clock()
        waits = [self._since(clock) + limit - now for worker, clock in self._workers.items()
                 if (limit := self.limit(worker)) is not None]
        return max(0.0, min(waits)) + 0.05 if waits else None

    def forget(self, worker: int) -> None:
        """The worker is gone (replaced: its successor is :meth:`launched`)."""
        self._workers.pop(worker, None)
