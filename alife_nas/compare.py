"""Comparing runs fairly: best fitness found against what the search spent.

What a search pays for is the x-axis: trainings by default (not steps; cache hits are free), or
with ``cost`` the epochs trained or the training FLOPs, which count a training stopped early
(``--prune``) for what it really cost. Every run is cut at one common budget (by default the
smallest spend among the runs), and runs whose data set or result-changing training settings differ are found by
:func:`setting_differences`, because their fitness values do not measure the same thing. Runs of
the same strategy (different seeds) are aggregated into a median with a min–max band.
matplotlib is imported only inside :func:`plot_comparison`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from alife_nas.config import SearchConfig
from alife_nas.search import train_images
from alife_nas.settings import TrainSettings

__all__ = [
    "COSTS",
    "RunCurve",
    "spent",
    "budget_text",
    "best_so_far",
    "best_mean_so_far",
    "strategy_label",
    "load_curve",
    "common_budget",
    "setting_differences",
    "aggregate",
    "comparison_table",
    "plot_comparison",
]

#: What a comparison's x-axis and budget count: trainings, epochs trained, or training FLOPs
#: (forward FLOPs x training images x 3, per epoch).
COSTS = ("trainings", "epochs", "flops")
_COST_LABEL = {"trainings": "trainings used", "epochs": "epochs trained", "flops": "training FLOPs"}
#: ... and what an amount of it is called ("45 epochs").
_COST_UNIT = {"trainings": "trainings", "epochs": "epochs", "flops": "training FLOPs"}
#: Points of the common x-grid a median is taken on when the cost is not whole trainings.
_GRID = 200

#: The data options a fitness value depends on (``data_dir`` only says where the files are).
_DATA_OPTIONS = ("dataset", "val_size", "split_seed", "image_size")
#: What the data set itself recorded in a run (``dataset_info``), with the words a message uses.
_DATASET_INFO = {"input_shape": "input shape", "num_classes": "number of classes", "classes": "class names"}


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
    config: SearchConfig | None = None  # what the run searched with (None: not known)
    dataset_info: dict | None = None  # input_shape, num_classes, classes, as the run recorded them
    settings_hash: str | None = None  # the run's evaluation-cache key of data and training settings
    epochs: list[int] | None = None  # epochs of each training, in the order of ``best`` (None: not known)
    flops: list[float | None] | None = None  # training FLOPs of each training (None where not stored)


def best_so_far(fitness: Sequence[float]) -> list[float]:
    """Running maximum of fitness values in training order."""
    return np.maximum.accumulate(np.asarray(fitness, dtype=float)).tolist() if len(fitness) else []


def load_curve(store: Any, name: str) -> RunCurve:
    """A run's curve from its store: after each training (further samples of a genome included,
    since a budget counts them), the best mean fitness of any genome so far."""
    config = store.config
    best = store.best_evaluation()
    costs = store.training_costs()
    images = train_images(store.dataset_info)  # None: a run stored before its split sizes were
    flops = [None if images is None or f is None else 3.0 * f * e * images for e, f in costs]
    return RunCurve(name=name, strategy=strategy_label(config), seed=config.seed,
                    best=best_mean_so_far(store.trainings_in_order()),
                    best_genome=None if best is None else best.genome,
                    best_fitness=0.0 if best is None else best.fitness,
                    config=config, dataset_info=store.dataset_info, settings_hash=store.settings_hash,
                    epochs=[e for e, _ in costs], flops=flops)


def spent(curve: RunCurve, cost: str = "trainings") -> list[float]:
    """What the run had spent after each of its trainings, in ``cost`` units (cumulative).

    ValueError (naming the run) when the run does not know that cost: FLOPs of a run stored
    before its split sizes were, or of a training whose FLOPs were not counted."""
    if cost not in COSTS:
        raise ValueError(f"cost must be one of {', '.join(COSTS)}, got {cost!r}")
    if cost == "trainings":
        return [float(i) for i in range(1, len(curve.best) + 1)]
    each = curve.epochs if cost == "epochs" else curve.flops
    if (each is None or len(each) != len(curve.best) or any(v is None for v in each)
            or (each and not any(each))):  # a score function that reports no epochs stores none
        raise ValueError(f"run {curve.name} has no stored {_COST_LABEL[cost]} for every training "
                         f"(a run made by an older alife_nas?); compare it by trainings or epochs")
    return np.cumsum(np.asarray(each, dtype=float)).tolist()


def _within(curve: RunCurve, budget: float, cost: str) -> int:
    """How many of the run's trainings fit in ``budget``."""
    if cost == "trainings":
        return min(int(budget), len(curve.best))
    return int(np.searchsorted(np.asarray(spent(curve, cost)), budget, side="right"))


