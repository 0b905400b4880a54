import dataclasses

import pytest
from matplotlib.figure import Figure
from hypothesis import given
from hypothesis import strategies as st

from alife_nas.compare import (
    RunCurve,
    aggregate,
    best_so_far,
    common_budget,
    comparison_table,
    load_curve,
    plot_comparison,
    setting_differences,
    spent,
)
from alife_nas.config import SearchConfig, settings_hash
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


def test_aggregate_cuts_every_strategy_at_the_smallest_run_and_budget():
    # The shortest run (a2) has 3 trainings: neuralfinder's 5-training run is cut there too, so
    # no strategy is judged on trainings another one did not get.
    agg = aggregate(curves())
    assert agg["random"]["trainings"] == 3 and agg["random"]["median"] == [0.15000000000000002, 0.2, 0.4]
    assert agg["random"]["low"] == [0.1, 0.2, 0.3] and agg["random"]["high"] == [0.2, 0.2, 0.5]
    assert agg["neuralfinder"]["trainings"] == 3 and agg["neuralfinder"]["median"] == [0.4, 0.6, 0.6]
    assert agg["neuralfinder"]["final_median"] == 0.6 and agg["neuralfinder"]["test_median"] == 0.8
    cut = aggregate(curves(), budget=2)
    assert cut["neuralfinder"]["trainings"] == cut["random"]["trainings"] == 2
    assert cut["neuralfinder"]["final_median"] == 0.6 and cut["random"]["final_median"] == 0.2


def test_common_budget_is_the_smallest_run_and_refuses_one_some_run_lacks():
    assert common_budget(curves()) == 3
    assert common_budget(curves(), 2) == 2 and common_budget(curves(), 3) == 3
    with pytest.raises(ValueError, match="budget 4 is more than run a2 used \\(3 trainings\\); give at most 3"):
        common_budget(curves(), 4)
    with pytest.raises(ValueError, match="no runs"):
        common_budget([])


@given(st.lists(st.tuples(st.sampled_from(["neuralfinder", "random", "regularized"]),
                          st.lists(st.floats(0, 1), min_size=1, max_size=12)), min_size=1, max_size=6))
def test_every_strategy_and_every_run_in_the_table_is_cut_at_one_budget(runs):
    runs = [RunCurve(f"r{i}", strategy, i, best_so_far(f), "16", max(f)) for i, (strategy, f) in enumerate(runs)]
    shortest = min(len(r.best) for r in runs)
    agg = aggregate(runs)
    assert {a["trainings"] for a in agg.values()} == {shortest}
    for strategy, a in agg.items():
        finals = [r.best[shortest - 1] for r in runs if r.strategy == strategy]
        assert a["final_min"] == min(finals) and a["final_max"] == max(finals)
    rows = comparison_table(runs).splitlines()[1:len(runs) + 1]
    assert [float(row.split()[4]) for row in rows] == pytest.approx([r.best[shortest - 1] for r in runs], abs=5e-5)


def test_table_and_plot():
    table = comparison_table(curves())
    assert "neuralfinder" in table and "0.9000" in table and "0.8000" in table
    fig = plot_comparison(curves())
    (whole,) = fig.axes  # 3 trainings: a zoomed panel would show the same, so there is none
    assert len(whole.lines) == 5  # two medians + three runs
    assert whole.get_ylim()[0] < 0.1
    assert max(len(line.get_xdata()) for line in whole.lines) == 3  # every run cut at the common budget
    fig.canvas.draw()  # whole trainings only on the x-axis, never 1.5
    assert [t for t in whole.get_xticks() if whole.get_xlim()[0] <= t <= whole.get_xlim()[1]] == [1, 2, 3]


def test_two_panels_only_where_the_zoom_shows_something_else():
    def runs(n):
        return [RunCurve("a", "random", 1, best_so_far([i / n for i in range(n)]), "16", 0.9)]

    assert len(plot_comparison(runs(19)).axes) == 1  # a tenth of 19 is less than one training
    whole, zoomed = plot_comparison(runs(20)).axes
    assert whole.get_xlim() != zoomed.get_xlim() and zoomed.get_xlim() == (2, 20)


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
        assert curve.config == store.config and curve.settings_hash == store.settings_hash
    assert curve.strategy == "random" and curve.seed == 4 and len(curve.best) == 10
    assert curve.best == sorted(curve.best) and curve.best[-1] == pytest.approx(curve.best_fitness)
    assert curve.settings_hash == settings_hash(curve.config.cache_settings())


# --- runs that may not be compared ------------------------------------------------------------
DIGITS = {"input_shape": [1, 8, 8], "num_classes": 10, "classes": [str(i) for i in range(10)]}


def run(name, info=DIGITS, stored_hash=None, **options):
    """A curve as load_curve gives it: the run's config, recorded data set and settings hash."""
    config = SearchConfig.from_options(**options)
    return RunCurve(name, config.strategy, config.seed, [0.5, 0.6], "16", 0.6, config=config, dataset_info=info,
                    settings_hash=stored_hash or settings_hash(config.cache_settings()))


