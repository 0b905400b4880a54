"""A search: one run directory with its data, trainer, evaluator, strategy and store.

    with Search.create("runs/first", SearchConfig.from_options(lattice=3, steps=2)) as search:
        search.run(on_step=lambda s: print(s.step, s.best_fitness))

:meth:`Search.create` starts a search in a new directory, :meth:`Search.open` continues one
(also after a crash: it restarts at the last finished step, and the evaluation cache makes it
re-train at most the trainings that were in flight). :meth:`Search.run` runs steps until the
step target or the training budget is reached; after every step the strategy's state, the
lattice and the generator's state are committed with the step record in one transaction (the
two states replace the previous step's: a resume needs only the newest).

The data set is loaded once and moved to the device once, by the :class:`~alife_nas.training.Trainer`
made here, or by each worker when the ``execution`` options ask for several (worker processes,
GPUs, a Ray cluster: :mod:`alife_nas.executors`). A ``score`` function may replace the trainer
(tests use a cheap deterministic one). One process writes a run at a time: a second writer is
refused while the first holds the run's lock.
"""
from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from alife_nas.config import (
    SAFE_TO_CHANGE,
    ConfigError,
    SearchConfig,
    continuing_device,
    settings_hash,
)
from alife_nas.contract import Evaluator, init_keywords, would_enter
from alife_nas.feasibility import (
    HELPS,
    REFUSE_ABOVE,
    Feasibility,
    check_init_genomes_fit,
    check_initial_population,
)
from alife_nas.inheritance import WeightsFolder
from alife_nas.evaluation import CachedEvaluator, Halving, Reevaluating, ResultCallback, ScoreFn, halving_rung
from alife_nas.executors import ProgressFn, check_available, executor_name, make_executor
from alife_nas.store import RunStore, StepRow, rank_key, refuse_existing_run, run_files
from alife_nas.strategies import STRATEGIES

__all__ = ["Search", "Summary", "read_status"]


@dataclass(frozen=True)
class Summary:
    """Where a search stands: for progress lines and the end of a run."""

    step: int  # evolution steps finished (initialisation not counted)
    trainings: int
    cache_hits: int
    failures: int
    best_genome: str | None  # the fittest training so far
    best_fitness: float
    mean: float  # over the genomes the strategy holds now (the lattice, the population)
    worst: float
    finished: bool
    record: dict | None = None  # the record of the step just finished, when there is one


