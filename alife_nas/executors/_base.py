"""The executor seam: training tasks go in, their results come out as each one finishes.

A search's evaluator hands an executor the batch of trainings a step needs (candidates, then
mutants); the executor runs them — in this process, in worker processes, on a Ray cluster — and
yields ``(task, result)`` pairs in completion order, so the one coordinating process can commit
each result the moment it arrives. Scheduling, worker deaths and retries are the executor's
business; seeds, the cache and the store are not: a task already carries its seed.
"""
from __future__ import annotations

import math
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Protocol, Sequence

from alife_nas.config import DataConfig
from alife_nas.genome import Genome, parse_genome
from alife_nas.settings import TrainSettings

__all__ = ["Task", "Progress", "ProgressFn", "Executor", "TrainingJob", "ScoreFn", "score_safely",
           "death_result", "poisoned", "Deaths", "ExecutorError"]

#: Trains/scores one genome with a seed; returns a result dict with at least 'fitness'.
ScoreFn = Callable[[Genome, int], dict]


class ExecutorError(RuntimeError):
    """The executor cannot run at all (workers cannot start, Ray is missing); one line."""


@dataclass(frozen=True)
class Task:
    """One training: the request's position in its batch, the genome and its seed."""

    index: int
    genome: str
    seed: int


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
            return lambda genome, seed, on_epoch=None: score(genome, seed)
        from alife_nas.data import load_data
        from alife_nas.training import Trainer

        trainer = Trainer(data if data is not None else load_data(self.data), self.training, device or self.device)
        return lambda genome, seed, on_epoch=None: trainer.train(genome, seed, on_epoch=on_epoch).to_dict()


def score_safely(scorer: Callable[..., dict], task: Task, on_epoch: Callable | None = None) -> dict:
    """Run one training; any exception gives fitness 0 with the error recorded (the run goes on).

    A KeyboardInterrupt passes: stopping is the user's call, not a failed candidate.
    """
    genome = parse_genome(task.genome)
    try:
        result = dict(scorer(genome, task.seed, on_epoch))
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
        return failure[:200]
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
