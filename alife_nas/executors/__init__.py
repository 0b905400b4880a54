"""Executors: where a step's trainings run. A new executor is a new module here.

``serial`` trains in this process (the default), ``local`` in worker processes on this machine
(``workers``, ``devices``), ``ray_pool`` on a Ray cluster (``ray``). :func:`make_executor` picks one
from a search's execution options.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from alife_nas.config import SearchConfig
from alife_nas.executors._base import (
    Executor,
    ExecutorError,
    Progress,
    ProgressFn,
    Task,
    TrainingJob,
    death_result,
    score_safely,
)
from alife_nas.executors.serial import SerialExecutor

__all__ = ["Executor", "ExecutorError", "Progress", "ProgressFn", "Task", "TrainingJob", "SerialExecutor",
           "make_executor", "check_available", "score_safely", "death_result"]


def check_available(config: SearchConfig) -> None:
    """Raise ExecutorError now if the execution options need something missing (Ray), before any work."""
    if config.execution.ray is not None:
        from alife_nas.executors.ray_pool import _import_ray

        _import_ray()


def make_executor(config: SearchConfig, score: Callable | None = None, data: Any = None) -> Any:
    """The executor a search's ``execution`` options ask for.

    ``score`` replaces the trainer, in workers too (it must be importable by name there);
    ``data``, the splits the coordinator already loaded, serves the serial executor's trainer.
    """
    ex = config.execution
    job = TrainingJob(config.data, config.training, config.device, ex.threads, score)
    if ex.serial:
        return SerialExecutor(job.scorer(data=data))
    if ex.ray is not None:
        from alife_nas.executors.ray_pool import RayExecutor

        return RayExecutor(job, ex.ray, ex.workers, ex.gpus_per_trial)
    from alife_nas.executors.local import LocalExecutor, default_threads

    job = dataclasses.replace(job, threads=ex.threads or default_threads(ex.workers))
    return LocalExecutor(job, ex.workers, ex.device_list(config.device))
