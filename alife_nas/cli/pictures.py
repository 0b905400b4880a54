"""``heatmap``, ``curves`` and ``export``: see a run and take its best architectures away."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import click

from alife_nas.cli._common import (
    UserError,
    config_option,
    device_option,
    open_run,
    print_progress,
    user_errors,
)
from alife_nas.cli._group import main
from alife_nas.files import HEATMAP_DPI, TOP_K
from alife_nas.export import PARETO_SIZES
from alife_nas.workflows import EXPORT_FORMATS, export_run

# Mirrors alife_nas.visualize.METRICS; kept here so `alife-nas --help` does not import matplotlib.
METRIC_NAMES = ("fitness", "depth", "params", "age")
#: Mirrors alife_nas.visualize.LABELS, for the same reason.
LABEL_NAMES = ("fitness", "genome", "none")


def _pictures_folder(run_dir: str, out: str | None) -> Path:
    """--out, or RUN_DIR/pictures; refused when it is a file (created when the pictures are written)."""
    target = Path(out) if out else Path(run_dir) / "pictures"
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file; give a folder")
    return target


def _draw(draw: Callable[[], list[Path]]) -> list[Path]:
    """Run ``draw``, which writes pictures; what it may raise is one line and exit 2: a step or metric
    the run lacks, or a file the disk refused (full, read-only, a folder that cannot be made).

    The pictures are written whole or not at all (alife_nas.files.write_atomically), so a
    refused one leaves nothing behind.
    """
    try:
        return draw()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        from alife_nas.files import describe_os_error

        if exc.filename is not None:
            exc.filename = _show(Path(exc.filename))
        raise UserError(describe_os_error(exc, "another folder (--out)")) from None


def _parse_step(text: str) -> str | int:
    value = str(text).strip().lower()
    if value in ("last", "all"):
        return value
    if value.isdigit():
        return int(value)
    raise UserError(f"--step must be a step number, 'last' or 'all', got {text!r}")


def _show(path: Path) -> str:
    """A path as the user would type it (relative to the working directory when inside it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the pictures.  [default: RUN_DIR/pictures]")
@click.option("--metric", type=click.Choice(METRIC_NAMES), default="fitness",
              help="What the cells show: fitness, depth (conv layers), params or age (steps since written).")
@click.option("--step", "step", default="last",
              help="A step number, 'last', or 'all' (a PNG per step plus an animated GIF, one colour scale).")
@click.option("--dpi", type=click.IntRange(30, 600), default=HEATMAP_DPI, show_default=True,
              help="Resolution of the pictures.")
@click.option("--labels", type=click.Choice(LABEL_NAMES), default=None, show_default=False,
              help="What the cells say: fitness, genome (wrapped, or cut with … when it does not fit) or none; "
                   "asked for, written on any lattice.  [default: the --metric values, up to a 12×12 lattice]")
@config_option
def heatmap(run_dir: str, out: str | None, metric: str, step: str, dpi: int, labels: str | None) -> None:
    """Draw the lattice of RUN_DIR as a heatmap: one step, the last, or all of them plus a GIF."""
    steps = _parse_step(step)
    with open_run(run_dir) as store:
        from alife_nas.visualize import render_heatmaps

        target = _pictures_folder(run_dir, out)
        written = _draw(lambda: render_heatmaps(store, target, metric=metric, steps=steps, dpi=dpi, labels=labels))
    pngs = [p for p in written if p.suffix == ".png"]
    gifs = [p for p in written if p.suffix == ".gif"]
    if len(pngs) == 1:
        click.echo(f"wrote {_show(pngs[0])}")
    else:
        click.echo(f"wrote {len(pngs)} PNG frames to {_show(target)}/ ({pngs[0].name} .. {pngs[-1].name})")
    for gif in gifs:
        click.echo(f"wrote {_show(gif)} ({len(pngs)} frames)")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Folder for the pictures.  [default: RUN_DIR/pictures]")
@config_option
def curves(run_dir: str, out: str | None) -> None:
    """Plot best/mean/worst lattice fitness per step and the best fitness against trainings."""
    with open_run(run_dir) as store:
        from alife_nas.visualize import render_curves

        target = _pictures_folder(run_dir, out)
        written = _draw(lambda: render_curves(store, target))
    for path in written:
        click.echo(f"wrote {_show(path)}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--top", type=click.IntRange(1), default=TOP_K, show_default=True,
              help="How many distinct architectures (best first).")
@click.option("--format", "format", type=click.Choice(EXPORT_FORMATS), default="markdown",
              help="json, paper (the seed's tuple form), markdown (a table), pytorch (one .py per architecture; "
                   "with --retrain also its trained weights, .pt) or onnx (one .onnx per architecture).")
@click.option("--out", type=click.Path(), default=None,
              help="File to write (folder for pytorch and onnx).  [default: stdout; pytorch, onnx: RUN_DIR/export-FORMAT]")
@click.option("--force", is_flag=True, default=False,
              help="Overwrite files that exist already (never the run's own database).")
@click.option("--retrain", is_flag=True, default=False,
              help="Re-train each architecture with the run's recipe and add its test accuracy (docs/training.md); "
                   "pytorch and onnx exports then hold the trained networks.")
@click.option("--retrain-seeds", type=click.IntRange(1), default=None, show_default="1",
              help="With --retrain: re-train with seeds 0..N-1 and report the mean test accuracy; the weights "
                   "saved are the seed's with the best validation accuracy.")
@device_option
@click.option("--data-dir", default=None, help="Where the data set files are, for --retrain.  [default: the run's]")
@click.option("--failures", is_flag=True, default=False,
              help="Instead of the best architectures, list every failed training (step, index, operator, kind, "
                   "genome, reason) as json or markdown; --top does not apply.")
@click.option("--pareto", type=click.Choice(PARETO_SIZES), default=None,
              help="Instead of the top K, every architecture no other one beats on both validation accuracy and "
                   "size (parameters or forward FLOPs), best first, with its rank in the run; --top does not apply.")
@config_option
def export(run_dir: str, top: int, format: str, out: str | None, force: bool, retrain: bool,
           retrain_seeds: int | None, device: str | None, data_dir: str | None, failures: bool,
           pareto: str | None) -> None:
    """Export the best distinct architectures of RUN_DIR, ranked by fitness (validation accuracy).

    pytorch and onnx write one file per architecture into a folder: untrained architectures, or,
    with --retrain, the trained networks (PyTorch: rank_N.py with load() and predict() next to
    its weights rank_N.pt). Existing files are kept unless --force; the run's own files are
    never overwritten. With --failures: the run's failed trainings and why each failed. With
    --pareto params|flops: the Pareto front of accuracy against size instead of the top K.
    """
    if retrain_seeds is not None and not retrain:
        raise UserError("--retrain-seeds only applies with --retrain")
    with user_errors():
        done = export_run(run_dir, top=top, fmt=format, out=out, force=force, retrain=retrain,
                          retrain_seeds=retrain_seeds or 1, device=device, data_dir=data_dir,
                          on_progress=print_progress, failures=failures, pareto=pareto)
    if done.text is not None:
        click.echo(done.text, nl=False)
        return
    if failures:
        click.echo(f"wrote {len(done.rows)} failed training{'s' if len(done.rows) != 1 else ''} ({format}) "
                   f"to {_show(done.out)}")
        return
    what = f"{len(done.rows)} architecture{'s' if len(done.rows) != 1 else ''}"
    if pareto is not None:
        what += f" of the Pareto front (accuracy against {pareto})"
    if format in ("pytorch", "onnx"):
        kind = {"pytorch": "PyTorch files", "onnx": "ONNX files"}[format]
        trained = " trained" if retrain else " untrained"
        click.echo(f"wrote {what} as{trained} {kind} to {_show(done.out)}/ ({_file_range(done.files)})")
    else:
        click.echo(f"wrote {what} ({format}) to {_show(done.out)}")


def _file_range(paths: list[Path]) -> str:
    """The files an export wrote, by kind: ``rank_1.py`` or ``rank_1.py and rank_1.pt`` for one
    architecture, ``rank_1.py .. rank_3.py and rank_1.pt .. rank_3.pt`` for several."""
    kinds: dict[str, list[str]] = {}
    for path in paths:
        kinds.setdefault(path.suffix, []).append(path.name)
    return " and ".join(names[0] if len(names) == 1 else f"{names[0]} .. {names[-1]}" for names in kinds.values())