def strategy_label(config: Any) -> str:
    """The name a run is grouped under: its strategy, with the options that make it a variant of
    it (``neuralfinder-re2``: re-evaluated twice; ``-halving``, ``-median``: pruned; ``-error``:
    compared by error rate)."""
    label = config.strategy
    reevaluate = getattr(getattr(config, "fitness", None), "reevaluate", 1)
    if reevaluate > 1:
        label += f"-re{reevaluate}"
    prune = getattr(getattr(config, "fitness", None), "prune", "none")
    if prune != "none":
        label += f"-{prune}"
    if getattr(config.method, "better_by", "accuracy") == "error":
        label += "-error"
    return label


def best_mean_so_far(trainings: Sequence[tuple[str, float]]) -> list[float]:
    """After each (genome, fitness) training, the highest mean fitness of any genome so far.

    With one training per genome this is the running maximum. With several (``--reevaluate``,
    the GA's re-trainings) it is what the search believes: it falls when new trainings show the
    leader was lucky.
    """
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    best_key, best, out = None, 0.0, []
    for key, fitness in trainings:
        sums[key] = sums.get(key, 0.0) + fitness
        counts[key] = counts.get(key, 0) + 1
        mean = sums[key] / counts[key]
        if best_key is None or mean > best:
            best_key, best = key, mean
        elif key == best_key:  # the leader's mean fell: the best is now the highest of all means
            best_key = max(sums, key=lambda k: sums[k] / counts[k])
            best = sums[best_key] / counts[best_key]
        out.append(best)
    return out


def common_budget(curves: Sequence[RunCurve], budget: float | None = None, cost: str = "trainings") -> float:
    """What every run is cut at, in ``cost`` units: ``budget``, else the smallest run's spend.

    A ``budget`` some run has not reached is refused (ValueError naming the run): its curve
    would stop short, and a run cut short is not compared at an equal budget. In trainings the
    budget is a whole number.
    """
    if not curves:
        raise ValueError("no runs to compare")
    totals = [(spent(c, cost)[-1] if c.best else 0.0) for c in curves]
    shortest = min(range(len(curves)), key=lambda i: totals[i])
    unit = "trainings" if cost == "trainings" else _COST_LABEL[cost]
    if budget is None:
        return int(totals[shortest]) if cost == "trainings" else totals[shortest]
    if budget <= 0 or (cost == "trainings" and budget < 1):
        raise ValueError(f"budget must be at least 1, got {budget}")
    if budget > totals[shortest]:
        have = _amount(totals[shortest], cost)
        raise ValueError(f"budget {_amount(budget, cost)} is more than run {curves[shortest].name} used "
                         f"({have} {unit}); give at most {have}")
    return budget


def _amount(value: float, cost: str) -> str:
    return f"{value:.3g}" if cost == "flops" else f"{value:g}"


def budget_text(value: float, cost: str) -> str:
    """An amount spent, for a message: ``45 epochs``, ``2.1e+12 training FLOPs``."""
    return f"{_amount(value, cost)} {_COST_UNIT[cost]}"


def setting_differences(curves: Sequence[RunCurve]) -> list[tuple[int, list[str]]]:
    """``(index, differences)`` for every run whose data set or training settings differ from the
    first run's: ``'name: first -> this'``, data options first, then the data set's recorded
    shape and classes, then training settings.

    A difference in the stored settings hash that no option explains (runs written by different
    versions) is reported too. Runs whose config or dataset info is unknown are compared on what
    is known.
    """
    if not curves:
        return []
    found = [(index, _differences(curves[0], curve)) for index, curve in enumerate(curves) if index]
    return [(index, differences) for index, differences in found if differences]


def _differences(ours: RunCurve, theirs: RunCurve) -> list[str]:
    """What differs between two runs' data and training settings (see :func:`setting_differences`)."""
    found: list[str] = []
    if ours.config is not None and theirs.config is not None:
        mine, other = ours.config.options(), theirs.config.options()
        training = tuple(f.name for f in dataclasses.fields(TrainSettings))
        for keys in (_DATA_OPTIONS, training):
            # differences() reads the values as a config stores them, and names each option that differs
            found += ours.config.differences({key: other[key] for key in keys})
            # ... but takes None for "not given": an option set in the first run and unset here
            found += [f"{key}: {mine[key]!r} -> None" for key in keys if other[key] is None and mine[key] is not None]
            if keys is _DATA_OPTIONS and ours.dataset_info and theirs.dataset_info:
                for key, words in _DATASET_INFO.items():
                    a, b = ours.dataset_info.get(key), theirs.dataset_info.get(key)
                    if a is not None and b is not None and a != b:  # older runs may not record classes
                        found.append(f"{words}: {a!r} -> {b!r}")
    if not found and ours.settings_hash and theirs.settings_hash and ours.settings_hash != theirs.settings_hash:
        found.append(f"settings hash: {ours.settings_hash!r} -> {theirs.settings_hash!r} "
                     f"(the options read the same: runs of different alife_nas versions?)")
    return found


