"""A run: a strategy, a scorer and a run store, advanced step by step and resumable exactly.

``Run.create`` starts one in a directory, ``Run.open`` continues one. ``Run.advance`` runs steps
until the step target or the training budget is reached. After every step the strategy's state
and the generator's state are committed with the step record, so a restarted process picks up
at the last finished step and, thanks to the evaluation cache, re-trains at most the one
training that was in flight.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Callable

import numpy as np

from alife_nas.evaluation import CachedEvaluator, ScoreFn, settings_hash
from alife_nas.genome import DEFAULT_FILTERS
from alife_nas.store import RunStore

__all__ = ["RunConfig", "Run", "SAFE_TO_CHANGE", "config_differences", "make_strategy"]

#: Config keys that a resume may change without changing results.
SAFE_TO_CHANGE = ("steps", "budget", "device", "data_dir")


@dataclass
class RunConfig:
    """Everything that defines a run. ``settings`` is the trainer's full settings dict."""

    strategy: str = "neuralfinder"
    dataset: str = "digits"
    data_dir: str = "data"
    val_size: float = 0.2
    seed: int = 0
    steps: int | None = 30
    budget: int | None = None
    device: str = "cpu"
    # NeuralFinder
    lattice: int = 9
    radius: int = 1
    torus: bool = True
    ratio: float = 0.02
    master_selection: str = "uniform"
    filters: list[int] = field(default_factory=lambda: list(DEFAULT_FILTERS))
    # baselines
    population: int = 20
    tournament: int = 5
    random_max_layers: int = 12
    # training (full settings of the trainer, filled in when the run is created)
    settings: dict = field(default_factory=dict)
    # what the data set looks like (filled in when the run is created; used by exports)
    input_shape: list[int] | None = None
    num_classes: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def result_settings(self) -> dict:
        """What a training's result depends on: the cache is keyed on a hash of this."""
        return {"dataset": self.dataset, "val_size": self.val_size, "settings": self.settings}


def config_differences(stored: dict, given: dict) -> list[str]:
    """Human-readable 'key: stored -> given' lines for every given value that differs."""
    lines = []
    for key, value in given.items():
        if value is None or key not in stored:
            continue
        old = stored[key]
        if isinstance(old, list) and isinstance(value, (tuple, list)):
            value = list(value)
        if old != value:
            lines.append(f"{key}: {old!r} -> {value!r}")
    return lines


def make_strategy(config: RunConfig):
    """The strategy object named by the config (see ``alife_nas.strategies``)."""
    from alife_nas.strategies import STRATEGIES

    try:
        cls = STRATEGIES[config.strategy]
    except KeyError:
        raise ValueError(f"unknown strategy {config.strategy!r}; choose from {', '.join(STRATEGIES)}") from None
    return cls.from_run_config(config)


StepCallback = Callable[[dict, "Run"], None]


class Run:
    """One run directory, ready to advance."""

    def __init__(self, store: RunStore, config: RunConfig, score: ScoreFn,
                 on_result: Callable | None = None) -> None:
        self.store = store
        self.config = config
        self.strategy = make_strategy(config)
        self.evaluator = CachedEvaluator(store, score, config.seed, config.device, on_result)
        self.rng = np.random.default_rng(config.seed)
        last = store.last_step()
        if last is not None:
            self.strategy.load_state(last["strategy_state"])
            self.rng.bit_generator.state = last["rng_state"]

    @classmethod
    def create(cls, run_dir: str, config: RunConfig, score: ScoreFn, on_result: Callable | None = None) -> "Run":
        make_strategy(config)  # refuse a bad strategy config before anything is written
        store = RunStore.create(run_dir, config.to_dict(), settings_hash(config.result_settings()))
        return cls(store, config, score, on_result)

    @classmethod
    def open(cls, store: RunStore, score: ScoreFn, on_result: Callable | None = None) -> "Run":
        return cls(store, RunConfig.from_dict(store.config), score, on_result)

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
        if self.config.steps is not None and self.steps_done >= self.config.steps:
            return True
        if self.config.budget is not None and self.trainings >= self.config.budget:
            return True
        return self.config.steps is None and self.config.budget is None

    # --- the loop ----------------------------------------------------------------------------
    def advance(self, on_step: StepCallback | None = None, max_idle_steps: int = 1000) -> None:
        """Run steps until :meth:`finished`; each finished step is committed in one transaction.

        ``max_idle_steps`` stops a budgeted run whose strategy keeps hitting the cache (a tiny
        search space can run out of new genomes).
        """
        idle = 0
        while not self.finished():
            step = self.steps_done + 1 if self.store.initialized else 0
            self.evaluator.reset_counts()
            start = time.perf_counter()
            if step == 0:
                record = self.strategy.initialize(self.rng, self.evaluator)
            else:
                record = self.strategy.step(self.rng, self.evaluator, step)
            self.store.commit_step(
                step, record, self.strategy.lattice_snapshot(), self.strategy.state(),
                self.rng.bit_generator.state, self.evaluator.trainings, self.evaluator.cache_hits,
                time.perf_counter() - start,
            )
            if on_step:
                on_step(record, self)
            idle = idle + 1 if self.evaluator.trainings == 0 else 0
            if idle >= max_idle_steps:
                self.store.log_event("stopped", f"{idle} steps in a row trained nothing new; search space exhausted?")
                break

    def summary(self) -> dict:
        """Current numbers for log lines: best found so far, the population's mean and worst."""
        best = self.store.best_evaluation()
        values = self.strategy.population_fitness()
        return {
            "step": self.steps_done,
            "best": {"genome": best["genome"], "fitness": best["fitness"]} if best else {"genome": None, "fitness": 0.0},
            "mean": float(np.mean(values)) if values else 0.0,
            "worst": float(np.min(values)) if values else 0.0,
            **self.store.totals(),
        }
