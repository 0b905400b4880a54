"""Executors: where a step's trainings run.

:data:`EXECUTORS` is the registry of executor factories by name (an
:class:`~alife_nas.registry.Registry`): ``serial`` trains in this process (the default),
``local`` in worker processes on this machine (``workers``, ``devices``), ``ray`` on a Ray
cluster (``ray_pool``), plus every factory a package declares in the ``alife_nas.executors``
entry-point group. :func:`make_executor` picks one from a search's execution options: the
``executor`` option names it; left out, ``ray`` with ``--ray``, ``local`` with ``workers`` > 1,
else ``serial`` (:func:`executor_name`).

A factory is ``factory(config, job, data) -> Executor`` (see :class:`ExecutorFactory`): the
search's :class:`~alife_nas.config.SearchConfig`, the :class:`TrainingJob` its workers build a
trainer from, and the data set splits this process already loaded (or None). It may have a
``check(config)`` attribute, called by :func:`check_available` before anything is written, that
raises :class:`ExecutorError` for options it cannot serve. A new built-in executor is a new
module here plus one :meth:`~alife_nas.registry.Registry.register` line below.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

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
from alife_nas.registry import Registry

__all__ = ["Executor", "ExecutorError", "Progress", "ProgressFn", "Task", "TrainingJob", "SerialExecutor",
           "EXECUTORS", "ExecutorFactory", "executor_name", "make_executor", "check_available", "score_safely",
           "death_result"]


class ExecutorFactory(Protocol):
    """Makes the executor of one search; may have ``check(config)`` (see the module's docstring)."""

    def __call__(self, config: SearchConfig, job: TrainingJob, data: Any) -> Executor: ...


def _check_factory(name: str, factory: Any) -> None:
    if not callable(factory):
        raise TypeError(f"{factory!r} is not callable (an executor factory: (config, job, data) -> executor)")


#: Every executor factory by name: the built-ins, then those of the ``alife_nas.executors`` entry points.
EXECUTORS: Registry[ExecutorFactory] = Registry("executor", "alife_nas.executors", check=_check_factory)


def _serial(config: SearchConfig, job: TrainingJob, data: Any) -> Executor:
    return SerialExecutor(job.scorer(data=data))


def _check_serial(config: SearchConfig) -> None:
    if config.execution.workers != 1 or config.execution.ray is not None:
        raise ExecutorError("the serial executor trains one genome at a time in this process: "
                            "it takes neither workers > 1 nor ray")


def _local(config: SearchConfig, job: TrainingJob, data: Any) -> Executor:
    from alife_nas.executors.local import LocalExecutor, default_threads

    ex = config.execution
    job = dataclasses.replace(job, threads=ex.threads or default_threads(ex.workers))
    return LocalExecutor(job, ex.workers, ex.device_list(config.device), ex.training_timeout)


def _check_local(config: SearchConfig) -> None:
    if config.execution.ray is not None:
        raise ExecutorError("the local executor trains in worker processes on this machine: it takes no ray")


def _ray(config: SearchConfig, job: TrainingJob, data: Any) -> Executor:
    from alife_nas.executors.ray_pool import RayExecutor

    ex = config.execution
    return RayExecutor(job, ex.ray or "local", ex.workers, ex.gpus_per_trial, training_timeout=ex.training_timeout)


def _check_ray(config: SearchConfig) -> None:
    from alife_nas.executors.ray_pool import _import_ray

    _import_ray()


_serial.check = _check_serial  # type: ignore[attr-defined]
_local.check = _check_local  # type: ignore[attr-defined]
_ray.check = _check_ray  # type: ignore[attr-defined]
EXECUTORS.register("serial", _serial)
EXECUTORS.register("local", _local)
EXECUTORS.register("ray", _ray)


def executor_name(config: SearchConfig) -> str:
    """The executor a search's options ask for: ``executor`` if given, else ``ray`` with ``ray``,
    ``local`` with ``workers`` > 1, else ``serial``."""
    ex = config.execution
    if ex.executor is not None:
        return ex.executor
    return "ray" if ex.ray is not None else "serial" if ex.workers == 1 else "local"


def _factory(config: SearchConfig) -> ExecutorFactory:
    name = executor_name(config)
    try:
        return EXECUTORS[name]
    except KeyError:
        raise ExecutorError(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}") from None


def check_available(config: SearchConfig) -> None:
    """Raise ExecutorError now if the execution options name no known executor, or one that cannot
    serve them or needs something missing (Ray), before any work."""
    factory = _factory(config)
    check = getattr(factory, "check", None)
    if check is not None:
        check(config)


def make_executor(config: SearchConfig, score: Callable | None = None, data: Any = None) -> Any:
    """The executor a search's ``execution`` options ask for (:func:`executor_name`), from :data:`EXECUTORS`.

    ``score`` replaces the trainer, in workers too (it must be importable by name there);
    ``data``, the splits the coordinator already loaded, serves the serial executor's trainer.
    """
    check_available(config)
    job = TrainingJob(config.data, config.training, config.device, config.execution.threads, score)
    return _factory(config)(config, job, data)