def aggregate(curves: Sequence[RunCurve], budget: float | None = None, cost: str = "trainings") -> dict[str, dict]:
    """Per strategy: median, min and max best-so-far against the spend, up to the budget.

    ``budget`` defaults to :func:`common_budget` (the smallest run's spend), so every strategy is
    cut at the same budget and every point has every seed. ``x`` is where the values are: each
    training count 1..budget, or for epochs and FLOPs a grid of points up to the budget (a run's
    value there is its best after the trainings that fit; 0 before its first).
    """
    budget = common_budget(curves, budget, cost) if curves else 0
    groups: dict[str, list[RunCurve]] = {}
    for curve in curves:
        groups.setdefault(curve.strategy, []).append(curve)
    out = {}
    for strategy, members in groups.items():
        if cost == "trainings":
            n = min([int(budget)] + [len(c.best) for c in members])
            x = list(range(1, n + 1))
            matrix = np.array([c.best[:n] for c in members]) if n else np.zeros((len(members), 0))
        else:
            x = np.linspace(budget / _GRID, budget, _GRID).tolist() if budget else []
            matrix = np.array([_best_at(c, x, cost) for c in members]) if x else np.zeros((len(members), 0))
            n = len(x)
        finals = matrix[:, -1] if n else np.zeros(len(members))
        tests = [c.test_accuracy for c in members if c.test_accuracy is not None]
        out[strategy] = {
            "runs": [c.name for c in members],
            "seeds": [c.seed for c in members],
            "trainings": n if cost == "trainings" else max(_within(c, budget, cost) for c in members),
            "x": x,
            "median": np.median(matrix, axis=0).tolist() if n else [],
            "low": matrix.min(axis=0).tolist() if n else [],
            "high": matrix.max(axis=0).tolist() if n else [],
            "final_median": float(np.median(finals)),
            "final_min": float(finals.min()),
            "final_max": float(finals.max()),
            "test_median": float(np.median(tests)) if tests else None,
        }
    return out


def _best_at(curve: RunCurve, x: Sequence[float], cost: str) -> list[float]:
    """The run's best so far at each spend in ``x`` (0 before its first training is paid for)."""
    done = np.searchsorted(np.asarray(spent(curve, cost)), np.asarray(x), side="right")
    best = np.asarray([0.0, *curve.best])
    return best[done].tolist()


def comparison_table(curves: Sequence[RunCurve], budget: float | None = None, cost: str = "trainings") -> str:
    """A plain-text table: one line per run, then one per strategy (median and spread), every run
    cut at ``budget`` in ``cost`` units (default: :func:`common_budget`)."""
    budget = common_budget(curves, budget, cost)
    agg = aggregate(curves, budget, cost)
    w = max([13, *(len(c.strategy) for c in curves)])  # a variant's label (neuralfinder-re2) is longer
    extra = "" if cost == "trainings" else f" {cost:>9}"
    lines = [f"{'run':<28} {'strategy':<{w}} {'seed':>4} {'trainings':>9}{extra} {'best@budget':>11} {'best':>7} "
             f"{'test':>7}  best genome"]
    for c in curves:
        n = _within(c, budget, cost)
        at = c.best[n - 1] if n else 0.0
        test = "-" if c.test_accuracy is None else f"{c.test_accuracy:.4f}"
        total = "" if cost == "trainings" else f" {_amount(spent(c, cost)[-1] if c.best else 0, cost):>9}"
        lines.append(f"{c.name[-28:]:<28} {c.strategy:<{w}} {c.seed:>4} {len(c.best):>9}{total} {at:>11.4f} "
                     f"{c.best_fitness:>7.4f} {test:>7}  {c.best_genome}")
    lines.append("")
    lines.append(f"{'strategy':<{w}} {'runs':>4} {'budget':>9} {'median':>7} {'min':>7} {'max':>7} {'test median':>11}")
    for strategy, a in agg.items():
        test = "-" if a["test_median"] is None else f"{a['test_median']:.4f}"
        shown_budget = str(a["trainings"]) if cost == "trainings" else _amount(budget, cost)
        lines.append(f"{strategy:<{w}} {len(a['runs']):>4} {shown_budget:>9} {a['final_median']:>7.4f} "
                     f"{a['final_min']:>7.4f} {a['final_max']:>7.4f} {test:>11}")
    return "\n".join(lines)


