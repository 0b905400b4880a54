"""Pictures of a run: lattice heatmaps (one PNG per step and an animated GIF) and fitness curves.

The ``plot_*`` functions work on plain data (numpy arrays, lists), take an optional matplotlib
``ax`` and return the :class:`~matplotlib.figure.Figure`; they never touch pyplot's global state,
so they work headless and inside other programs (no backend is chosen or changed here: figures are
drawn with the Agg canvas directly). The ``render_*`` functions read a run store (into plain data:
:mod:`alife_nas.run_history`) and write files, each whole or not at all (:func:`alife_nas.files.write_atomically`: a full disk leaves no 0-byte
picture). This module is the only place that imports matplotlib; the core never imports it.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib import colors as mcolors
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from matplotlib.path import Path as MplPath
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator

from alife_nas.files import FIGURE_DPI, HEATMAP_DPI, write_atomically
from alife_nas.run_history import (
    METRICS,
    best_so_far,
    changed_cells,
    lattice_series,
    lattice_values,
    params_by_genome,
    record_cells,
    select_steps,
)
from alife_nas.store import StepRow

__all__ = [
    "METRICS",
    "ROBUST_TAIL",
    "LatticePlot",
    "plot_lattice",
    "plot_fitness_curves",
    "plot_best_vs_trainings",
    "lattice_values",
    "lattice_series",
    "render_heatmaps",
    "LABELS",
    "cell_labels",
    "wrap_genome",
    "genome_label_layout",
    "render_curves",
    "compact_number",
    "best_so_far",
    "save_figure",
]

MASTER_COLOR = "#e6194b"  # red: the step's master s1 (every master of a round)
PARTNER_COLOR = "#ff8c00"  # orange: the step's partner s2 (every partner of a round)
UNDER_COLOR = "#3b3b3b"  # failed candidates (fitness 0, below the scale)
BAD_COLOR = "#d9d9d9"  # missing values

DEFAULT_ANNOTATE_MAX_L = 12
#: A robust colour scale squeezes values below its low fence into this bottom share of the colours.
#: With 256 colours, two values get different colours when they are 1/128 of the range apart on a
#: linear scale (above the fence: 1/128 / (1 - ROBUST_TAIL) of the fenced range); in the squeezed
#: tail at worst 1/(128 * ROBUST_TAIL) = 1/16 of the whole range.
ROBUST_TAIL = 0.125
#: A robust scale needs this many distinct values; with fewer, quartiles say nothing of outliers.
ROBUST_MIN_VALUES = 8
#: Colour maps per metric: perceptually uniform, none using the red/orange of the markers.
_CMAPS = {"fitness": "viridis", "depth": "viridis", "params": "viridis", "age": "cividis_r"}
_PARTNER_STYLE = (0, (2.5, 1.2))
_MEDIANCUT = 0  # PIL.Image.Quantize.MEDIANCUT
_NO_DITHER = 0  # PIL.Image.Dither.NONE
_CORNER_MARKER = MplPath([(-1, 1), (1, 1), (1, -1), (-1, 1)], closed=True)  # legend twin of the corner flag


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def compact_number(value: float) -> str:
    """Write a count briefly (``950``, ``12k``, ``1.3M``) so it fits in a lattice cell."""
    if value is None or not math.isfinite(value):
        return ""
    v = abs(value)
    sign = "-" if value < 0 else ""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if v >= limit:
            q = v / limit
            return f"{sign}{q:.1f}{suffix}" if q < 10 else f"{sign}{q:.0f}{suffix}"
    return f"{sign}{v:.0f}"


#: What ``heatmap --labels`` may write in the cells (None, the default: the drawn metric's values).
LABELS = ("fitness", "genome", "none")
#: The room a cell of an L×L heatmap has, in points (the axes of the default figure, about 300 points wide).
_AXES_POINTS = 300.0


def genome_label_layout(size: int) -> tuple[float, int, int]:
    """(font size, characters a line, lines) of a genome written in a cell of an ``size``×``size`` heatmap."""
    font = float(np.clip(48.0 / size, 4.0, 8.0))
    cell = _AXES_POINTS / size
    # a character of a sans-serif digit is about 0.6 of the font size wide, a line 1.2 of it high
    return font, max(3, int(cell / (0.6 * font))), max(1, int(cell / (1.2 * font)))


def wrap_genome(genome: str, width: int, lines: int) -> str:
    """A compact genome on at most ``lines`` lines of about ``width`` characters, broken after a
    ``-`` (never inside a layer); what does not fit ends in ``…``. Joined again without the line
    breaks, a genome that fits reads exactly as it is written."""
    layers = genome.split("-")
    rows: list[str] = []
    current = ""
    for n, layer in enumerate(layers):
        piece = layer + ("-" if n < len(layers) - 1 else "")
        if current and len(current) + len(piece.rstrip("-")) > width:
            rows.append(current)
            current = ""
        current += piece
    rows.append(current)
    if len(rows) > lines:
        rows = rows[:lines]
        last = rows[-1]
        rows[-1] = (last[:max(1, width - 1)] if len(last) >= width else last) + "…"
    return "\n".join(rows)


#: One cell (row, col), or several (a round's masters): what the marker arguments accept.
Cells = Sequence[int] | Iterable[Sequence[int]]


def _as_cells(value: Cells | None) -> list[tuple[int, int]]:
    """A marker argument as a list of cells: ``None`` is none, ``(r, c)`` is one, a list of cells is each."""
    if value is None:
        return []
    items = list(value)
    if len(items) == 2 and all(np.ndim(x) == 0 for x in items):  # one (r, c) pair
        return [(int(items[0]), int(items[1]))]
    return [(int(cell[0]), int(cell[1])) for cell in items]


def _new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def _luminance(rgba: Sequence[float]) -> float:
    """Relative luminance (WCAG) of an RGB colour in 0..1, to pick black or white text."""

    def lin(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (lin(float(c)) for c in rgba[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _default_formatter(values: np.ndarray, log: bool) -> Callable[[float], str]:
    finite = values[np.isfinite(values)]
    if log or (finite.size and np.nanmax(np.abs(finite)) >= 1000):
        return compact_number
    if finite.size and np.all(np.equal(np.mod(finite, 1), 0)):
        return lambda v: f"{v:.0f}"
    if finite.size and np.nanmax(np.abs(finite)) <= 1.0:
        # accuracies: ".927" reads faster than "0.927" and fits small cells
        return lambda v: f"{v:.3f}"[1:] if 0 <= v < 1 else f"{v:.2f}"
    return lambda v: f"{v:.3g}"


def _as_formatter(fmt: str | Callable[[float], str] | None, values: np.ndarray, log: bool) -> Callable[[float], str]:
    if fmt is None:
        return _default_formatter(values, log)
    if callable(fmt):
        return fmt
    if "{" in fmt:
        return lambda v: fmt.format(v)
    return lambda v: format(v, fmt)


def _scale_sample(
    scale_values: Any, shape: Sequence[int], log: bool, fail_below: float | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The values behind a colour scale: all, the finite ones, and those not failed.

    Missing values (and, on a log scale, values <= 0) say nothing about the range; failed ones
    (below ``fail_below``) are drawn apart, so they set it only when nothing else is there.
    """
    sample = np.asarray(scale_values if scale_values is not None else np.full(shape, np.nan), dtype=float)
    finite = sample[np.isfinite(sample)]
    if log:
        finite = finite[finite > 0]
    ok = finite if fail_below is None else finite[finite >= fail_below]
    if not ok.size:
        ok = finite
    return sample, finite, ok


