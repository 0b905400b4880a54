"""Scoring genomes for a run: per-candidate seeds, the evaluation cache, commit-at-once.

The engine asks an :class:`~alife_nas.contract.Evaluator` for fitness values. The one used by
runs, :class:`CachedEvaluator`, looks each genome up in the run store first (keyed on the
canonical genome plus a hash of the training settings), trains only what is new, and commits
every finished training to the store before going on, so a kill loses at most the one in flight.

A request may ask for a further *sample* of a genome (``EvalRequest.sample`` k >= 1): another
training of it with a fresh seed, stored as sample k of the genome and answered from the store
when it is there, like the cache answers sample 0.

:class:`Reevaluating` (``--reevaluate K``) sits between a strategy and the cached evaluator: a
genome that would become the best found, or enter what the strategy holds, is trained until it
has K samples, and the strategy gets the mean of all its samples.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np

from alife_nas.contract import PRUNED, EvalRequest, mean_fitness
from alife_nas.executors import Executor, ProgressFn, Task
from alife_nas.genome import Genome
from alife_nas.inheritance import WeightPlan, WeightsFolder, request_key
from alife_nas.store import Evaluation, RunStore

__all__ = ["ScoreFn", "ResultCallback", "candidate_seed", "sample_seed", "cache_key", "rung_value", "CachedEvaluator",
           "Halving", "halving_rung", "Reevaluating"]

#: Trains/scores one genome with a seed; returns a result dict with at least 'genome' and
#: 'fitness' (the trainer's ``TrainResult.to_dict()``), plus 'failure' etc. when it has them.
ScoreFn = Callable[[Genome, int], dict]

#: Called after each candidate: (request, its evaluation, True when it came from the cache).
ResultCallback = Callable[[EvalRequest, Evaluation, bool], None]


def candidate_seed(run_seed: int, step: int, index: int) -> int:
    """The training seed of candidate ``index`` of ``step``: a pure function of the three."""
    return int(np.random.SeedSequence([int(run_seed), int(step), int(index)]).generate_state(1)[0])


def sample_seed(run_seed: int, step: int, index: int, sample: int) -> int:
    """The training seed of sample ``sample`` of candidate ``index`` of ``step``.

    Sample 0 is :func:`candidate_seed`; a further sample k >= 1 gets
    ``SeedSequence([run_seed, step, index, k])``, which never equals a sample-0 seed (a
    SeedSequence pads its entropy with zeros, so ``[s, t, i]`` is ``[s, t, i, 0]``).
    """
    if _check_sample(sample) == 0:
        return candidate_seed(run_seed, step, index)
    return int(np.random.SeedSequence([int(run_seed), int(step), int(index), sample]).generate_state(1)[0])


def _check_sample(sample: object) -> int:
    if isinstance(sample, bool) or not isinstance(sample, int) or sample < 0:
        raise ValueError(f"a sample number is 0, 1, 2, ...; got {sample!r}")
    return sample


#: ``--prune median`` leaves a training alone in the first quarter of its epochs (early curves
#: cross: a slow starter is often a late winner) ...
PRUNE_WARMUP = 0.25
#: ... and at an epoch fewer than this many finished trainings reached (a median of 1 or 2 says
#: little; the first trainings of a run are never stopped).
PRUNE_MIN_TRAININGS = 5


def cache_key(settings_digest: str, genome: Genome | str) -> str:
    return f"{settings_digest}:{genome}"


def rung_value(ev: Evaluation, rung: int) -> float:
    """What a training answers: its fitness, or for a request to the halving rung (``rung`` > 0)
    its best validation accuracy in the first ``rung`` epochs (a failed training: its fitness, 0)."""
    if not rung or not ev.history or (ev.failure is not None and ev.failure_kind != PRUNED):
        return ev.fitness
    return max(ev.history[:rung])


class CachedEvaluator:
    """An Evaluator over a run store: cache lookups, seeded trainings, one commit per training.

    A batch's new genomes go to the executor at once (it may train them in parallel); each
    result is committed the moment it arrives, so a kill loses only the trainings in flight.
    A genome that appears twice in a batch is trained once; the second is a cache hit. A
    request for sample k >= 1 of a genome is looked up and stored as that sample (seed
    :func:`sample_seed`); every sample trained counts as a training.

    ``trainings`` and ``cache_hits`` count what happened since the last :meth:`reset_counts`. A
    stored result made for this very (step, index) is a training of this step being replayed
    after a restart, so it counts as a training, not as a cache hit: a resumed run then reports
    exactly what an uninterrupted one would.
    """

    def __init__(self, store: RunStore, executor: Executor, run_seed: int, device: str = "cpu",
                 on_result: ResultCallback | None = None, on_progress: ProgressFn | None = None,
                 prune: str = "none", weights: WeightsFolder | None = None, inherited_epochs: int | None = None) -> None:
        self.store = store
        self.prune = prune
        self.weights = weights  # --inherit-weights: where trainings start from and save to
        self.inherited_epochs = inherited_epochs  # ... and the epoch limit of a child that inherits
        self._thresholds: tuple[int, tuple[float, ...]] | None = None  # (step, stop_below) of the step
        self.executor = executor
        self.run_seed = run_seed
        self.device = device
        self.digest = store.settings_hash
        self.on_result = on_result
        self.on_progress = on_progress
        self.trainings = 0
        self.cache_hits = 0
        self.answers: list[Evaluation] = []  # the training that answered each request of the last batch

    def reset_counts(self) -> None:
        self.trainings = 0
        self.cache_hits = 0

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]:
        keys = [cache_key(self.digest, request_key(request.genome, request.inherit)) for request in requests]
        slots = [(key, request.sample) for key, request in zip(keys, requests)]
        rungs: dict[tuple[str, int], int] = {}
        for slot, request in zip(slots, requests):
            if rungs.setdefault(slot, request.rung) != request.rung:  # one training answers both: which one?
                raise ValueError(f"{request.genome} asked for twice in one batch, to different epochs")
        found: dict[int, Evaluation] = {}
        first: dict[tuple[str, int], int] = {}  # (cache key, sample) -> index (in requests) of the one that trains it
        to_train: list[Task] = []
        for i, (request, slot) in enumerate(zip(requests, slots)):
            stored = self._lookup(*slot, step, request)
            if stored is not None:
                found[i] = stored
            elif slot not in first:
                first[slot] = i
                seed = sample_seed(self.run_seed, step, request.index, request.sample)
                to_train.append(Task(i, str(request.genome), seed, self._stop_below(step, request),
                                     self._weight_plan(request)))
        for task, result in self.executor.run(to_train, self.on_progress):
            request = requests[task.index]
            device = result.pop("device", None) or self.device
            ev = Evaluation.from_result(
                result, step=step, index=request.index, operator=request.operator, parents=request.parents,
                position=request.position, seed=task.seed, device=device,
            )
            if request.sample == 0:
                found[task.index] = self.store.add_evaluation(keys[task.index], ev)
            else:
                found[task.index] = self.store.add_sample(keys[task.index], request.sample, ev)
            self.trainings += 1
            if self.on_result:
                self.on_result(request, found[task.index], False)
        trained = {task.index for task in to_train}
        self.answers = []
        for i, request in enumerate(requests):
            if i in trained:
                ev = found[i]  # counted when it arrived
            else:  # stored before this batch, or a repeat of a genome this batch trained
                ev = found.get(i) or found[first[slots[i]]]
                self._count_stored(step, request, ev)
            self.answers.append(ev)
        return [rung_value(ev, request.rung) for ev, request in zip(self.answers, requests)]

    def _lookup(self, key: str, sample: int, step: int, request: EvalRequest) -> Evaluation | None:
        """The stored training for this slot: the cache (sample 0) or a further sample.

        A pruned training is no answer when made in an earlier step (the genome is trained again,
        and may go further this time), nor, with ``--prune halving``, to a request for a full
        training. One made in this step is (a replay after a restart, or the same genome twice in
        the batch, as an uninterrupted step would have it). A request to the halving rung is
        answered first by the training made for it (its step and index), so a replay after the
        survivor went on finds the rung's own result."""
        if _check_sample(sample) != 0:
            return self.store.lookup_sample(key, sample)
        if request.rung:
            made = self.store.training_at(key, step, request.index)
            if made is not None:
                return made
        stored = self.store.lookup(key)
        if stored is not None and stored.failure_kind == PRUNED and (
                stored.step != step or (self.prune == "halving" and not request.rung)):
            return None
        return stored

    def _weight_plan(self, request: EvalRequest) -> WeightPlan | None:
        """``--inherit-weights``: the parents' weights files that exist (a cell whose training's
        weights were never kept, e.g. a cache hit on an old genome, offers none: those layers start
        fresh) and where this training's own go. Decided here, before any worker runs, from the
        files the step began with, so a replayed step starts every training alike."""
        if self.weights is None or request.sample != 0:
            return None
        sources = []
        if request.inherit is not None:
            for number, (key, genome) in enumerate(request.inherit.parents):
                path = self.weights.path(key)
                pairs = tuple((i, src[1]) for i, src in enumerate(request.inherit.layers)
                              if src is not None and src[0] == number)
                if path.exists():
                    sources.append((str(path), genome, pairs, request.inherit.head == number))
        return WeightPlan(tuple(sources), str(self.weights.path(request_key(request.genome, request.inherit))),
                          self.inherited_epochs if sources else None)

    def _stop_below(self, step: int, request: EvalRequest) -> tuple[float, ...]:
        """``--prune median``: per epoch, the median of the finished trainings before this step
        (``()`` = train in full). Never for trainings that take a cell or a population place as
        they are (the initialisation, the lattice's mutants), never for a further sample, and
        not before an epoch that ``PRUNE_MIN_TRAININGS`` finished trainings reached, nor in the
        first ``PRUNE_WARMUP`` of a training's epochs."""
        if request.rung:  # --prune halving: every training stops at the rung
            return (-math.inf,) * (request.rung - 1) + (math.inf,)
        if self.prune != "median" or request.sample != 0 or request.operator in ("init", "mutant"):
            return ()
        if self._thresholds is None or self._thresholds[0] != step:
            medians = self.store.epoch_medians(before_step=step)
            warmup = max(1, math.ceil(PRUNE_WARMUP * len(medians)))
            stop = tuple(m if n >= PRUNE_MIN_TRAININGS and e >= warmup else -math.inf
                         for e, (m, n) in enumerate(medians, start=1))
            self._thresholds = (step, stop if any(v > -math.inf for v in stop) else ())
        return self._thresholds[1]

    def _count_stored(self, step: int, request: EvalRequest, ev: Evaluation) -> None:
        """A request answered from the store: a replay of this very training, or a cache hit."""
        replayed = (ev.step, ev.index) == (step, request.index)
        if replayed:
            self.trainings += 1
        else:
            self.cache_hits += 1
        if self.on_result:
            self.on_result(request, ev, not replayed)