class Search:
    """One search, ready to run. Make it with :meth:`create` or :meth:`open`; close it after."""

    def __init__(self, store: RunStore, config: SearchConfig, *, data: Any = None, score: ScoreFn | None = None) -> None:
        store.lock_for_writing()
        self.store = store
        self.config = config
        self.data = data
        self.changes: list[str] = []  # what Search.open changed ("steps: 6 -> 8", ...)
        self.feasibility: Feasibility | None = None  # set by create when the data set's shape is known
        self.device_note: str | None = None  # set by open when the run goes on on another kind of device
        self.executor = make_executor(config, score, data)
        self.strategy = STRATEGIES[config.strategy](config.method)
        #: --inherit-weights: the trained weights of what the strategy holds, in RUN/weights
        self.weights = (WeightsFolder(store.run_dir, store.settings_hash)
                        if getattr(config.method, "inherit_weights", False) else None)
        share = getattr(config.method, "inherited_epochs", 1.0)
        self.evaluator = CachedEvaluator(store, self.executor, config.seed, config.device, prune=config.fitness.prune,
                                         weights=self.weights,
                                         inherited_epochs=math.ceil(share * config.training.max_epochs))
        #: What the strategy scores through: the cache itself, or with --reevaluate K > 1 the
        #: re-training gate over it (K = 1 leaves the seed's protocol untouched).
        self.evaluate: Evaluator = self.evaluator
        if config.fitness.prune == "halving":
            self.evaluate = Halving(self.evaluator, halving_rung(config.training.max_epochs))
        if config.fitness.reevaluate > 1:
            self.evaluate = Reevaluating(self.evaluator, config.fitness.reevaluate,
                                         lambda request, fitness: would_enter(self.strategy, request, fitness))
        self.rng = np.random.default_rng(config.seed)
        last = store.last_step()
        if last is not None:
            self.strategy.load_state(last.strategy_state, last.lattice)
            self.rng.bit_generator.state = last.rng_state
        self._tidy_weights()

    def _tidy_weights(self) -> None:
        """``--inherit-weights``: remove the weights no cell holds, but keep those of trainings
        stored for the step about to run (a killed attempt's: a replay finds them as the first
        attempt had them), so every step starts from the same files, killed or not."""
        if self.weights is None:
            return
        held = set(getattr(self.strategy, "held_weights", lambda: [])())
        upcoming = self.steps_done + 1 if self.store.initialized else 0
        self.weights.keep(held | set(self.store.genome_keys(from_step=upcoming)))

    def initial_trainings(self) -> int:
        """How many genomes the run's step 0 asks to score, its known genomes (``init_genomes``) included."""
        return self.strategy.initial_trainings(**init_keywords(self.config.init_genomes))

    # --- making one ------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: str | Path, config: SearchConfig | None = None, *, score: ScoreFn | None = None,
               data: Any = None, download: bool = False, force: bool = False) -> "Search":
        """Start a search in ``run_dir`` (refused when it already holds a run).

        When the data set's shape is known, the run's initial genomes are checked against the
        size caps first (:mod:`alife_nas.feasibility`; the result is ``search.feasibility``): more
        than a quarter refused raises ConfigError naming what helps, unless ``force``.
        Without ``score`` the data set is loaded (``download`` fetches a missing torchvision
        set) and every candidate is trained for real on ``config.device``. Nothing is written
        before the config, the devices and the data set have been checked; a creation refused
        after that (Ray cannot be reached, workers cannot start) or interrupted removes what it
        made: ``run_dir`` is left as it was (absent, or as it was found).
        """
        config = config or SearchConfig()
        check_init_genomes_fit(config)  # more known genomes than the lattice or population holds
        refuse_existing_run(run_dir)  # before the data set is loaded for nothing
        config = dataclasses.replace(config, device=_resolve_device(config.device, real=score is None))
        check_available(config)
        _check_worker_devices(config, real=score is None)
        if score is None and data is None:
            data = _load(config, download)
        info = None
        feasibility = None
        if data is not None:
            info = {"input_shape": list(data.input_shape), "num_classes": int(data.num_classes), "classes": data.classes}
            if callable(getattr(data, "sizes", None)):
                info["sizes"] = data.sizes()  # train/val/test images: what a training's cost counts
            train_images = len(data.train_y) if hasattr(data, "train_y") else None
            feasibility = check_initial_population(config, data.input_shape, int(data.num_classes), train_images)
            if feasibility.too_much and not force:
                raise ConfigError(f"{feasibility.line()}; more than {REFUSE_ABOVE:.0%} is refused before any training: "
                                  f"try {HELPS} (or --force to run anyway)")
        made, had = _missing_folders(Path(run_dir)), {p.name for p in run_files(run_dir) if p.exists()}
        store = None
        try:
            store = RunStore.create(run_dir, config, settings_hash(config.cache_settings()), info)
            search = cls(store, config, data=data, score=score)
            search.feasibility = feasibility
            return search
        except BaseException:
            if store is not None:
                store.close()
            _undo_creation(Path(run_dir), made, had)
            raise

    @classmethod
    def open(cls, run_dir: str | Path, *, score: ScoreFn | None = None, data: Any = None, download: bool = False,
             **options: Any) -> "Search":
        """Continue the search in ``run_dir``.

        ``options`` (flat names, None = keep) may change those in ``SAFE_TO_CHANGE`` (steps,
        budget, device, data_dir and the execution options); any other option given must equal
        the run's, else ConfigError lists the differences. Changes are stored and logged in the
        run's events.
        """
        store = RunStore.open(run_dir)
        try:
            stored = store.config
            problems = stored.differences({k: v for k, v in options.items() if k not in SAFE_TO_CHANGE})
            if problems:
                raise ConfigError(f"{run_dir}: these options would change the run's results: {'; '.join(problems)}"
                                  f" (only {', '.join(SAFE_TO_CHANGE)} may change when a run goes on)")
            changes = {k: options[k] for k in SAFE_TO_CHANGE if options.get(k) is not None}
            wanted = changes.pop("device", None) or continuing_device(stored.device)
            config = stored.with_options(**changes)
            config = dataclasses.replace(config, device=_resolve_device(wanted, real=score is None))
            _check_worker_devices(config, real=score is None)
            if score is None and data is None and config.execution.serial:
                data = _load(config, download)  # serial: this process trains (workers load their own)
            store.lock_for_writing()  # before anything is written
            if store.upgrade():
                store.log_event("upgrade", "run database upgraded to the current schema")
            differences = stored.differences(config.options())
            if differences:
                store.update_config(config)
                store.log_event("resume", "; ".join(differences))
            store.log_event("resume", f"resumed at step {store.steps_done}")
            moved = device_change(store.totals()["devices"], config.device)
            if moved:
                store.log_event("resume", moved)
            search = cls(store, config, data=data, score=score)
            search.changes = differences
            search.device_note = moved
            return search
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        """Stop the workers (if any) and close the run."""
        try:
            self.executor.close()
        finally:
            self.store.close()

    def __enter__(self) -> "Search":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- progress facts --------------------------------------------------------------------
    @property
    def steps_done(self) -> int:
        return self.store.steps_done

    @property
    def trainings(self) -> int:
        return self.store.count_evaluations()

    def finished(self) -> bool:
        """True once the step target or the training budget is reached (after initialisation)."""
        if not self.store.initialized:
            return False
        stop = self.config.stop
        if stop.steps is not None and self.steps_done >= stop.steps:
            return True
        if stop.budget is not None and self.trainings >= stop.budget:
            return True
        return stop.steps is None and stop.budget is None

    def summary(self, record: dict | None = None) -> Summary:
        """Current numbers: best found so far, the population's mean and worst, totals."""
        best = self.store.best_evaluation()
        values = self.strategy.population_fitness() if self.store.initialized else []
        totals = self.store.totals()
        return Summary(
            step=self.steps_done, trainings=totals["trainings"], cache_hits=totals["cache_hits"],
            failures=totals["failures"], best_genome=None if best is None else best.genome,
            best_fitness=0.0 if best is None else best.fitness,
            mean=float(np.mean(values)) if values else 0.0, worst=float(np.min(values)) if values else 0.0,
            finished=self.finished(), record=record,
        )

    # --- the loop ----------------------------------------------------------------------------
    def run(self, on_step: Callable[[Summary], None] | None = None, on_result: ResultCallback | None = None,
            on_progress: ProgressFn | None = None, max_idle_steps: int = 1000) -> Summary:
        """Run steps until :meth:`finished`; each finished step is committed in one transaction.

        ``on_step`` gets a :class:`Summary` after each step, ``on_result`` each candidate's
        evaluation as it is stored, ``on_progress`` a :class:`~alife_nas.executors.Progress` for
        each training a worker starts, each epoch it finishes, and each worker that goes idle.
        ``max_idle_steps`` stops a budgeted search whose strategy keeps hitting the cache (a tiny
        search space can run out of new genomes); the stop is logged in the run's events.
        """
        self.evaluator.on_result, self.evaluator.on_progress = on_result, on_progress
        idle = 0
        while not self.finished():
            step = self.steps_done + 1 if self.store.initialized else 0
            self.evaluator.reset_counts()
            start = time.perf_counter()
            if isinstance(self.evaluate, Reevaluating):
                self.evaluate.begin(step)  # from the store as the step begins, also when it is replayed
            if step == 0:
                record = self.strategy.initialize(self.rng, self.evaluate, **init_keywords(self.config.init_genomes))
            else:
                record = self.strategy.step(self.rng, self.evaluate, step)
            self.store.commit_step(StepRow(
                step=step, record=record, lattice=self.strategy.lattice(), trainings=self.evaluator.trainings,
                cache_hits=self.evaluator.cache_hits, wall_time=time.perf_counter() - start,
                strategy_state=self.strategy.state(), rng_state=self.rng.bit_generator.state,
            ))
            self._tidy_weights()
            if on_step:
                on_step(self.summary(record))
            idle = idle + 1 if self.evaluator.trainings == 0 else 0
            if idle >= max_idle_steps:
                self.store.log_event("stopped", f"{idle} steps in a row trained nothing new; search space exhausted?")
                break
        return self.summary()


