"""Scoring genomes for a run: per-candidate seeds, the evaluation cache, commit-at-once.

The engine asks an :class:`~alife_nas.evolution.Evaluator` for fitness values. The one used by
runs, :class:`CachedEvaluator`, looks each genome up in the run store first (keyed on the
canonical genome plus a hash of the training settings), trains only what is new, and commits
every finished training to the store before going on, so a kill loses at most the one in flight.
"""
from __future__ import annotations

import traceback
from typing import Callable, Sequence

import numpy as np

from alife_nas.evolution import EvalRequest
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

    ``trainings`` and ``cache_hits`` count what happened since the last :meth:`reset_counts`. A
    stored result made for this very (step, index) is a training of this step being replayed
    after a restart, so it counts as a training, not as a cache hit: a resumed run then reports
    exactly what an uninterrupted one would.
    """

    def __init__(self, store: RunStore, score: ScoreFn, run_seed: int, device: str = "cpu",
                 on_result: ResultCallback | None = None) -> None:
        self.store = store
        self.score = score
        self.run_seed = run_seed
        self.device = device
        self.digest = store.settings_hash
        self.on_result = on_result
        self.trainings = 0
        self.cache_hits = 0

    def reset_counts(self) -> None:
        self.trainings = 0
        self.cache_hits = 0

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]:
        return [self._one(step, request) for request in requests]

    def _one(self, step: int, request: EvalRequest) -> float:
        key = cache_key(self.digest, request.genome)
        found = self.store.lookup(key)
        if found is not None:
            replayed = (found.step, found.index) == (step, request.index)
            if replayed:
                self.trainings += 1
            else:
                self.cache_hits += 1
            if self.on_result:
                self.on_result(request, found, not replayed)
            return found.fitness
        seed = candidate_seed(self.run_seed, step, request.index)
        result = self._score_safely(request.genome, seed)
        stored = self.store.add_evaluation(key, Evaluation.from_result(
            result, step=step, index=request.index, operator=request.operator, parents=request.parents,
            position=request.position, seed=seed, device=self.device,
        ))
        self.trainings += 1
        if self.on_result:
            self.on_result(request, stored, False)
        return stored.fitness

    def _score_safely(self, genome: Genome, seed: int) -> dict:
        """A failing score function gives fitness 0 with the error recorded; the run goes on."""
        try:
            result = dict(self.score(genome, seed))
        except Exception as exc:  # noqa: BLE001 - isolation is the point; KeyboardInterrupt passes
            last = traceback.extract_tb(exc.__traceback__)[-1:] or None
            where = f" at {last[0].filename}:{last[0].lineno}" if last else ""
            result = {"fitness": 0.0, "failure": f"{type(exc).__name__}: {exc}{where}", "failure_kind": "error"}
        result["genome"] = str(genome)
        fitness = float(result.get("fitness", 0.0))
        result["fitness"] = fitness if np.isfinite(fitness) else 0.0
        return result