def plot_comparison(curves: Sequence[RunCurve], ax: Any = None, budget: float | None = None, zoom: bool = False,
                    cost: str = "trainings") -> Any:
    """Best fitness against the spend: a thin line per run, median and min–max band per strategy.

    Every run is cut at ``budget`` in ``cost`` units (default: :func:`common_budget`). Without
    ``ax`` the figure has two panels: the whole run, and ``zoom`` — the same curves after the
    first tenth of the budget with the y-axis fitted to them, because methods on one data set
    usually end within a point or two of each other and the early climb flattens them otherwise.
    Below 20 trainings the first tenth is less than one training, the zoomed panel would show the
    same as the whole one, and the figure has that one panel. Trainings are counted in whole
    numbers on the x-axis.
    """
    from matplotlib.figure import Figure

    budget = common_budget(curves, budget, cost)
    if ax is None:
        if cost == "trainings" and _zoom_start(int(budget)) == 1:  # nothing to zoom past: one panel
            fig = Figure(figsize=(7, 4.5), layout="constrained")
            plot_comparison(curves, fig.subplots(1, 1), budget, cost=cost)
            return fig
        fig = Figure(figsize=(12, 4.5), layout="constrained")
        whole, zoomed = fig.subplots(1, 2)
        plot_comparison(curves, whole, budget, cost=cost)
        plot_comparison(curves, zoomed, budget, zoom=True, cost=cost)
        return fig
    agg = aggregate(curves, budget, cost)
    colours = {}
    for i, (strategy, a) in enumerate(sorted(agg.items())):
        colour = f"C{i}"
        colours[strategy] = colour
        if a["x"]:
            step = "post" if cost != "trainings" else None
            ax.fill_between(a["x"], a["low"], a["high"], color=colour, alpha=0.18, linewidth=0, step=step)
            draw = ax.step if step else ax.plot
            kwargs = {"where": "post"} if step else {}
            draw(a["x"], a["median"], color=colour, linewidth=2, label=f"{strategy} (median of {len(a['runs'])})",
                 **kwargs)
    for c in curves:
        n = _within(c, budget, cost)  # the step that crossed the budget may overshoot it
        x = spent(c, cost)[:n]
        if cost == "trainings":
            ax.plot(x, c.best[:n], color=colours[c.strategy], linewidth=0.7, alpha=0.5)
        else:
            ax.step([*x, budget], [*c.best[:n], *c.best[n - 1:n]], where="post", color=colours[c.strategy],
                    linewidth=0.7, alpha=0.5)
    ax.set_xlabel(_COST_LABEL[cost])
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(f"Best fitness found against {_COST_UNIT[cost]}")
    if cost == "trainings":
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if zoom:
        _zoom_on_the_late_part(ax, curves, agg, budget, cost)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return ax.figure


def _zoom_start(end: int) -> int:
    """The first training the zoomed panel shows: after the first tenth of ``end`` trainings."""
    return max(1, end // 10)


def _zoom_on_the_late_part(ax: Any, curves: Sequence[RunCurve], agg: dict, budget: float, cost: str) -> None:
    """Limit the axes to the spend after its first tenth, y fitted to every curve drawn there."""
    if cost == "trainings":
        runs = [c.best[:int(budget)] for c in curves]
        end = max([len(best) for best in runs] + [a["trainings"] for a in agg.values()] + [1])
        start: float = _zoom_start(end)
        late = [np.asarray(best[int(start) - 1:], dtype=float) for best in runs]
        late += [np.asarray(a[key][int(start) - 1:], dtype=float) for a in agg.values() for key in ("low", "high")]
    else:
        end, start = budget, budget / 10
        late = [np.asarray(_best_at(c, [start, *spent(c, cost)[:_within(c, budget, cost)]], cost)) for c in curves]
        late = [v[(v > 0)] for v in late]
    values = np.concatenate([v for v in late if v.size] or [np.zeros(1)])
    low, high = float(values.min()), float(values.max())
    pad = max(0.002, 0.08 * (high - low))
    ax.set_xlim(start, end)
    ax.set_ylim(low - pad, high + pad)
    ax.set_title(f"Zoomed: {_COST_LABEL[cost]} {_amount(start, cost)}–{_amount(end, cost)}")