def _scale_range(
    ok: np.ndarray, vmin: float | None, vmax: float | None, log: bool, robust: bool
) -> tuple[float, float, float | None]:
    """The colour range ``(lo, hi, fence)``: given limits, else the data's, else a default so an
    empty lattice still draws; ``fence`` (or None) is where a robust scale's squeezed tail ends.

    The fence is Q1 - 3 IQR of the *distinct* values: counting cells instead would let a lattice
    where most cells share one value collapse the quartiles onto it and fence off everything below.
    """
    lo = vmin if vmin is not None else (float(np.min(ok)) if ok.size else None)
    hi = vmax if vmax is not None else (float(np.max(ok)) if ok.size else None)
    if lo is None or hi is None:
        lo, hi = (1.0, 10.0) if log else (0.0, 1.0)
    fence = None
    distinct = np.unique(ok)
    if robust and vmin is None and distinct.size >= ROBUST_MIN_VALUES and not log:
        q1, q3 = np.percentile(distinct, [25, 75])
        low_fence = float(q1 - 3.0 * (q3 - q1))
        # squeeze only when the values below the fence would take more than their share linearly
        if lo < low_fence < hi and (low_fence - lo) / (hi - lo) > ROBUST_TAIL:
            fence = low_fence
    return lo, hi, fence


def _fenced_norm(lo: float, fence: float, hi: float) -> mcolors.Normalize:
    """A piecewise-linear norm: ``lo..fence`` onto the bottom :data:`ROBUST_TAIL` of the colours,
    ``fence..hi`` onto the rest; strictly increasing, so order and distinctness are kept."""
    knots, shares = [lo, fence, hi], [0.0, ROBUST_TAIL, 1.0]

    def forward(values: Any) -> Any:
        out = np.interp(np.ma.getdata(values), knots, shares)
        return np.ma.masked_array(out, mask=np.ma.getmask(values)) if np.ma.isMaskedArray(values) else out

    def inverse(values: Any) -> Any:
        return np.interp(np.ma.getdata(values), shares, knots)

    return mcolors.FuncNorm((forward, inverse), vmin=lo, vmax=hi)