def _resolve_device(name: str, real: bool) -> str:
    """The device the trainings will use; ``auto`` means the CPU when nothing is really trained."""
    if not real:
        return "cpu" if name == "auto" else name
    from alife_nas.training import resolve_device

    return resolve_device(name)


def _check_worker_devices(config: SearchConfig, real: bool) -> None:
    """ConfigError now, not from a worker after the run is written, if a device of ``devices``
    is missing on this machine: the local workers' (Ray places its actors itself; a serial run
    uses ``device``)."""
    ex = config.execution
    if real and ex.devices and executor_name(config) == "local":
        for name in dict.fromkeys(ex.device_list(config.device)):
            _resolve_device(name, real=True)


def _missing_folders(run_dir: Path) -> list[Path]:
    """The folders a creation of ``run_dir`` will make (it and its missing parents), deepest first."""
    missing = []
    for path in (run_dir, *run_dir.parents):
        if os.path.lexists(path):
            break
        missing.append(path)
    return missing


def _undo_creation(run_dir: Path, made: list[Path], had: set[str]) -> None:
    """Remove what a refused :meth:`Search.create` made: the run's files that were not there
    before, then the folders it created (only while empty: nothing of anyone else's goes)."""
    for path in run_files(run_dir):
        if path.name not in had:
            try:
                path.unlink()
            except OSError:  # absent, or cannot go: the original error is the one to report
                pass
    for folder in made:
        try:
            folder.rmdir()
        except OSError:
            break


