"""A run's history as plain data for pictures: lattices, per-step series, trainings in order.

Reads what a run store holds (its step rows and evaluations) into numpy arrays and lists:
the L x L values a heatmap shows for a step (:func:`lattice_values`, one of :data:`METRICS`),
best / mean / worst lattice fitness per step (:func:`lattice_series`), the best fitness after
each training (:func:`best_so_far`), the cells a step marked or wrote, and parameter counts of
genomes. :mod:`alife_nas.visualize` draws them; nothing here imports matplotlib or torch.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from alife_nas.compare import best_so_far as running_best
from alife_nas.genome import parse_genome
from alife_nas.store import Evaluation, StepRow

__all__ = [
    "METRICS",
    "lattice_values",
    "lattice_series",
    "changed_cells",
    "record_cells",
    "params_by_genome",
    "select_steps",
    "best_so_far",
]

#: Metrics a lattice can be read as (:func:`lattice_values`), with the label a picture gives each.
METRICS: dict[str, str] = {
    "fitness": "fitness (validation accuracy)",
    "depth": "depth (number of conv layers)",
    "params": "parameters",
    "age": "age (steps since the cell was last written)",
}


def lattice_values(
    step_row: StepRow,
    metric: str,
    params_by_genome: Mapping[str, int | None] | None = None,
) -> np.ndarray:
    """The L x L array a heatmap shows for one step: fitness, depth (conv layers), params or age.

    ``age`` is how many steps ago the cell was last written (0 = written at this step). ``params``
    is looked up in ``params_by_genome`` (compact genome -> parameter count); unknown -> NaN.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    lattice = step_row.lattice
    if not lattice:
        raise ValueError(f"step {step_row.step} has no lattice (not a lattice strategy)")
    genomes = lattice["genomes"]
    if metric == "fitness":
        return np.array(lattice["fitness"], dtype=float)
    if metric == "age":
        return float(step_row.step) - np.array(lattice["age"], dtype=float)
    if metric == "depth":
        return np.array([[parse_genome(g).num_convs for g in row] for row in genomes], dtype=float)
    lookup = params_by_genome or {}

    def params_of(g: str) -> float:
        value = lookup.get(g)
        return float(value) if value is not None else math.nan

    return np.array([[params_of(g) for g in row] for row in genomes], dtype=float)


def lattice_series(step_rows: Sequence[StepRow]) -> dict[str, list[float]]:
    """Best / mean / worst lattice fitness per step, from the store's step rows."""
    out: dict[str, list[float]] = {"steps": [], "best": [], "mean": [], "worst": []}
    for row in step_rows:
        if not row.lattice:
            continue
        fit = np.array(row.lattice["fitness"], dtype=float)
        out["steps"].append(row.step)
        out["best"].append(float(np.nanmax(fit)))
        out["mean"].append(float(np.nanmean(fit)))
        out["worst"].append(float(np.nanmin(fit)))
    return out


def changed_cells(step_row: StepRow) -> list[tuple[int, int]]:
    """The cells a step wrote (none for the initial lattice)."""
    step = step_row.step
    if step == 0:
        return []
    age = step_row.lattice["age"]
    return [(r, c) for r, row in enumerate(age) for c, a in enumerate(row) if int(a) == step]


def _cell(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    return int(value[0]), int(value[1])


def record_cells(record: Mapping[str, Any], key: str) -> list[tuple[int, int]]:
    """A record's ``master`` or ``partner`` cells: one for a step, one per move for a round of K masters."""
    moves = record.get("moves")
    sources = moves if isinstance(moves, list) else [record]
    return [cell for cell in (_cell(source.get(key)) for source in sources) if cell is not None]


def params_by_genome(store: Any, genomes: set[str]) -> dict[str, int | None]:
    """Parameter count of each genome: as trained, else computed for the run's data shape."""
    lookup: dict[str, int | None] = {}
    for ev in store.evaluations():
        if ev.params is not None:
            lookup.setdefault(ev.genome, ev.params)
    missing = [g for g in genomes if g not in lookup]
    info = store.dataset_info
    if missing and info:  # e.g. genomes whose fitness came from the cache: what the builder would build
        training = store.config.training
        for g in missing:
            shape = training.describe(parse_genome(g), tuple(info["input_shape"]), int(info["num_classes"]))
            lookup[g] = shape.params
    return lookup


def select_steps(rows: list[StepRow], steps: str | int) -> list[StepRow]:
    """The step rows to draw: ``'all'``, ``'last'`` or the one step numbered ``steps``."""
    if not rows:
        raise ValueError("the run has no finished step yet: nothing to draw")
    if steps == "all":
        return rows
    if steps == "last":
        return [rows[-1]]
    wanted = int(steps)
    for row in rows:
        if row.step == wanted:
            return [row]
    raise ValueError(f"step {wanted} is not in the run (finished steps: 0..{rows[-1].step})")


def best_so_far(evaluations: Sequence[Evaluation]) -> tuple[list[int], list[float]]:
    """Number of trainings 1..n and the best fitness found after each (failures count as 0)."""
    ordered = sorted(evaluations, key=lambda e: e.order)
    fitness = [ev.fitness if ev.failure is None and math.isfinite(ev.fitness) else 0.0 for ev in ordered]
    return list(range(1, len(ordered) + 1)), running_best(fitness)
