"""Scoring genomes for a run: per-candidate seeds, the evaluation cache, commit-at-once.

The engine asks an :class:`~alife_nas.evolution.Evaluator` for fitness values. The one used by
runs, :class:`CachedEvaluator`, looks each genome up in the run store first (keyed on the
canonical genome plus a hash of the training settings), trains only what is new, and commits
every finished training to the store before going on, so a kill loses at most the one in flight.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from alife_nas.evolution import EvalRequest
from alife_nas.executors import Executor, ProgressFn, Task
from alife_nas.genome import Genome
from alife_nas.store import Evaluation, RunStore

__all__ = ["ScoreFn", "ResultCallback", "candidate_seed", "cache_key", "CachedEvaluator"]

#: Trains/scores one genome with a seed; returns a result dict with at least 'genome' and
#: 'fitness' (the trainer's ``TrainResult.to_dict()``), plus 'failure' etc. when it has them.
ScoreFn = Callable[[Genome, int], dict]

#: Called after each candidate: (request, its evaluation, True when it came from the cache).
ResultCallback = Callable[[EvalRequest, Evaluation, bool], None]


def candidate_seed(run_seed: int, step: int, index: int) -> int:
    """The training seed of candidate ``index`` of ``step``: a pure function of the three."""
    return int(np.random.SeedSequence([int(run_seed), int(step), int(index)]).generate_state(1)[0])


def cache_key(settings_digest: str, genome: Genome | str) -> str:
    return f"{settings_digest}:{genome}"


class CachedEvaluator:
    """An Evaluator over a run store: cache lookups, seeded trainings, one commit per training.

    A batch's new genomes go to the executor at once (it may train them in parallel); each
    result is committed the moment it arrives, so a kill loses only the trainings in flight.
    A genome that appears twice in a batch is trained once; the second is a cache hit.

    ``trainings`` and ``cache_hits`` count what happened since the last :meth:`reset_counts`. A
    stored result made for this very (step, index) is a training of this step being replayed
    after a restart, so it counts as a training, not as a cache hit: a resumed run then reports
    exactly what an uninterrupted one would.
    """

    def __init__(self, store: RunStore, executor: Executor, run_seed: int, device: str = "cpu",
                 on_result: ResultCallback | None = None, on_progress: ProgressFn | None = None) -> None:
        self.store = store
        self.executor = executor
        self.run_seed = run_seed
        self.device = device
        self.digest = store.settings_hash
        self.on_result = on_result
        self.on_progress = on_progress
        self.trainings = 0
        self.cache_hits = 0

    def reset_counts(self) -> None:
        self.trainings = 0
        self.cache_hits = 0

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]:
        keys = [cache_key(self.digest, request.genome) for request in requests]
        found: dict[int, Evaluation] = {}
        first: dict[str, int] = {}  # cache key -> index (in requests) of the one that trains it
        to_train: list[Task] = []
        for i, (request, key) in enumerate(zip(requests, keys)):
            stored = self.store.lookup(key)
            if stored is not None:
                found[i] = stored
            elif key not in first:
                first[key] = i
                to_train.append(Task(i, str(request.genome), candidate_seed(self.run_seed, step, request.index)))
        for task, result in self.executor.run(to_train, self.on_progress):
            request = requests[task.index]
            device = result.pop("device", None) or self.device
            found[task.index] = self.store.add_evaluation(keys[task.index], Evaluation.from_result(
                result, step=step, index=request.index, operator=request.operator, parents=request.parents,
                position=request.position, seed=task.seed, device=device,
            ))
            self.trainings += 1
            if self.on_result:
                self.on_result(request, found[task.index], False)
        trained = {task.index for task in to_train}
        fitness = []
        for i, request in enumerate(requests):
            if i in trained:
                ev = found[i]  # counted when it arrived
            else:  # stored before this batch, or a repeat of a genome this batch trained
                ev = found.get(i) or found[first[keys[i]]]
                self._count_stored(step, request, ev)
            fitness.append(ev.fitness)
        return fitness

    def _count_stored(self, step: int, request: EvalRequest, ev: Evaluation) -> None:
        """A request answered from the store: a replay of this very training, or a cache hit."""
        replayed = (ev.step, ev.index) == (step, request.index)
        if replayed:
            self.trainings += 1
        else:
            self.cache_hits += 1
        if self.on_result:
            self.on_result(request, ev, not replayed)
