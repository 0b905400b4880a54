"""Ray: trainings on a Ray cluster (or a Ray instance started on this machine).

Each worker is a Ray actor that builds its trainer once (loads the data set on its node, moves it
to its device) and trains one task at a time. An actor asks Ray for ``threads`` CPUs and
``gpus_per_trial`` GPUs, so ``gpus_per_trial=0.25`` packs four trainings on one GPU; Ray decides
where actors run and gives each its GPU share (``CUDA_VISIBLE_DEVICES``). An actor that dies is
replaced and its task retried once; a second death records the task as failed. Ray is an
optional extra: ``pip install -e ".[ray]"``.

Every node must be able to load the data set: the same ``data_dir`` path (or ``digits``).
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterator, Sequence

from alife_nas.executors._base import (
    Deaths,
    ExecutorError,
    Progress,
    ProgressFn,
    Task,
    TrainingJob,
    death_result,
    poisoned,
    score_safely,
)

__all__ = ["RayExecutor"]


class _TrainerActor:
    """The body of a Ray actor: one scorer, kept for the actor's life."""

    def __init__(self, job: TrainingJob, device: str) -> None:
        self.scorer = job.scorer(device)

    def train(self, task: Task) -> dict:
        result = score_safely(self.scorer, task)
        if poisoned(result):  # the GPU context is unusable: die, so Ray's error makes a fresh actor retry
            os._exit(70)
        return result


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ExecutorError("Ray is not installed; install the extra: pip install 'alife-nas[ray]'") from None
    return ray


class RayExecutor:
    """A pool of Ray actors; ``address`` is ``local`` (start Ray here), ``auto`` or a cluster address."""

    def __init__(self, job: TrainingJob, address: str = "local", workers: int | None = None,
                 gpus_per_trial: float | None = None, num_cpus: int | None = None) -> None:
        ray = self.ray = _import_ray()
        self.job = job
        if not ray.is_initialized():
            try:
                if address == "local":
                    # workers must import what the driver imports (its working directory included)
                    path = os.pathsep.join(p for p in [os.getcwd(), *sys.path] if p)
                    ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
                             runtime_env={"env_vars": {"PYTHONPATH": path}})
                else:
                    ray.init(address=address, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises many kinds; the user needs one line
                raise ExecutorError(f"cannot start or join Ray at {address!r}: {' '.join(str(exc).split())[:300]}") from None
        self._started_ray = address == "local"
        threads = job.threads or 1
        self.gpus = float(gpus_per_trial or 0.0)
        if not workers or workers < 2:
            resources = ray.cluster_resources()
            if self.gpus > 0:
                workers = int(resources.get("GPU", 0) / self.gpus)
            else:
                workers = int(resources.get("CPU", 1) // threads)
        if workers < 1:
            raise ExecutorError(f"the Ray cluster has no room for one training ({threads} CPU, {self.gpus} GPU)")
        self.slots = workers
        self._actor_class = ray.remote(num_cpus=threads, num_gpus=self.gpus, max_restarts=0)(_TrainerActor)
        self._actors = [self._new_actor() for _ in range(workers)]

    def _new_actor(self) -> Any:
        device = "cuda" if self.gpus > 0 else "cpu"
        return self._actor_class.remote(self.job, device)

    def run(self, tasks: Sequence[Task], on_progress: ProgressFn | None = None) -> Iterator[tuple[Task, dict]]:
        ray = self.ray
        pending = list(reversed(tasks))  # pop() from the end = first task first
        deaths = Deaths()
        idle = list(range(len(self._actors)))
        in_flight: dict[Any, tuple[int, Task]] = {}  # object ref -> (actor number, task)
        while pending or in_flight:
            while idle and pending:
                number, task = idle.pop(0), pending.pop()
                in_flight[self._actors[number].train.remote(task)] = (number, task)
                if on_progress:
                    on_progress(Progress(number, task))
            done, _ = ray.wait(list(in_flight), num_returns=1)
            number, task = in_flight.pop(done[0])
            try:
                result = ray.get(done[0])
            except ray.exceptions.RayActorError as exc:
                self._actors[number] = self._new_actor()
                if deaths.retry(task):
                    pending.append(task)
                    idle.append(number)
                    continue
                result = death_result(task, type(exc).__name__)
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
        if self._started_ray and self.ray.is_initialized():
            self.ray.shutdown()