def test_runs_of_one_data_set_and_trainer_have_no_differences_whatever_their_strategy():
    runs = [run("nf", lattice=3, seed=0), run("nf2", lattice=5, seed=1, steps=40, workers=2),
            run("rs", strategy="random", budget=30, data_dir="/elsewhere"), run("re", strategy="regularized")]
    assert setting_differences(runs) == []


@pytest.mark.parametrize("options, first", [
    ({"val_size": 0.3}, "val_size: 0.2 -> 0.3"),
    ({"dataset": "mnist"}, "dataset: 'digits' -> 'mnist'"),
    ({"split_seed": 4}, "split_seed: 0 -> 4"),
    ({"dataset": "imagefolder:/data/x", "image_size": 32}, "dataset: 'digits' -> 'imagefolder:/data/x'"),
    ({"max_epochs": 7}, "max_epochs: 12 -> 7"),
    ({"preset": "paper"}, "preset: 'fast' -> 'paper'"),
    ({"lr": 0.5, "val_size": 100}, "val_size: 0.2 -> 100"),  # data first, then training
])
def test_a_run_on_other_data_or_training_settings_is_named_with_its_first_difference(options, first):
    found = setting_differences([run("a"), run("b", strategy="random"), run("c", **options)])
    assert [index for index, _ in found] == [2] and found[0][1][0] == first
    assert all(" -> " in line for line in found[0][1])


def test_every_difference_is_listed_and_an_unset_option_counts():
    found = dict(setting_differences([run("a", image_size=32, dataset="imagefolder:x"),
                                      run("b", dataset="imagefolder:x", max_epochs=9, batch_size=8)]))
    assert found[1] == ["image_size: 32 -> None", "batch_size: 128 -> 8", "max_epochs: 12 -> 9"]


def test_the_recorded_data_set_and_an_unexplained_settings_hash_differ_too():
    cifar = {"input_shape": [3, 32, 32], "num_classes": 10, "classes": None}
    found = dict(setting_differences([run("a"), run("b", info=cifar), run("c", info=None),
                                      run("d", stored_hash="0123456789abcdef")]))
    assert found[1] == ["input shape: [1, 8, 8] -> [3, 32, 32]"]  # unknown classes are not a difference
    assert 2 not in found  # a run that recorded no data set is compared on its options only
    assert found[3][0].startswith("settings hash: ")


def test_differences_need_the_configs():
    bare = [dataclasses.replace(c, config=None, settings_hash=None) for c in curves()]
    assert setting_differences(bare) == [] and setting_differences([]) == []


def test_best_mean_so_far_is_the_running_best_with_one_training_per_genome_and_follows_means_with_more():
    from alife_nas.compare import best_mean_so_far, best_so_far

    single = [("a", 0.5), ("b", 0.7), ("c", 0.6), ("d", 0.9)]
    assert best_mean_so_far(single) == best_so_far([f for _, f in single])
    # b's lucky first training leads until its second one shows a mean below c's
    trainings = [("a", 0.5), ("b", 0.9), ("c", 0.8), ("b", 0.5), ("c", 0.8)]
    assert best_mean_so_far(trainings) == [0.5, 0.9, 0.9, 0.8, 0.8]


def test_a_variant_is_grouped_under_its_own_label():
    from alife_nas.compare import strategy_label
    from alife_nas.config import SearchConfig

    assert strategy_label(SearchConfig()) == "neuralfinder"
    assert strategy_label(SearchConfig.from_options(reevaluate=2)) == "neuralfinder-re2"
    assert strategy_label(SearchConfig.from_options(better_by="error")) == "neuralfinder-error"
    assert strategy_label(SearchConfig.from_options(strategy="ga", reevaluate=3)) == "ga-re3"


def test_spend_in_epochs_cuts_each_run_where_its_epochs_run_out():
    runs = [RunCurve("full", "neuralfinder", 0, [0.5, 0.6, 0.7, 0.8], "16", 0.8, epochs=[4, 4, 4, 4]),
            RunCurve("halved", "neuralfinder-halving", 0, [0.5, 0.5, 0.75, 0.75, 0.9], "32", 0.9,
                     epochs=[4, 1, 4, 1, 1])]
    assert spent(runs[0], "epochs") == [4, 8, 12, 16] and spent(runs[1], "trainings") == [1, 2, 3, 4, 5]
    assert common_budget(runs, cost="epochs") == 11  # the halved run spent 11 epochs in all
    assert common_budget(runs, 8, cost="epochs") == 8
    with pytest.raises(ValueError, match="budget 12 is more than run halved used \\(11 epochs trained\\)"):
        common_budget(runs, 12, cost="epochs")
    agg = aggregate(runs, cost="epochs")
    assert agg["neuralfinder"]["final_median"] == 0.6 and agg["neuralfinder-halving"]["final_median"] == 0.9
    assert agg["neuralfinder"]["x"][-1] == 11 and len(agg["neuralfinder"]["x"]) == 200
    at = {row.split()[0]: float(row.split()[5]) for row in comparison_table(runs, cost="epochs").splitlines()[1:3]}
    assert at == {"full": 0.6, "halved": 0.9}
    assert isinstance(plot_comparison(runs, cost="epochs"), Figure)
    with pytest.raises(ValueError, match="run full has no stored training FLOPs"):
        spent(runs[0], "flops")
