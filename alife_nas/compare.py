"""Comparing runs fairly: best fitness found against the number of trainings used.

Trainings (not steps) are the x-axis because they are what a search pays for; cache hits are
free. Runs of the same strategy (different seeds) are aggregated into a median with a min–max
band. matplotlib is imported only inside :func:`plot_comparison`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["RunCurve", "best_so_far", "load_curve", "aggregate", "comparison_table", "plot_comparison"]


@dataclass
class RunCurve:
    """One run's history: best fitness after each training, and its best architecture."""

    name: str
    strategy: str
    seed: int
    best: list[float]  # best[i] = best fitness after i+1 trainings
    best_genome: str | None
    best_fitness: float
    test_accuracy: float | None = None


def best_so_far(fitness: Sequence[float]) -> list[float]:
    """Running maximum of fitness values in training order."""
    return np.maximum.accumulate(np.asarray(fitness, dtype=float)).tolist() if len(fitness) else []


def load_curve(store: Any, name: str) -> RunCurve:
    """A run's curve from its store (evaluations in training order)."""
    evals = store.evaluations()
    config = store.config
    best = store.best_evaluation()
    return RunCurve(name=name, strategy=config.strategy, seed=config.seed,
                    best=best_so_far([e.fitness for e in evals]),
                    best_genome=None if best is None else best.genome,
                    best_fitness=0.0 if best is None else best.fitness)


def aggregate(curves: Sequence[RunCurve], budget: int | None = None) -> dict[str, dict]:
    """Per strategy: median, min and max best-so-far at every training count up to ``budget``.

    ``budget`` defaults to the shortest run of the strategy, so every point has every seed.
    """
    groups: dict[str, list[RunCurve]] = {}
    for curve in curves:
        groups.setdefault(curve.strategy, []).append(curve)
    out = {}
    for strategy, members in groups.items():
        n = min(len(c.best) for c in members)
        if budget is not None:
            n = min(n, budget)
        matrix = np.array([c.best[:n] for c in members]) if n else np.zeros((len(members), 0))
        finals = matrix[:, -1] if n else np.zeros(len(members))
        tests = [c.test_accuracy for c in members if c.test_accuracy is not None]
        out[strategy] = {
            "runs": [c.name for c in members],
            "seeds": [c.seed for c in members],
            "trainings": n,
            "median": np.median(matrix, axis=0).tolist() if n else [],
            "low": matrix.min(axis=0).tolist() if n else [],
            "high": matrix.max(axis=0).tolist() if n else [],
            "final_median": float(np.median(finals)),
            "final_min": float(finals.min()),
            "final_max": float(finals.max()),
            "test_median": float(np.median(tests)) if tests else None,
        }
    return out


def comparison_table(curves: Sequence[RunCurve], budget: int | None = None) -> str:
    """A plain-text table: one line per run, then one per strategy (median and spread)."""
    agg = aggregate(curves, budget)
    lines = [f"{'run':<28} {'strategy':<13} {'seed':>4} {'trainings':>9} {'best@budget':>11} {'best':>7} {'test':>7}  best genome"]
    for c in curves:
        n = agg[c.strategy]["trainings"]
        at = c.best[n - 1] if n else 0.0
        test = "-" if c.test_accuracy is None else f"{c.test_accuracy:.4f}"
        lines.append(f"{c.name[-28:]:<28} {c.strategy:<13} {c.seed:>4} {len(c.best):>9} {at:>11.4f} "
                     f"{c.best_fitness:>7.4f} {test:>7}  {c.best_genome}")
    lines.append("")
    lines.append(f"{'strategy':<13} {'runs':>4} {'budget':>6} {'median':>7} {'min':>7} {'max':>7} {'test median':>11}")
    for strategy, a in agg.items():
        test = "-" if a["test_median"] is None else f"{a['test_median']:.4f}"
        lines.append(f"{strategy:<13} {len(a['runs']):>4} {a['trainings']:>6} {a['final_median']:>7.4f} "
                     f"{a['final_min']:>7.4f} {a['final_max']:>7.4f} {test:>11}")
    return "\n".join(lines)


def plot_comparison(curves: Sequence[RunCurve], ax: Any = None, budget: int | None = None, zoom: bool = False) -> Any:
    """Best fitness against trainings: a thin line per run, median and min–max band per strategy.

    Without ``ax`` the figure has two panels: the whole run, and ``zoom`` — the same curves after
    the first tenth of the budget with the y-axis fitted to them, because methods on one data set
    usually end within a point or two of each other and the early climb flattens them otherwise.
    """
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(12, 4.5), layout="constrained")
        whole, zoomed = fig.subplots(1, 2)
        plot_comparison(curves, whole, budget)
        plot_comparison(curves, zoomed, budget, zoom=True)
        return fig
    agg = aggregate(curves, budget)
    colours = {}
    for i, (strategy, a) in enumerate(sorted(agg.items())):
        colour = f"C{i}"
        colours[strategy] = colour
        x = np.arange(1, a["trainings"] + 1)
        if len(x):
            ax.fill_between(x, a["low"], a["high"], color=colour, alpha=0.18, linewidth=0)
            ax.plot(x, a["median"], color=colour, linewidth=2, label=f"{strategy} (median of {len(a['runs'])})")
    for c in curves:
        best = c.best[:budget] if budget else c.best  # the step that crossed the budget may overshoot it
        ax.plot(np.arange(1, len(best) + 1), best, color=colours[c.strategy], linewidth=0.7, alpha=0.5)
    ax.set_xlabel("trainings used")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title("Best fitness found against trainings")
    if zoom:
        _zoom_on_the_late_part(ax, [c.best[:budget] if budget else c.best for c in curves], agg)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return ax.figure


def _zoom_on_the_late_part(ax: Any, runs: Sequence[Sequence[float]], agg: dict) -> None:
    """Limit the axes to trainings after the first tenth, y fitted to every curve drawn there."""
    end = max([len(best) for best in runs] + [a["trainings"] for a in agg.values()] + [1])
    start = max(1, end // 10)
    late = [np.asarray(best[start - 1:], dtype=float) for best in runs]
    late += [np.asarray(a[key][start - 1:], dtype=float) for a in agg.values() for key in ("low", "high")]
    values = np.concatenate([v for v in late if v.size] or [np.zeros(1)])
    low, high = float(values.min()), float(values.max())
    pad = max(0.002, 0.08 * (high - low))
    ax.set_xlim(start, end)
    ax.set_ylim(low - pad, high + pad)
    ax.set_title(f"Zoomed: trainings {start}–{end}")