#: ``--prune halving``: a step's candidates all train to this share of the epochs (the rung) ...
HALVING_RUNG = 0.25


def halving_rung(max_epochs: int) -> int:
    """The rung's epoch for trainings of ``max_epochs`` epochs; 0 = none (too short to split)."""
    rung = max(1, math.ceil(HALVING_RUNG * max_epochs))
    return rung if rung < max_epochs else 0


def _key(request: EvalRequest) -> str:
    return request_key(request.genome, request.inherit)


def is_candidate(request: EvalRequest) -> bool:
    """One of a NeuralFinder move's five candidates (self-replication or a crossover)."""
    return request.sample == 0 and (request.operator == "self" or request.operator.startswith("cross-"))


class Halving:
    """``--prune halving`` (neuralfinder): successive halving among each move's candidates.

    A batch's candidates all go to the rung first (one batch: they train in parallel), ranked
    by their best validation accuracy so far there; a candidate already trained in full (a cache
    hit) takes part with its curve's first ``rung`` epochs and costs nothing. Of each move (its
    candidates share the master's cell) only the best at the rung trains on, in full, with the
    same seed, so its first epochs are the rung's again: the step's winner is always a full
    training. The strategy gets full fitness for every candidate trained in full and 0 for the
    ones stopped at the rung, which therefore never take a cell. Everything else (the
    initialisation, the mutants) passes through in full.
    """

    def __init__(self, inner: CachedEvaluator, rung: int) -> None:
        self.inner = inner
        self.rung = rung

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]:
        if not self.rung or not any(map(is_candidate, requests)):
            return self.inner(step, requests)
        asked = [replace(r, rung=self.rung) if is_candidate(r) else r for r in requests]
        at_rung = self.inner(step, asked)
        answers = list(self.inner.answers)
        moves: dict[Any, list[int]] = {}
        for i, request in enumerate(asked):
            if request.rung:
                moves.setdefault(request.position, []).append(i)
        survivors = [max(move, key=lambda i: (at_rung[i], -i)) for move in moves.values()]  # first best on ties
        go_on = [i for i in survivors if answers[i].failure_kind == PRUNED]
        full = dict(zip((_key(requests[i]) for i in go_on), self.inner(step, [requests[i] for i in go_on])))
        scores = []
        for request, value, ev in zip(asked, at_rung, answers):
            if not request.rung:
                scores.append(value)
            elif ev.failure_kind != PRUNED:  # trained in full (before, or it ended by itself by the rung)
                scores.append(ev.fitness)
            else:  # stopped at the rung: 0, unless its genome went on as another candidate's survivor
                scores.append(full.get(_key(request), 0.0))
        return scores


