import pytest

from alife_nas.compare import (
    RunCurve,
    aggregate,
    best_so_far,
    comparison_table,
    load_curve,
    plot_comparison,
)
from alife_nas.store import RunStore
from tests.conftest import run_search


def test_best_so_far():
    assert best_so_far([0.1, 0.3, 0.2, 0.5, 0.4]) == [0.1, 0.3, 0.3, 0.5, 0.5]
    assert best_so_far([]) == []


def curves():
    return [
        RunCurve("a1", "random", 1, [0.1, 0.2, 0.3, 0.3], "16", 0.3),
        RunCurve("a2", "random", 2, [0.2, 0.2, 0.5], "32", 0.5),
        RunCurve("b1", "neuralfinder", 1, [0.4, 0.6, 0.6, 0.7, 0.9], "16-M", 0.9, test_accuracy=0.8),
    ]


def test_aggregate_cuts_at_shortest_run_and_budget():
    agg = aggregate(curves())
    assert agg["random"]["trainings"] == 3 and agg["random"]["median"] == [0.15000000000000002, 0.2, 0.4]
    assert agg["random"]["low"] == [0.1, 0.2, 0.3] and agg["random"]["high"] == [0.2, 0.2, 0.5]
    assert agg["neuralfinder"]["final_median"] == 0.9 and agg["neuralfinder"]["test_median"] == 0.8
    cut = aggregate(curves(), budget=2)
    assert cut["neuralfinder"]["trainings"] == 2 and cut["neuralfinder"]["final_median"] == 0.6


def test_table_and_plot():
    table = comparison_table(curves())
    assert "neuralfinder" in table and "0.9000" in table and "0.8000" in table
    fig = plot_comparison(curves())
    whole, zoomed = fig.axes
    assert len(whole.lines) == 5 and len(zoomed.lines) == 5  # two medians + three runs, in each panel
    assert whole.get_ylim()[0] < 0.1


def test_zoomed_panel_fits_the_late_part():
    # A steep start (0.1) then a plateau between 0.95 and 0.97: the zoom leaves the start out.
    late = [0.1] + [0.95] * 9 + [0.96] * 5 + [0.97] * 5
    runs = [RunCurve("a", "random", 1, late, "16", 0.97), RunCurve("b", "neuralfinder", 1, [0.1] + [0.955] * 19, "32", 0.955)]
    zoomed = plot_comparison(runs).axes[1]
    assert zoomed.get_xlim() == (2, 20)
    low, high = zoomed.get_ylim()
    assert 0.94 < low < 0.95 and 0.97 < high < 0.98


def test_plot_comparison_draws_one_panel_on_a_given_ax():
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert plot_comparison(curves(), ax, zoom=True) is ax.figure and len(ax.figure.axes) == 1


def test_load_curve_from_a_real_store(tmp_path):
    run_search(tmp_path / "r", strategy="random", steps=9, seed=4)
    with RunStore.open(tmp_path / "r") as store:
        curve = load_curve(store, "r")
    assert curve.strategy == "random" and curve.seed == 4 and len(curve.best) == 10
    assert curve.best == sorted(curve.best) and curve.best[-1] == pytest.approx(curve.best_fitness)