def _load(config: SearchConfig, download: bool) -> Any:
    from alife_nas.data import load_data

    return load_data(config.data, download)


def device_change(trained_on: list[str | None], device: str) -> str | None:
    """One line when a run that trained on one kind of device (cpu, cuda) goes on on another:
    fitness from a GPU (bf16 autocast) and from a CPU (fp32) are not the same numbers."""
    kinds = {d.split(":")[0] for d in trained_on if d}
    new = device.split(":")[0]
    if not kinds or kinds == {new}:
        return None
    return (f"note: this run trained on {', '.join(sorted(d for d in trained_on if d))} so far and goes on on "
            f"{device}: trainings on the two can give different fitness for the same genome and seed")


def _kept_weights(store: RunStore) -> dict[str, int] | None:
    """``--inherit-weights``: the files and bytes of trained weights the run keeps; None otherwise."""
    if not getattr(store.config.method, "inherit_weights", False):
        return None
    files, size = WeightsFolder(store.run_dir, store.settings_hash).size()
    return {"files": files, "bytes": size}


def train_images(dataset_info: dict | None) -> int | None:
    """Training images of a run's split (what a training's FLOPs count); None for a run stored
    without its split sizes."""
    try:
        return int(dataset_info["sizes"]["train"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None


def train_flops(flop_epochs: int, dataset_info: dict | None) -> int | None:
    """Training compute of a run: forward FLOPs x training images x 3 (forward and backward),
    summed over its trainings' epochs; None for a run stored without its split sizes."""
    images = train_images(dataset_info)
    return None if images is None else 3 * int(flop_epochs) * images


def read_status(store: RunStore) -> dict[str, Any]:
    """Where a stored run stands, as one JSON-safe dict (``alife-nas status --json``).

    Keys: run_dir, config (the stored config, nested, option names as everywhere), strategy,
    dataset, seed, steps, budget, reevaluate, prune, preset, head, batchnorm (the network beyond its
    genome), initialized, init_trainings (the genomes the
    initialisation trains), steps_done, trainings, cache_hits, failures, pruned (trainings
    stopped by ``--prune``, counted in trainings, not failures), train_flops (the training
    compute: forward FLOPs x training images x 3 per epoch, summed; None for runs stored without
    their split sizes), weights ({files, bytes} of the trained weights kept in RUN/weights with
    ``--inherit-weights``; None without), failures_by_kind (kind ->
    count, an example reason and genome), epochs, train_seconds,
    devices, lattice (L×L of {genome, fitness}, or None), best and best_in_lattice. ``best`` is
    the best genome by :func:`~alife_nas.store.rank_key` (failures left out; None before a
    training succeeded), the one ``export`` ranks first; it and
    ``best_in_lattice`` (whose fitness is what its cell holds) carry ``samples``, the genome's
    trainings, and ``fitness_range``, [lowest, highest] of them or None for one. Reads only:
    works while another process writes the run.
    """
    config = store.config
    totals = store.totals()
    last = store.last_step()
    lattice = None
    best_cell = None
    if last is not None and last.lattice is not None:
        snap = last.lattice
        lattice = [[{"genome": g, "fitness": f} for g, f in zip(grow, frow)]
                   for grow, frow in zip(snap["genomes"], snap["fitness"])]
        first = {ev.genome: (ev.params, ev.order) for ev in reversed(store.evaluations())}  # each genome's first

        def cell_key(r: int, k: int) -> tuple:  # rank_key, then the cell's place for one genome in two cells
            genome, fit = lattice[r][k]["genome"], lattice[r][k]["fitness"]
            return (rank_key(fit, *first.get(genome, (None, None)), genome), r, k)

        r, k = min(((r, k) for r, row in enumerate(lattice) for k in range(len(row))), key=lambda rk: cell_key(*rk))
        best_cell = {"genome": lattice[r][k]["genome"], "fitness": lattice[r][k]["fitness"], "cell": [r, k]}
    best = store.best_evaluation()
    stats = store.genome_fitness()

    def spread(genome: str) -> dict[str, Any]:
        known = stats.get(genome)
        if known is None:  # e.g. a lattice of a run stored without its trainings
            return {"samples": 0, "fitness_range": None}
        return {"samples": known.samples, "fitness_range": None if known.spread is None else list(known.spread)}

    if best_cell is not None:
        best_cell.update(spread(best_cell["genome"]))
    return {
        "run_dir": str(store.run_dir),
        "config": config.to_dict(),
        "strategy": config.strategy,
        "dataset": config.data.dataset,
        "seed": config.seed,
        "steps": config.stop.steps,
        "budget": config.stop.budget,
        "reevaluate": config.fitness.reevaluate,
        "prune": config.fitness.prune,
        "preset": config.training.preset,
        "head": config.training.head,
        "batchnorm": config.training.batchnorm,
        "initialized": store.initialized,
        "init_trainings": STRATEGIES[config.strategy](config.method).initial_trainings(
            **init_keywords(config.init_genomes)),
        "steps_done": totals["steps_done"],
        "trainings": totals["trainings"],
        "cache_hits": totals["cache_hits"],
        "failures": totals["failures"],
        "pruned": totals["pruned"],
        "failures_by_kind": store.failures_by_kind(),
        "epochs": totals["epochs"],
        "train_flops": train_flops(totals["flop_epochs"], store.dataset_info),
        "weights": _kept_weights(store),
        "train_seconds": round(totals["train_seconds"], 3),
        "devices": totals["devices"],
        "lattice": lattice,
        "best": None if best is None else {"genome": best.genome, "fitness": best.fitness, "params": best.params,
                                           "step": best.step, **spread(best.genome)},
        "best_in_lattice": best_cell,
    }