# --------------------------------------------------------------------------------------------
# saving: whole files or none
# --------------------------------------------------------------------------------------------
def save_figure(fig: Figure, path: str | Path, dpi: float, **savefig: Any) -> Path:
    """``fig.savefig`` as a whole file or none (:func:`write_atomically`); the format is the suffix's."""
    path = Path(path)
    return write_atomically(path, lambda handle: fig.savefig(handle, format=path.suffix.lstrip(".") or "png",
                                                             dpi=dpi, **savefig))


# --------------------------------------------------------------------------------------------
# plain-data plots
# --------------------------------------------------------------------------------------------
class LatticePlot:
    """A lattice heatmap whose values, title and markers can be redrawn in place.

    Building the figure (image, grid, colorbar, one text per cell) is most of the cost of a
    picture; an animation builds it once and calls :meth:`update` per frame. ``scale_values``
    (any array, e.g. every frame of a run) sets the colour range, the number format and (with
    ``robust``) the fence of a squeezed low tail, unless ``vmin``/``vmax``/``fmt`` are given.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        ax: Axes | None = None,
        *,
        scale_values: Any = None,
        cmap: str | mcolors.Colormap = "viridis",
        vmin: float | None = None,
        vmax: float | None = None,
        label: str | None = None,
        annotate: bool | None = None,
        fmt: str | Callable[[float], str] | None = None,
        colorbar: bool = True,
        log: bool = False,
        fail_below: float | None = None,
        robust: bool = False,
        text_size: float | None = None,
    ) -> None:
        rows, cols = int(shape[0]), int(shape[1])
        self.shape = (rows, cols)
        size = max(rows, cols)
        self.fig, self.ax = _new_axes(ax, (6.4, 5.6))
        self.log = log
        self.fail_below = fail_below

        sample, finite, ok = _scale_sample(scale_values, shape, log, fail_below)
        lo, hi, fence = _scale_range(ok, vmin, vmax, log, robust)
        self._set_colour_scale(ok, lo, hi, fence, cmap, fmt)
        self._add_images()
        self._draw_grid(size)
        self.text_of = _as_formatter(fmt, finite if finite.size else sample, log)
        self._add_texts(size, size <= DEFAULT_ANNOTATE_MAX_L if annotate is None else annotate, text_size)
        self._add_markers(size)
        if colorbar:
            self._add_colorbar(ok, label)

    def _set_colour_scale(
        self, ok: np.ndarray, lo: float, hi: float, fence: float | None, cmap: str | mcolors.Colormap, fmt: Any
    ) -> None:
        """Pick the colour map and norm: discrete for few whole numbers (one colour each), else
        continuous: linear, logarithmic, or (with a robust ``fence``) linear with a squeezed low tail."""
        log = self.log
        self.integer = bool(
            not log and fmt is None and ok.size and np.all(np.equal(np.mod(ok, 1), 0)) and hi - lo <= 24
        )
        base = matplotlib.colormaps[cmap] if isinstance(cmap, str) else cmap
        self.cmap = base.with_extremes(bad=BAD_COLOR)
        self.fence: float | None = None
        if self.integer:  # a discrete scale: one colour per whole number (depth, age on short runs)
            lo, hi = math.floor(lo), math.ceil(hi)
            self.norm: mcolors.Normalize = mcolors.BoundaryNorm(np.arange(lo - 0.5, hi + 1.0, 1.0), self.cmap.N)
        else:
            if hi <= lo:  # a flat lattice: widen so the colour is mid-scale, not an edge
                pad = abs(lo) * 0.05 or 0.5
                lo, hi = lo - pad, hi + pad
                if log and lo <= 0:
                    lo = hi / 10
            if fence is not None and lo < fence < hi:
                self.norm = _fenced_norm(lo, fence, hi)
                self.fence = fence
            else:
                self.norm = mcolors.LogNorm(lo, hi) if log else mcolors.Normalize(lo, hi)
        self.lo, self.hi = lo, hi

    def _add_images(self) -> None:
        """Create the (empty) value image and, over it, the dark-grey image that paints failed cells."""
        self.image = self.ax.imshow(
            np.ma.masked_all(self.shape), cmap=self.cmap, norm=self.norm, interpolation="nearest",
            origin="upper", aspect="equal",
        )
        self.fail_image = self.ax.imshow(
            np.ma.masked_all(self.shape), cmap=mcolors.ListedColormap([UNDER_COLOR]), vmin=0, vmax=1,
            interpolation="nearest", origin="upper", aspect="equal",
        )

    def _draw_grid(self, size: int) -> None:
        """White cell borders and row/column ticks, thinned out on large lattices so they stay legible."""
        ax = self.ax
        rows, cols = self.shape
        ax.set_xticks(np.arange(-0.5, cols, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, rows, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6 if size <= 20 else 0.0)
        ax.tick_params(which="minor", length=0)
        tick_step = 1 if size <= 16 else int(math.ceil(size / 12))
        ax.set_xticks(np.arange(0, cols, tick_step))
        ax.set_yticks(np.arange(0, rows, tick_step))
        ax.tick_params(which="major", labelsize=9 if size <= 10 else 7, length=2)
        ax.set_xlabel("column", fontsize=9)
        ax.set_ylabel("row", fontsize=9)
        for spine in ax.spines.values():
            spine.set_visible(False)

    def _add_texts(self, size: int, annotate: bool, text_size: float | None = None) -> None:
        """One empty text per cell, created once so :meth:`update` only changes strings and colours;
        ``text_size``: their font size (default: by the lattice's size, for a number)."""
        self.texts: list[list[Any]] = []
        if not annotate:
            return
        rows, cols = self.shape
        fontsize = float(np.clip(64.0 / size, 5.0, 10.0)) if text_size is None else float(text_size)
        for r in range(rows):
            line = []
            for c in range(cols):
                txt = self.ax.text(c, r, "", ha="center", va="center", fontsize=fontsize)
                txt.set_in_layout(False)  # inside its cell: nothing to lay out (and much faster)
                line.append(txt)
            self.texts.append(line)

    def _add_markers(self, size: int) -> None:
        """Hidden outlines for the master and partner cells, moved and shown by :meth:`update`.

        ``markers[name]`` is a pool of outlines: one each to start, grown when a round has more.
        """
        self.lw = 2.6 if size <= 10 else 2.0
        # a dark halo keeps the red/orange outlines visible on yellow (high) and purple (low) cells alike
        self.halo = [patheffects.Stroke(linewidth=self.lw + 1.8, foreground="#1a1a1a"), patheffects.Normal()]
        self.markers: dict[str, list[Rectangle]] = {"partner": [], "master": []}
        for name in self.markers:
            self._marker_pool(name, 1)
        self.flags: list[Any] = []
        self.legend_offset = -0.10 if size <= 10 else -0.08

    def _marker_pool(self, name: str, count: int) -> list[Rectangle]:
        """At least ``count`` (hidden until placed) outlines for ``name``: 'master' or 'partner'."""
        pool = self.markers[name]
        colour, style = (MASTER_COLOR, "solid") if name == "master" else (PARTNER_COLOR, _PARTNER_STYLE)
        inset = 0.06
        while len(pool) < count:
            patch = Rectangle(
                (0, 0), 1 - 2 * inset, 1 - 2 * inset, fill=False, edgecolor=colour, linewidth=self.lw,
                linestyle=style, zorder=4, path_effects=self.halo, visible=False,
            )
            self.ax.add_patch(patch)
            pool.append(patch)
        return pool

    def _add_colorbar(self, ok: np.ndarray, label: str | None) -> None:
        """The colour key: an arrow when values fall below a given ``vmin``, a break line over a
        robust scale's squeezed tail, whole-number or compact ticks."""
        lo, hi, log = self.lo, self.hi, self.log
        below = ok.size > 0 and float(np.min(ok)) < lo and not log
        cbar = self.fig.colorbar(self.image, ax=self.ax, shrink=0.9, pad=0.02, extend="min" if below else "neither")
        if label:
            cbar.set_label(label, fontsize=9)
        cbar.ax.tick_params(labelsize=8)
        if self.fence is not None:
            # the tail's ticks would pile up in its few colours: label its bottom only, and draw
            # where the linear part starts
            linear = [t for t in MaxNLocator(nbins=6).tick_values(self.fence, hi) if self.fence <= t <= hi]
            cbar.set_ticks([lo, *linear])
            cbar.ax.minorticks_off()
            cbar.ax.axhline(self.fence, color="white", linewidth=1.6)
            cbar.ax.axhline(self.fence, color="#1a1a1a", linewidth=0.8, linestyle=(0, (2, 2)))
        if self.integer:
            cbar.set_ticks(np.arange(lo, hi + 1, max(1, math.ceil((hi - lo + 1) / 12))))
            cbar.ax.minorticks_off()
        if log or hi >= 1000:
            cbar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: compact_number(v)))
            if log:
                cbar.ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))

    def update(
        self,
        values: Any,
        *,
        title: str | None = None,
        master: Cells | None = None,
        partner: Cells | None = None,
        changed: Iterable[Sequence[int]] | None = None,
        texts: Sequence[Sequence[str | None]] | None = None,
    ) -> Figure:
        """Show ``values`` (same shape) with this title and markers; returns the figure.

        ``master`` and ``partner`` are one cell ``(r, c)`` or a list of cells (a round's masters).
        ``texts`` (one string per cell, None for none) are written in the cells instead of the values.
        """
        data = np.asarray(values, dtype=float)
        if data.shape != self.shape:
            raise ValueError(f"lattice values must have shape {self.shape}, got {data.shape}")
        failed = np.zeros(self.shape, dtype=bool)
        if self.fail_below is not None:
            failed = np.isfinite(data) & (data < self.fail_below)
        shown = np.ma.masked_invalid(data)
        if self.log:
            shown = np.ma.masked_where(~(data > 0), shown)
        self.image.set_data(np.ma.masked_where(failed, shown))
        self.fail_image.set_data(np.ma.masked_where(~failed, np.zeros(self.shape)))
        ax = self.ax
        ax.set_title(title or "", fontsize=10.5)

        for r, line in enumerate(self.texts):
            for c, txt in enumerate(line):
                v = data[r, c]
                given = None if texts is None else texts[r][c]
                if not math.isfinite(v) and given is None:
                    txt.set_text("")
                    continue
                if failed[r, c]:
                    rgba: Sequence[float] = mcolors.to_rgba(UNDER_COLOR)
                elif not math.isfinite(v) or (self.log and v <= 0):
                    rgba = mcolors.to_rgba(BAD_COLOR)
                else:
                    rgba = self.cmap(self.norm(v))
                if texts is not None:
                    txt.set_text(given or "")
                else:
                    txt.set_text("fail" if failed[r, c] else self.text_of(v))
                txt.set_color("black" if _luminance(rgba) > 0.30 else "white")

        handles = []
        for name, cells in (("partner", _as_cells(partner)), ("master", _as_cells(master))):
            pool = self._marker_pool(name, len(cells))
            for i, patch in enumerate(pool):
                patch.set_visible(i < len(cells))
                if i < len(cells):
                    r, c = cells[i]
                    patch.set_xy((c - 0.5 + 0.06, r - 0.5 + 0.06))
            if not cells:
                continue
            # one legend entry per kind: the cell when there is one, the count for a round's many
            label = f"{name} {cells[0]}" if len(cells) == 1 else f"{len(cells)} {name}s"
            handles.append(
                Line2D([], [], color=pool[0].get_edgecolor(), linewidth=self.lw, linestyle=pool[0].get_linestyle(),
                       label=label, path_effects=self.halo)
            )
        for flag in self.flags:
            flag.remove()
        self.flags = []
        for r, c in (tuple(int(x) for x in cell) for cell in (changed or [])):
            # a small white corner flag on cells written this step, outlined so it shows on light cells
            x1, y0 = c + 0.5 - 0.04, r - 0.5 + 0.04
            self.flags += ax.fill([x1 - 0.28, x1, x1], [y0, y0, y0 + 0.28], facecolor="white",
                                  edgecolor="#333333", linewidth=0.6, zorder=5)
        if self.flags:
            handles.append(
                Line2D([], [], marker=_CORNER_MARKER, markersize=9, markerfacecolor="white",
                       markeredgecolor="#333333", markeredgewidth=0.6, linestyle="none", label="written this step")
            )
        if failed.any():
            handles.append(Patch(facecolor=UNDER_COLOR, edgecolor="none", label="failed (fitness 0)"))
        old = ax.get_legend()
        if old is not None:
            old.remove()
        if handles:
            ax.legend(
                handles=handles, loc="upper center", bbox_to_anchor=(0.5, self.legend_offset),
                ncol=len(handles), fontsize=8, frameon=False, handlelength=2.2,
            )
        return self.fig