#: Would a genome with this fitness so far enter what the strategy holds? (request, fitness) -> bool
EntryTest = Callable[[EvalRequest, float], bool]


class Reevaluating:
    """``--reevaluate K``: a genome is re-trained before a strategy relies on a lucky training.

    Each batch is first scored as asked (through ``inner``, the cached evaluator). Then a genome
    with fewer than K trainings is trained until it has K (samples n..K-1, fresh seeds, one batch)

    - when its fitness so far (its first training's, for a new genome) would let it in:
      ``would_enter(request, fitness)``, the strategy's hook, asked before the batch changes
      anything; and
    - when it would be the best genome found so far: repeatedly, the batch's best genome is
      re-trained while it has fewer than K trainings and beats the best before it, so the best
      found is always a mean of K trainings, not the luckiest of several single ones.

    Every answer is the mean of all the genome's trainings so far (:func:`mean_fitness`), so a
    genome looked up from the cache later gets that mean too. "So far" is what was stored before
    the step began plus what this step asked for: never a training a killed attempt of the same
    step made ahead of it, so a resumed step decides exactly as the first attempt did.
    """

    def __init__(self, inner: CachedEvaluator, reevaluate: int, would_enter: EntryTest) -> None:
        self.inner = inner
        self.reevaluate = reevaluate
        self.would_enter = would_enter
        self._step: int | None = None
        self._known: dict[str, list[float]] = {}  # cache key -> fitness of its trainings so far, sample 0 first
        self._best = -math.inf  # the best mean found so far (before the batch being decided)

    def begin(self, step: int) -> None:
        """Start ``step`` from what the store held before it (called by the first batch of a new step)."""
        self._step = step
        self._known = self.inner.store.sample_fitness(before_step=step)
        self._best = max((mean_fitness(v) for v in self._known.values()), default=-math.inf)

    def __call__(self, step: int, requests: Sequence[EvalRequest]) -> list[float]:
        return [mean_fitness(values) for values in self.samples(step, requests)]

    def current(self, step: int, genome: Any) -> float | None:
        """The genome's fitness now (the mean of its trainings before ``step`` and in it so far), or
        None when it has none: what a lattice cell holding it must compare with."""
        if step != self._step:
            self.begin(step)
        known = self._known.get(cache_key(self.inner.digest, genome))
        return mean_fitness(known) if known else None

    def samples(self, step: int, requests: Sequence[EvalRequest]) -> list[tuple[float, ...]]:
        """Score the batch, re-train as above; per request, every training of its genome so far."""
        if step != self._step:
            self.begin(step)
        if not requests:
            return []
        keys = [cache_key(self.inner.digest, r.genome) for r in requests]
        scores = self.inner(step, requests)
        for i in sorted(range(len(requests)), key=lambda i: requests[i].sample):  # copies of a genome in sample order
            known = self._known.setdefault(keys[i], [])
            if requests[i].sample > len(known):
                raise ValueError(f"sample {requests[i].sample} of {requests[i].genome} asked for "
                                 f"before sample {len(known)}")
            if requests[i].sample == len(known):
                known.append(float(scores[i]))
        batch: dict[str, list[EvalRequest]] = {}  # each genome once, with its requests in batch order
        for key, request in zip(keys, requests):
            batch.setdefault(key, []).append(request)
        entering = [key for key, asked in batch.items()
                    if self._short(key) and any(self.would_enter(r, self._value(key)) for r in asked)]
        self._complete(step, entering, batch)
        while True:  # the batch's best, when it beats the best found so far, must rest on K trainings
            top = max(batch, key=self._value)
            if not (self._short(top) and self._value(top) > self._best):
                break
            self._complete(step, [k for k in batch if self._short(k) and self._value(k) >= self._value(top)], batch)
        self._best = max(self._best, max(self._value(k) for k in batch))
        return [tuple(self._known[key]) for key in keys]

    def _value(self, key: str) -> float:
        return mean_fitness(self._known[key])

    def _short(self, key: str) -> bool:
        return len(self._known[key]) < self.reevaluate

    def _complete(self, step: int, keys: Sequence[str], batch: dict[str, list[EvalRequest]]) -> None:
        """Train each genome's missing samples up to K as one batch, each as its first request's
        sample (stored with that request's step and index, so a replay finds it)."""
        extra = [(key, replace(batch[key][0], sample=n))
                 for key in keys for n in range(len(self._known[key]), self.reevaluate)]
        if not extra:
            return
        for (key, _), fitness in zip(extra, self.inner(step, [request for _, request in extra])):
            self._known[key].append(float(fitness))
