"""Picture functions on plain data: lattice heatmaps, curves, frames and GIFs (headless)."""
from __future__ import annotations

import errno
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from matplotlib import colors as mcolors
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image, ImageSequence

from alife_nas import run_history
from alife_nas import visualize as viz
from alife_nas.config import SearchConfig
from alife_nas.store import Evaluation, StepRow


def step_row(step: int, lattice: dict | None, record: dict | None = None) -> StepRow:
    return StepRow(step=step, record=record or {}, lattice=lattice, trainings=1, cache_hits=0, wall_time=0.0)


def evaluation(order: int, fitness: float, failure: str | None = None, genome: str = "16") -> Evaluation:
    return Evaluation(order=order, genome=genome, fitness=fitness, step=0, index=order - 1, failure=failure)


class PlainStore:
    """The run store's read API on plain data: a random walk of an L x L lattice."""

    def __init__(self, size: int = 4, steps: int = 3, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.config = SearchConfig.from_options(strategy="neuralfinder", dataset="digits", lattice=size)
        self.dataset_info = {"input_shape": [1, 8, 8], "num_classes": 10, "classes": None}
        self.cache_hits = 2
        genomes = [[str(int(rng.choice([16, 32, 64]))) for _ in range(size)] for _ in range(size)]
        fitness = rng.uniform(0.8, 0.9, (size, size))
        fitness[0, 0] = 0.0  # a failed cell
        age = np.zeros((size, size), dtype=int)
        self._evals = []
        for r in range(size):
            for c in range(size):
                self._add(genomes[r][c], float(fitness[r, c]), 0)
        self._rows = [self._row(0, None, None, "init", genomes, fitness, age)]
        for step in range(1, steps + 1):
            m = (step % size, (2 * step) % size)
            p = (m[0], (m[1] + 1) % size)
            genomes[m[0]][m[1]] = genomes[m[0]][m[1]] + "-M-" + genomes[p[0]][p[1]]
            fitness[m] = min(0.99, fitness[m] + 0.05)
            age[m] = step
            self._add(genomes[m[0]][m[1]], float(fitness[m]), step)
            self._rows.append(self._row(step, m, p, "replace_master", genomes, fitness, age))

    def _add(self, genome: str, fitness: float, step: int) -> None:
        self._evals.append(Evaluation(order=len(self._evals) + 1, genome=genome, fitness=fitness, step=step,
                                      index=len(self._evals), failure=None if fitness > 0 else "non-finite loss",
                                      params=1000 * len(genome), flops=10 * len(genome)))

    @staticmethod
    def _row(step, m, p, outcome, genomes, fitness, age) -> StepRow:
        return step_row(step, {"genomes": [list(r) for r in genomes], "fitness": fitness.tolist(), "age": age.tolist()},
                        {"master": list(m) if m else None, "partner": list(p) if p else None,
                         "outcome": outcome, "max_c": None if step == 0 else 0.9})

    def step_rows(self) -> list[StepRow]:
        return self._rows

    def evaluations(self) -> list[Evaluation]:
        return self._evals


def _rectangles(fig: Figure) -> list[Rectangle]:
    ax = fig.axes[0]
    return [p for p in ax.patches if isinstance(p, Rectangle) and p.get_visible()]


# --- plot_lattice -----------------------------------------------------------------------------
def test_plot_lattice_returns_a_figure_with_values_in_cells_and_markers() -> None:
    values = np.linspace(0.8, 0.95, 81).reshape(9, 9)
    fig = viz.plot_lattice(values, title="t", label="fitness", master=(1, 2), partner=(1, 3))
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 81 and texts[0] == ".800" and texts[-1] == ".950"
    assert len(_rectangles(fig)) == 2
    assert ax.get_legend() is not None
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["partner (1, 3)", "master (1, 2)"]
    assert len(fig.axes) == 2  # the heatmap and its colorbar
    assert fig.axes[1].get_ylabel() == "fitness"


def test_text_colour_follows_the_cell_colour() -> None:
    values = np.array([[0.0, 1.0], [0.5, 0.5]])
    fig = viz.plot_lattice(values, cmap="viridis", vmin=0.0, vmax=1.0)
    by_value = {t.get_text(): t.get_color() for t in fig.axes[0].texts}
    assert by_value[".000"] == "white"  # dark purple cell
    assert by_value["1.00"] == "black"  # bright yellow cell


def test_annotation_is_automatic_by_size_and_can_be_forced() -> None:
    assert len(viz.plot_lattice(np.zeros((15, 15))).axes[0].texts) == 0
    assert len(viz.plot_lattice(np.zeros((12, 12))).axes[0].texts) == 144
    assert len(viz.plot_lattice(np.zeros((15, 15)), annotate=True, fmt=".1f").axes[0].texts) == 225
    assert len(viz.plot_lattice(np.zeros((3, 3)), annotate=False).axes[0].texts) == 0


def test_failures_and_missing_values_do_not_wash_out_the_scale() -> None:
    values = np.array([[0.0, 0.90], [0.95, np.nan]])
    fig = viz.plot_lattice(values, fail_below=1e-12)
    image = fig.axes[0].images[0]
    assert image.norm.vmin == pytest.approx(0.90) and image.norm.vmax == pytest.approx(0.95)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "fail" in texts and ".900" in texts and "" in texts  # NaN cell left blank


def test_failed_cells_are_painted_over_and_explained_in_the_legend() -> None:
    fig = viz.plot_lattice(np.array([[0.0, 0.9], [0.95, 0.92]]), fail_below=1e-12)
    ax = fig.axes[0]
    assert ax.images[1].get_array().mask.tolist() == [[False, True], [True, True]]  # the overlay
    assert ax.images[0].get_array().mask[0, 0]
    assert "failed (fitness 0)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_robust_scale_keeps_stray_low_values_from_flattening_the_rest() -> None:
    values = np.linspace(0.93, 0.98, 81).reshape(9, 9)
    values[1, 8] = 0.705
    plain = viz.plot_lattice(values).axes[0].images[0].norm
    robust_fig = viz.plot_lattice(values, robust=True)
    robust = robust_fig.axes[0].images[0].norm
    assert plain.vmin == pytest.approx(0.705) and float(plain(0.93)) > 0.8  # the rest share under a fifth
    # robust: the stray value keeps the bottom colour, the rest get all but the squeezed tail ...
    assert float(robust(0.705)) == 0.0 and float(robust(0.98)) == 1.0
    assert float(robust(0.98)) - float(robust(0.93)) > 0.35 > float(plain(0.98)) - float(plain(0.93))
    # ... and the colorbar labels the tail's bottom and marks where its linear part starts
    colorbar = robust_fig.axes[1]
    assert colorbar.get_yticks()[0] == pytest.approx(0.705) and len(colorbar.lines) == 2
    assert all(0.705 < line.get_ydata()[0] < 0.93 for line in colorbar.lines)
    values[4, 4] = 0.6  # a second stray keeps its own colour too
    colours = viz.plot_lattice(values, robust=True).axes[0].images[0].to_rgba(np.array([0.6, 0.705, 0.93]))
    assert len({tuple(c) for c in colours}) == 3
    wide = np.linspace(0.1, 0.9, 81).reshape(9, 9)  # a genuinely wide spread is left alone
    norm = viz.plot_lattice(wide, robust=True).axes[0].images[0].norm
    assert type(norm) is mcolors.Normalize and norm.vmin == pytest.approx(0.1)


def test_many_equal_cells_do_not_merge_the_colours_below_them() -> None:
    # Issue 11: a 3x3 single-step heatmap where most cells share .900 drew .726 and .760 alike,
    # because the quartiles of the cells collapsed onto .900 and fenced off everything below it.
    values = np.array([[0.9, 0.9, 0.9], [0.9, 0.726, 0.9], [0.76, 0.9, 0.92]])
    for robust in (True, False):
        image = viz.plot_lattice(values, robust=robust, fail_below=1e-12).axes[0].images[0]
        low, high, most, top = image.to_rgba(np.array([0.726, 0.76, 0.9, 0.92]))
        assert len({tuple(low), tuple(high), tuple(most), tuple(top)}) == 4
        assert viz._luminance(low) < viz._luminance(high) < viz._luminance(most) < viz._luminance(top)
    many = np.full((9, 9), 0.95)  # the same with enough distinct values for a robust fence
    many[0, :8] = np.linspace(0.94, 0.98, 8)
    many[4, 4], many[5, 5] = 0.726, 0.760
    image = viz.plot_lattice(many, robust=True, fail_below=1e-12).axes[0].images[0]
    assert len({tuple(c) for c in image.to_rgba(np.array([0.726, 0.76, 0.94, 0.95]))}) == 4


#: Lattice values as the heatmaps get them: accuracies with many ties, a few failures (0) and gaps.
_LATTICES = hnp.arrays(
    float, hnp.array_shapes(min_dims=2, max_dims=2, min_side=2, max_side=9),
    elements=st.one_of(st.sampled_from([0.0, 0.726, 0.76, 0.9, 0.9, 0.95, float("nan")]),
                       st.floats(0.0, 1.0, allow_nan=False)),
)


@settings(max_examples=40, deadline=None)
@given(values=_LATTICES, robust=st.booleans())
def test_the_colour_scale_keeps_order_and_tells_apart_values_beyond_its_tolerance(values, robust) -> None:
    image = viz.plot_lattice(values, robust=robust, fail_below=1e-12, annotate=False, colorbar=False).axes[0].images[0]
    shown = np.unique(values[np.isfinite(values) & (values >= 1e-12)])  # failures and gaps are drawn apart
    if shown.size < 2:
        return
    positions = np.asarray(image.norm(shown), dtype=float)
    colours = image.to_rgba(shown)
    assert np.all(np.diff(positions) >= 0)  # the order is kept
    # The documented tolerance (visualize.ROBUST_TAIL): 256 colours, so values 1/128 of the
    # range apart differ on a linear scale, and 1/(128 * ROBUST_TAIL) of it in a squeezed tail.
    span = shown[-1] - shown[0]
    tolerance = span / 128 / (viz.ROBUST_TAIL if robust else 1.0)
    integer = isinstance(image.norm, mcolors.BoundaryNorm)  # whole numbers: one colour each
    for (a, b), (ca, cb) in zip(zip(shown, shown[1:]), zip(colours, colours[1:])):
        if b - a >= tolerance or integer:
            assert tuple(ca) != tuple(cb), (a, b)


def test_whole_numbers_get_a_discrete_scale() -> None:
    fig = viz.plot_lattice([[1, 2], [2, 4]])
    norm = fig.axes[0].images[0].norm
    assert isinstance(norm, mcolors.BoundaryNorm)
    assert list(norm.boundaries) == [0.5, 1.5, 2.5, 3.5, 4.5]
    assert [t.get_text() for t in fig.axes[0].texts] == ["1", "2", "2", "4"]


def test_plot_lattice_draws_into_a_given_axes_and_formats() -> None:
    fig = Figure()
    ax = fig.add_subplot()
    out = viz.plot_lattice([[1, 2], [3, 4]], ax=ax, colorbar=False, fmt="{:.0f}x")
    assert out is fig and len(fig.axes) == 1
    assert [t.get_text() for t in ax.texts] == ["1x", "2x", "3x", "4x"]
    fig = viz.plot_lattice([[1000, 2_000_000], [30, 5]], log=True)
    assert isinstance(fig.axes[0].images[0].norm, mcolors.LogNorm)
    assert [t.get_text() for t in fig.axes[0].texts] == ["1.0k", "2.0M", "30", "5"]


def test_plot_lattice_rejects_non_2d_values() -> None:
    with pytest.raises(ValueError, match="2-D"):
        viz.plot_lattice([1, 2, 3])


def test_lattice_plot_update_moves_markers_and_changes_text() -> None:
    plot = viz.LatticePlot((3, 3), scale_values=np.array([0.5, 1.0]))
    plot.update(np.full((3, 3), 0.5), master=(0, 0), partner=(0, 1), changed=[(0, 0)])
    assert len(_rectangles(plot.fig)) == 2 and len(plot.flags) == 1
    plot.update(np.full((3, 3), 1.0), title="next")
    assert len(_rectangles(plot.fig)) == 0 and plot.flags == [] and plot.ax.get_legend() is None
    assert plot.ax.texts[0].get_text() == "1.00" and plot.ax.get_title() == "next"
    with pytest.raises(ValueError, match="shape"):
        plot.update(np.zeros((2, 2)))


def test_compact_number() -> None:
    assert [viz.compact_number(v) for v in (5, 950, 1200, 12_345, 1_300_000, 2.5e9)] == [
        "5", "950", "1.2k", "12k", "1.3M", "2.5G"]
    assert viz.compact_number(float("nan")) == ""


# --- curves -----------------------------------------------------------------------------------
def test_curves_return_figures_with_labelled_axes() -> None:
    fig = viz.plot_fitness_curves([0, 1, 2], [0.8, 0.85, 0.9], [0.7, 0.75, 0.8], [0.5, 0.6, 0.6])
    ax = fig.axes[0]
    assert [l.get_label() for l in ax.get_lines()] == ["best", "mean", "worst"]
    assert "step" in ax.get_xlabel() and "fitness" in ax.get_ylabel()
    fig = viz.plot_best_vs_trainings([1, 2, 3], [0.5, 0.7, 0.7], label="neuralfinder")
    ax = fig.axes[0]
    viz.plot_best_vs_trainings([1, 2], [0.6, 0.65], ax=ax, label="random")
    assert "trainings" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["neuralfinder", "random"]


def test_best_so_far_ignores_failures_and_follows_training_order() -> None:
    evs = [evaluation(2, 0.7), evaluation(1, 0.5), evaluation(3, 0.99, "oom"), evaluation(4, 0.8)]
    assert viz.best_so_far(evs) == ([1, 2, 3, 4], [0.5, 0.7, 0.7, 0.8])
    assert viz.best_so_far([evaluation(1, float("nan")), evaluation(2, 0.4)]) == ([1, 2], [0.0, 0.4])


# --- values from step rows --------------------------------------------------------------------
def test_lattice_values_for_every_metric() -> None:
    row = step_row(5, {"genomes": [["32-M-64", "16"], ["M-M", "16-16-16"]],
                       "fitness": [[0.9, 0.8], [0.0, 0.7]], "age": [[5, 0], [2, 3]]})
    assert viz.lattice_values(row, "fitness").tolist() == [[0.9, 0.8], [0.0, 0.7]]
    assert viz.lattice_values(row, "depth").tolist() == [[2, 1], [0, 3]]  # conv layers
    assert viz.lattice_values(row, "age").tolist() == [[0, 5], [3, 2]]  # steps since written
    params = viz.lattice_values(row, "params", {"16": 123, "M-M": None})
    assert params[0, 1] == 123 and math.isnan(params[0, 0]) and math.isnan(params[1, 0])
    with pytest.raises(ValueError, match="unknown metric"):
        viz.lattice_values(row, "colour")
    with pytest.raises(ValueError, match="no lattice"):
        viz.lattice_values(step_row(1, None), "fitness")


def test_params_of_genomes_never_trained_come_from_the_runs_data_shape() -> None:
    from alife_nas.genome import parse_genome
    from alife_nas.shapes import describe_genome

    store = PlainStore(size=3, steps=1)
    trained = store.evaluations()[0]
    store._evals = [trained]  # the other genomes' fitness came from elsewhere (e.g. the cache)
    genomes = {g for line in store.step_rows()[-1].lattice["genomes"] for g in line}
    lookup = run_history.params_by_genome(store, genomes)
    assert lookup[trained.genome] == trained.params
    hidden = store.config.training.hidden
    for g in genomes - {trained.genome}:
        assert lookup[g] == describe_genome(parse_genome(g), (1, 8, 8), 10, hidden).params
    store.dataset_info = None  # a run that does not record its data shape: unknown, drawn as missing
    assert set(run_history.params_by_genome(store, genomes)) == {trained.genome}


def test_lattice_series() -> None:
    store = PlainStore(size=3, steps=2)
    series = viz.lattice_series(store.step_rows() + [step_row(3, None)])  # a step without a lattice is left out
    assert series["steps"] == [0, 1, 2]
    assert series["worst"][0] == 0.0 and all(b >= m >= w for b, m, w in zip(series["best"], series["mean"], series["worst"]))


# --- rendering a (plain) run --------------------------------------------------------------------
def test_render_last_step_and_one_step(tmp_path) -> None:
    store = PlainStore(size=4, steps=3)
    written = viz.render_heatmaps(store, tmp_path / "pics")
    assert [p.name for p in written] == ["fitness_step_0003.png"]
    assert written[0].stat().st_size > 5000
    written = viz.render_heatmaps(store, tmp_path / "pics", metric="age", steps=1)
    assert [p.name for p in written] == ["age_step_0001.png"]
    with pytest.raises(ValueError, match="step 9 is not in the run"):
        viz.render_heatmaps(store, tmp_path / "pics", steps=9)
    with pytest.raises(ValueError, match="unknown metric"):
        viz.render_heatmaps(store, tmp_path / "pics", metric="colour")


def test_render_all_writes_every_frame_and_a_gif_with_one_colour_scale(tmp_path) -> None:
    store = PlainStore(size=4, steps=3)
    written = viz.render_heatmaps(store, tmp_path, metric="params", steps="all", dpi=50)
    pngs = [p for p in written if p.suffix == ".png"]
    assert [p.name for p in pngs] == [f"params_step_{i:04d}.png" for i in range(4)]
    sizes = {Image.open(p).size for p in pngs}
    assert len(sizes) == 1  # same geometry on every frame
    gif = written[-1]
    assert gif.name == "params_evolution.gif"
    with Image.open(gif) as im:
        decoded = [np.asarray(f.convert("RGB"), dtype=float) for f in ImageSequence.Iterator(im)]
        assert len(decoded) == 4 and im.size == sizes.pop()
    # frames are stored as changes over the previous one: decoding must give every frame back
    for frame, png in zip(decoded, pngs):
        assert np.abs(frame - np.asarray(Image.open(png).convert("RGB"), dtype=float)).mean() < 4


def test_render_curves(tmp_path) -> None:
    written = viz.render_curves(PlainStore(size=3, steps=2), tmp_path)
    assert [p.name for p in written] == ["fitness_curves.png", "best_vs_trainings.png"]
    assert all(p.stat().st_size > 5000 for p in written)


def test_core_import_stays_free_of_matplotlib_and_pyplot_is_never_used() -> None:
    code = (
        "import sys, alife_nas, alife_nas.export\n"
        "assert 'matplotlib' not in sys.modules, 'core imported matplotlib'\n"
        "import alife_nas.visualize\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'visualize imported pyplot'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- rounds of K masters ------------------------------------------------------------------------
def _round_store(size: int = 9) -> PlainStore:
    """A PlainStore whose last step is a round of 3 masters: two replaced cells, one did not."""
    store = PlainStore(size=size, steps=2)
    last = store._rows[-1]
    moves = [
        {"master": [1, 1], "partner": [1, 2], "outcome": "replace_master", "replaced": [[1, 1]], "max_c": 0.91},
        {"master": [5, 5], "partner": [6, 4], "outcome": "replace_both", "replaced": [[5, 5], [6, 4]], "max_c": 0.93},
        {"master": [1, 6], "partner": [0, 7], "outcome": "no_change", "replaced": [], "max_c": 0.5},
    ]
    lattice = {**last.lattice, "age": [[3 if [r, c] in ([1, 1], [5, 5], [6, 4]) else a for c, a in enumerate(row)]
                                       for r, row in enumerate(last.lattice["age"])]}
    store._rows.append(step_row(3, lattice, {"step": 3, "outcome": "round", "masters": 3, "moves": moves, "max_c": 0.93}))
    return store


def test_a_round_draws_every_master_and_partner(tmp_path, monkeypatch) -> None:
    made: list[viz.LatticePlot] = []

    class Kept(viz.LatticePlot):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(viz, "LatticePlot", Kept)
    written = viz.render_heatmaps(_round_store(), tmp_path)
    assert [p.name for p in written] == ["fitness_step_0003.png"] and written[0].stat().st_size > 5000
    plot = made[0]
    shown = {name: [p for p in pool if p.get_visible()] for name, pool in plot.markers.items()}
    assert len(shown["master"]) == 3 and len(shown["partner"]) == 3 and len(_rectangles(plot.fig)) == 6
    assert sorted(p.get_xy() for p in shown["master"]) == sorted(
        (c - 0.5 + 0.06, r - 0.5 + 0.06) for r, c in [(1, 1), (5, 5), (1, 6)])
    assert [t.get_text() for t in plot.ax.get_legend().get_texts()] == [
        "3 partners", "3 masters", "written this step", "failed (fitness 0)"]
    # the run's step target (the default 6 of the PlainStore's config), not its last finished step
    assert "step 3 / 6: round of 3 masters: 2 replaced (best candidate 0.9300)" in plot.ax.get_title()
    assert len(plot.flags) == 3


def test_rounds_and_single_steps_share_one_animation(tmp_path) -> None:
    written = viz.render_heatmaps(_round_store(size=6), tmp_path, steps="all", dpi=40)
    assert [p.name for p in written] == [f"fitness_step_{i:04d}.png" for i in range(4)] + ["fitness_evolution.gif"]
    assert len({Image.open(p).size for p in written[:-1]}) == 1


def test_lattice_plot_markers_take_one_cell_or_a_list() -> None:
    plot = viz.LatticePlot((6, 6), scale_values=np.array([0.5, 1.0]))
    plot.update(np.full((6, 6), 0.5), master=[(0, 0), (3, 3), (0, 3)], partner=[(1, 1), (4, 4), (1, 4)])
    assert len(_rectangles(plot.fig)) == 6
    plot.update(np.full((6, 6), 0.5), master=np.array([2, 2]), partner=[(2, 3)])
    assert [p.get_visible() for p in plot.markers["master"]] == [True, False, False]
    assert [t.get_text() for t in plot.ax.get_legend().get_texts()] == ["partner (2, 3)", "master (2, 2)"]
    plot.update(np.full((6, 6), 0.5), master=[], partner=None)
    assert len(_rectangles(plot.fig)) == 0 and plot.ax.get_legend() is None


def _full_disk_after(monkeypatch, cls, method: str, formats: tuple[str, ...]) -> None:
    """``cls.method`` writes its file, then the disk is full: a cut-off file and ENOSPC."""
    real = getattr(cls, method)

    def save(self, fp, *args, **kwargs):
        real(self, fp, *args, **kwargs)
        if str(kwargs.get("format", "")).lower() in formats:
            fp.truncate(fp.tell() // 2)
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(cls, method, save)


def test_a_full_disk_leaves_no_partial_heatmap_or_gif(tmp_path, monkeypatch) -> None:
    from PIL import Image as PILImage

    store = PlainStore(size=3, steps=2)
    _full_disk_after(monkeypatch, PILImage.Image, "save", ("png",))
    with pytest.raises(OSError) as caught:
        viz.render_heatmaps(store, tmp_path / "png")
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(tmp_path / "png" / "fitness_step_0002.png")
    assert os.listdir(tmp_path / "png") == []
    monkeypatch.undo()
    _full_disk_after(monkeypatch, PILImage.Image, "save", ("gif",))
    with pytest.raises(OSError, match="No space left"):
        viz.render_heatmaps(store, tmp_path / "gif", steps="all", dpi=40)
    # the frames before the GIF are whole; the GIF is not there at all
    assert sorted(os.listdir(tmp_path / "gif")) == [f"fitness_step_{i:04d}.png" for i in range(3)]
    assert all(PILImage.open(tmp_path / "gif" / name).size for name in os.listdir(tmp_path / "gif"))


def test_a_full_disk_leaves_no_partial_curve(tmp_path, monkeypatch) -> None:
    _full_disk_after(monkeypatch, Figure, "savefig", ("png",))
    with pytest.raises(OSError) as caught:
        viz.render_curves(PlainStore(size=3, steps=2), tmp_path)
    assert caught.value.filename == str(tmp_path / "fitness_curves.png") and os.listdir(tmp_path) == []




# --- cell labels (heatmap --labels) ---------------------------------------------------------------
@given(st.lists(st.sampled_from(["16", "32", "512", "M", "65536"]), min_size=1, max_size=40),
       st.integers(3, 16), st.integers(1, 8))
def test_a_wrapped_genome_reads_as_the_genome_or_its_start_and_an_ellipsis(layers, width, lines) -> None:
    genome = "-".join(layers)
    text = viz.wrap_genome(genome, width, lines)
    rows = text.split("\n")
    assert 1 <= len(rows) <= lines
    if text.endswith("…"):  # shortened: what is shown is the genome's start
        assert genome.startswith(text[:-1].replace("\n", "")) and len(text.replace("\n", "")) - 1 < len(genome)
    else:  # the whole genome, broken only after a '-'
        assert text.replace("\n", "") == genome
        assert all(row.endswith("-") for row in rows[:-1])
    # a line is over the width only by its closing '-' or when one layer alone is wider
    assert all(len(row.rstrip("-…")) <= width or "-" not in row.rstrip("-") for row in rows)


def test_genome_labels_are_the_genomes_of_the_cells(tmp_path, monkeypatch) -> None:
    genomes = [["16", "32-M-64", "-".join(["512"] * 60)],  # too long for a cell even of a 3×3 lattice
               ["M-16", "64-M", "16"], ["32", "16-16", "128-M"]]
    lattice = {"genomes": genomes, "fitness": [[0.5, 0.0, 0.9], [0.6, 0.7, 0.8], [0.1, 0.2, 0.3]],
               "age": [[0] * 3] * 3}
    row = step_row(0, lattice, {"outcome": "init"})
    texts = viz.cell_labels(row, "genome")
    flat = [t.replace("\n", "") for line in texts for t in line]
    assert flat[:2] + flat[3:] == [g for line in genomes for g in line][:2] + [g for line in genomes for g in line][3:]
    long = texts[0][2]
    assert long.endswith("…") and genomes[0][2].startswith(long[:-1].replace("\n", ""))
    _font, width, lines = viz.genome_label_layout(3)
    assert long.count("\n") == lines - 1
    assert viz.cell_labels(row, "fitness")[0] == [".500", "fail", ".900"]
    with pytest.raises(ValueError, match="fitness or genome"):
        viz.cell_labels(row, "depth")
    drawn = capture_cell_texts(monkeypatch)  # render_heatmaps writes exactly these texts into the cells

    class Store:
        config = SearchConfig.from_options(lattice=3, steps=0)

        def step_rows(self):
            return [row]

    for labels, expected in (("genome", [t for line in texts for t in line]),
                             ("fitness", [t for line in viz.cell_labels(row, "fitness") for t in line]),
                             ("none", []), (None, [".500", "fail", ".900", ".600", ".700", ".800", ".100", ".200",
                                                   ".300"])):
        drawn.clear()
        viz.render_heatmaps(Store(), tmp_path / str(labels), labels=labels, dpi=40)
        assert drawn == [expected], labels
    drawn.clear()
    viz.render_heatmaps(Store(), tmp_path / "depth", metric="depth", labels="fitness", dpi=40)
    assert drawn == [[t for line in viz.cell_labels(row, "fitness") for t in line]]  # coloured by depth, fitness written
    with pytest.raises(ValueError, match="unknown labels"):
        viz.render_heatmaps(Store(), tmp_path / "x", labels="params")


def capture_cell_texts(monkeypatch) -> list[list[str]]:
    """The texts written into the cells of every heatmap rendered from now on, one list a picture."""
    drawn: list[list[str]] = []
    real_render = viz._render

    def capture(fig, dpi):
        drawn.append([t.get_text() for t in fig.axes[0].texts])
        return real_render(fig, dpi)

    monkeypatch.setattr(viz, "_render", capture)
    return drawn