def plot_lattice(
    values: Any,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    cmap: str | mcolors.Colormap = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    label: str | None = None,
    annotate: bool | None = None,
    fmt: str | Callable[[float], str] | None = None,
    master: Cells | None = None,
    partner: Cells | None = None,
    changed: Iterable[Sequence[int]] | None = None,
    colorbar: bool = True,
    log: bool = False,
    fail_below: float | None = None,
    robust: bool = False,
) -> Figure:
    """Draw an L x L lattice as a heatmap (one square per cell) and return its figure.

    Cells below ``fail_below`` (failed candidates: fitness 0) are dark grey with "fail" written,
    NaN cells light grey, so failures do not wash out the colour scale; values below ``vmin``
    take the lowest colour and the colorbar gets an arrow. ``robust`` squeezes the values below a
    far-out low fence (Q1 - 3 IQR of the distinct values) into the bottom eighth of the colours
    (:data:`ROBUST_TAIL`), so a few stray low values do not flatten the rest; the scale stays
    strictly increasing, so distinct values keep distinct colours in their order (down to the
    tolerance :data:`ROBUST_TAIL` documents).
    Whole-number data get a discrete scale. ``master``/``partner`` are (row, col) cells (or lists
    of cells: a round's masters and partners) outlined in red/orange; ``changed`` cells (written this step) get a white corner flag. ``annotate``
    writes each value in its cell (default: only when L <= 12) in black or white by the cell's
    luminance; ``fmt`` is a format spec, a ``{}`` template or a callable. ``log`` uses a
    logarithmic colour scale.
    """
    data = np.asarray(values, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"lattice values must be a 2-D array, got shape {data.shape}")
    plot = LatticePlot(
        data.shape, ax, scale_values=data, cmap=cmap, vmin=vmin, vmax=vmax, label=label, annotate=annotate,
        fmt=fmt, colorbar=colorbar, log=log, fail_below=fail_below, robust=robust,
    )
    return plot.update(data, title=title, master=master, partner=partner, changed=changed)


def _fit_axes_to_few_points(ax: Axes) -> None:
    """Sensible axes where matplotlib's would be degenerate. Over every line drawn in data
    coordinates (so a second run drawn on the same axes counts): a single x (one step, one
    training) gets an axis of one unit around it with that one integer tick, instead of a tiny
    range like -0.045..0.045; values that are all equal get a y-axis of ±0.05 around them.
    Otherwise the axes stay matplotlib's (autoscaled)."""
    lines = [line for line in ax.get_lines() if line.get_transform() is ax.transData]
    xs = np.concatenate([np.asarray(line.get_xdata(), dtype=float) for line in lines] or [np.zeros(0)])
    ys = np.concatenate([np.asarray(line.get_ydata(), dtype=float) for line in lines] or [np.zeros(0)])
    xs, ys = xs[np.isfinite(xs)], ys[np.isfinite(ys)]
    if xs.size and xs.min() == xs.max():
        ax.set_xlim(float(xs[0]) - 0.5, float(xs[0]) + 0.5)
        ax.xaxis.set_major_locator(FixedLocator([float(xs[0])]))
    elif not ax.get_autoscalex_on():  # set for a single point by an earlier call on these axes
        ax.set_autoscalex_on(True)
        ax.autoscale_view(scaley=False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if ys.size and ys.max() - ys.min() < 1e-9:
        ax.set_ylim(float(ys[0]) - 0.05, float(ys[0]) + 0.05)
    elif not ax.get_autoscaley_on():
        ax.set_autoscaley_on(True)
        ax.autoscale_view(scalex=False)


def plot_fitness_curves(
    steps: Sequence[float],
    best: Sequence[float],
    mean: Sequence[float],
    worst: Sequence[float],
    ax: Axes | None = None,
    *,
    title: str | None = "Lattice fitness per step",
    ylabel: str = "fitness (validation accuracy)",
) -> Figure:
    """Plot best / mean / worst lattice fitness against the step (the seed's progress figure)."""
    fig, ax = _new_axes(ax, (7.0, 4.2))
    x = np.asarray(steps, dtype=float)
    b, m, w = (np.asarray(v, dtype=float) for v in (best, mean, worst))
    ax.fill_between(x, w, b, color="#440154", alpha=0.08, linewidth=0, label="_range")
    ax.plot(x, b, color="#21918c", linewidth=2.0, label="best", marker="o" if len(x) <= 30 else None, markersize=3.5)
    ax.plot(x, m, color="#3b528b", linewidth=1.6, linestyle="--", label="mean")
    ax.plot(x, w, color="#b5a300", linewidth=1.3, linestyle=":", label="worst")
    ax.set_xlabel("step (0 = initial lattice)")
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _fit_axes_to_few_points(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


def plot_best_vs_trainings(
    trainings: Sequence[float],
    best_so_far: Sequence[float],
    ax: Axes | None = None,
    label: str | None = None,
    *,
    title: str | None = "Best fitness found against trainings",
    color: str | None = None,
    init_trainings: int | None = None,
) -> Figure:
    """Plot the best fitness found so far against the number of trainings (comparable across methods).

    Call it again with the same ``ax`` and another ``label`` to compare runs on one plot.
    ``init_trainings`` marks where the initial population's trainings end (a dashed line), when
    any training comes after them.
    """
    fig, ax = _new_axes(ax, (7.0, 4.2))
    x = np.asarray(trainings, dtype=float)
    y = np.asarray(best_so_far, dtype=float)
    if init_trainings and len(x) and x.max() > init_trainings:
        ax.axvline(init_trainings + 0.5, color="#888888", linestyle="--", linewidth=1.0, zorder=0)
        ax.annotate(
            "initial population trained", (init_trainings + 0.5, 0.02), xycoords=("data", "axes fraction"),
            xytext=(4, 0), textcoords="offset points", ha="left", va="bottom", fontsize=8, color="#666666",
        )
    (line,) = ax.plot(x, y, drawstyle="steps-post", linewidth=2.0, color=color or None, label=label)
    if len(x):
        ax.plot(x[-1:], y[-1:], marker="o", color=line.get_color(), markersize=5)
        ax.annotate(
            f"{y[-1]:.4f}", (x[-1], y[-1]), xytext=(-4, 6), textcoords="offset points",
            ha="right", va="bottom", fontsize=8.5, color=line.get_color(),
        )
    ax.set_xlabel("trainings (candidate networks trained)")
    ax.set_ylabel("best fitness so far")
    if title:
        ax.set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _fit_axes_to_few_points(ax)
    ax.grid(True, alpha=0.3)
    if label:
        ax.legend(loc="lower right", fontsize=9)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig


# --------------------------------------------------------------------------------------------
# run-store level
# --------------------------------------------------------------------------------------------
def _outcome_text(record: Mapping[str, Any]) -> str:
    """What a step did, for a title: its outcome, or for a round how many of its moves replaced cells."""
    outcome = record.get("outcome")
    moves = record.get("moves")
    if outcome == "round" and isinstance(moves, list):
        replaced = sum(1 for move in moves if move.get("replaced"))
        return f"round of {record.get('masters', len(moves))} masters: {replaced} replaced"
    return str(outcome).replace("_", " ") if outcome else ""


def _step_title(metric: str, step_row: StepRow, target: int | None, dataset: str) -> str:
    """A heatmap's title: what it shows, then the step out of the run's target (``step 2 / 6``:
    the target of a run still going, not its last finished step; just ``step 2`` for a run with
    a training budget and no step target) and what the step did."""
    step = step_row.step
    size = len(step_row.lattice["genomes"])
    head = f"{metric} · {size}×{size} lattice · {dataset}"
    record = step_row.record
    of = f" / {target}" if target is not None else ""
    if step == 0:
        detail = f"step 0{of}: initial lattice"
    else:
        detail = f"step {step}{of}"
        outcome = _outcome_text(record)
        if outcome:
            detail += f": {outcome}"
        max_c = record.get("max_c")
        if isinstance(max_c, (int, float)) and math.isfinite(max_c):
            detail += f" (best candidate {max_c:.4f})"
    return f"{head}\n{detail}"


def render_heatmaps(
    store: Any,
    out_dir: str | Path,
    metric: str = "fitness",
    steps: str | int = "last",
    *,
    dpi: int = HEATMAP_DPI,
    gif_frame_ms: int = 400,
    labels: str | None = None,
) -> list[Path]:
    """Write heatmap PNGs (``{metric}_step_0000.png`` ...) and, for ``steps='all'``, an animated GIF.

    With ``'all'`` every frame shares one colour scale (the range over the whole run), so colours
    compare across frames; a single step uses its own range. ``labels`` is what the cells say:
    None (the default) the metric's values up to a 12×12 lattice, ``fitness`` each cell's fitness
    whatever the colour shows, ``genome`` its genome (:func:`cell_labels`), ``none`` nothing; an
    asked-for label is written on any lattice. Returns the written paths.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    if labels is not None and labels not in LABELS:
        raise ValueError(f"unknown labels {labels!r}; expected one of {', '.join(LABELS)}")
    config = store.config
    step_rows = store.step_rows()  # every step's record and lattice: read once
    all_rows = [r for r in step_rows if r.lattice]
    if not all_rows and step_rows:
        raise ValueError(f"the run uses strategy {config.strategy!r}, which has no lattice to draw")
    chosen = select_steps(all_rows, steps)
    target = config.stop.steps
    if target is not None:
        target = max(target, all_rows[-1].step)

    lookup: dict[str, int | None] = {}
    if metric == "params":
        genomes = {g for row in chosen for line in row.lattice["genomes"] for g in line}
        lookup = params_by_genome(store, genomes)
    frames = [lattice_values(row, metric, lookup) for row in chosen]

    log = metric == "params"
    fail_below = 1e-12 if metric == "fitness" else None
    # 'all': one figure, one colour scale (the whole run's range), updated frame by frame
    scale = np.stack(frames) if steps == "all" else frames[0]
    # the metric's own values need no texts of their own (the plot formats them, as it always has)
    own = labels is None or (labels == "fitness" and metric == "fitness")
    size = max(frames[0].shape)
    plot = LatticePlot(
        frames[0].shape, scale_values=scale, cmap=_CMAPS[metric], label=METRICS[metric], log=log,
        fail_below=fail_below, robust=metric == "fitness", annotate=None if labels is None else labels != "none",
        text_size=genome_label_layout(size)[0] if labels == "genome" else None,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def show(row: StepRow, values: np.ndarray) -> Figure:
        record = row.record
        return plot.update(
            values,
            title=_step_title(metric, row, target, config.data.dataset),
            master=record_cells(record, "master"),
            partner=record_cells(record, "partner"),
            changed=changed_cells(row),
            texts=None if own or labels == "none" else cell_labels(row, labels),
        )

    if len(chosen) > 1:
        # Lay the figure out once, on the frame with the fullest legend, then keep that geometry:
        # every frame is the same size and the layout is not recomputed per frame.
        def legend_items(i: int) -> int:
            record = chosen[i].record  # one legend entry per kind of marker, however many cells it marks
            kinds = (record_cells(record, "master"), record_cells(record, "partner"), changed_cells(chosen[i]))
            return sum(1 for cells in kinds if cells)

        widest = max(range(len(chosen)), key=legend_items)
        _render(show(chosen[widest], frames[widest]), dpi)
        plot.fig.set_layout_engine("none")
    for row, values in zip(chosen, frames):
        image = _render(show(row, values), dpi)
        path = out / f"{metric}_step_{row.step:04d}.png"
        write_atomically(path, lambda handle: image.save(handle, format="PNG"))
        written.append(path)
    if steps == "all":
        gif_path = out / f"{metric}_evolution.gif"
        _write_gif(written, gif_path, gif_frame_ms)
        written.append(gif_path)
    return written


def cell_labels(step_row: StepRow, labels: str) -> list[list[str]]:
    """What each cell of a step's lattice says for ``labels``: ``genome`` its genome, wrapped (or
    shortened with ``…``) to fit a cell (:func:`wrap_genome`); ``fitness`` its fitness, ``fail``
    for a failed one (fitness 0), as a fitness heatmap writes it."""
    lattice = step_row.lattice
    if not lattice:
        raise ValueError(f"step {step_row.step} has no lattice (not a lattice strategy)")
    if labels == "genome":
        genomes = lattice["genomes"]
        _font, width, lines = genome_label_layout(max(len(genomes), max(len(row) for row in genomes)))
        return [[wrap_genome(str(g), width, lines) for g in row] for row in genomes]
    if labels == "fitness":
        values = lattice_values(step_row, "fitness")
        text_of = _default_formatter(values, False)
        return [["fail" if math.isfinite(v) and v < 1e-12 else text_of(v) if math.isfinite(v) else "" for v in row]
                for row in values]
    raise ValueError(f"cells are labelled with their fitness or genome, not {labels!r}")


def _write_gif(frames: Sequence[Path], path: Path, frame_ms: int) -> None:
    """An animated GIF of the PNG ``frames``: one shared palette, only changed pixels stored.

    The palette (255 colours from a montage of up to 8 frames spread over the run) is shared,
    so a pixel that did not change keeps its index; such pixels are written as the transparent
    index 255 over the previous frame (disposal 1), which LZW squeezes to almost nothing.
    """
    from PIL import Image

    picks = sorted({round(i * (len(frames) - 1) / 7) for i in range(8)}) if len(frames) > 1 else [0]
    samples = []
    for i in picks:
        with Image.open(frames[i]) as image:
            samples.append(image.convert("RGB"))
    width, height = samples[0].size
    montage = Image.new("RGB", (width, height * len(samples)))
    for i, sample in enumerate(samples):
        montage.paste(sample, (0, i * height))
    palette_image = montage.quantize(colors=255, method=_MEDIANCUT, dither=_NO_DITHER)
    palette = (palette_image.getpalette() or [])[: 255 * 3]
    palette += [0] * (255 * 3 - len(palette)) + [255, 0, 255]  # index 255: transparent

    previous: np.ndarray | None = None

    def frame(p: Path) -> Any:
        nonlocal previous
        with Image.open(p) as image:
            indices = np.array(image.convert("RGB").quantize(palette=palette_image, dither=_NO_DITHER))
        shown = indices.copy()
        if previous is not None:
            shown[indices == previous] = 255
        previous = indices
        out = Image.fromarray(shown.astype(np.uint8), "P")
        out.putpalette(palette)
        out.info["transparency"] = 255
        return out

    durations = [frame_ms] * len(frames)
    durations[-1] = max(frame_ms, 2500)  # hold the final lattice
    first = frame(frames[0])
    rest = [frame(p) for p in frames[1:]]  # palette images: one byte per pixel
    write_atomically(path, lambda handle: first.save(
        handle, format="GIF", save_all=True, append_images=rest, duration=durations, loop=0, optimize=False,
        disposal=1, transparency=255,
    ))


def _render(fig: Figure, dpi: int) -> Any:
    """Draw ``fig`` once with Agg and return it as an RGB Pillow image (one draw, no savefig pre-pass)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    fig.set_dpi(dpi)
    canvas.draw()
    width, height = canvas.get_width_height(physical=True)
    return Image.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw", "RGBA", 0, 1).convert("RGB")


def render_curves(store: Any, out_dir: str | Path, *, dpi: int = FIGURE_DPI) -> list[Path]:
    """Write ``fitness_curves.png`` (best/mean/worst per step) and ``best_vs_trainings.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    series = lattice_series(store.step_rows())
    config = store.config
    where = f"{config.data.dataset}, {config.strategy}"
    if series["steps"]:
        size = getattr(config.method, "lattice", None)
        title = "Lattice fitness per step" + (f" ({size}×{size}, {where})" if size else f" ({where})")
        fig = plot_fitness_curves(series["steps"], series["best"], series["mean"], series["worst"], title=title)
        path = out / "fitness_curves.png"
        save_figure(fig, path, dpi)
        fig.clear()
        written.append(path)
    evaluations = store.evaluations()
    if evaluations:
        x, best = best_so_far(evaluations)
        hits = getattr(store, "cache_hits", None)
        title = f"Best fitness against trainings ({len(evaluations)} trainings"
        title += f", {hits} cache hits)" if hits is not None else ")"
        init = sum(1 for ev in evaluations if ev.step == 0)
        fig = plot_best_vs_trainings(x, best, title=title, init_trainings=init or None)
        path = out / "best_vs_trainings.png"
        save_figure(fig, path, dpi)
        fig.clear()
        written.append(path)
    if not written:
        raise ValueError("the run has no finished step or training yet: nothing to draw")
    return written
