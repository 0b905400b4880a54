"""``heatmap``, ``curves`` and ``export``: see a run and take its best architectures away."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from alife_nas.cli._common import (
    UserError,
    build_config,
    config_option,
    device_option,
    open_run,
    user_errors,
)
from alife_nas.cli._group import main

# Mirrors alife_nas.visualize.METRICS; kept here so `alife-nas --help` does not import matplotlib.
METRIC_NAMES = ("fitness", "depth", "params", "age")
FORMAT_NAMES = ("json", "paper", "markdown", "pytorch")


def _pictures_folder(run_dir: str, out: str | None) -> Path:
    """--out, or RUN_DIR/pictures; refused when it is a file."""
    target = Path(out) if out else Path(run_dir) / "pictures"
    if target.exists() and not target.is_dir():
        raise UserError(f"--out {target} is a file; give a folder")
    return target


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
@click.option("--dpi", type=click.IntRange(30, 600), default=110, help="Resolution of the pictures.")
@config_option
def heatmap(run_dir: str, out: str | None, metric: str, step: str, dpi: int) -> None:
    """Draw the lattice of RUN_DIR as a heatmap: one step, the last, or all of them plus a GIF."""
    steps = _parse_step(step)
    with open_run(run_dir) as store:
        from alife_nas.visualize import render_heatmaps

        target = _pictures_folder(run_dir, out)
        try:
            written = render_heatmaps(store, target, metric=metric, steps=steps, dpi=dpi)
        except ValueError as exc:
            raise UserError(str(exc)) from None
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
        try:
            written = render_curves(store, target)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    for path in written:
        click.echo(f"wrote {_show(path)}")


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--top", type=click.IntRange(1), default=15, help="How many distinct architectures (best first).")
@click.option("--format", "format", type=click.Choice(FORMAT_NAMES), default="markdown",
              help="json, paper (the seed's tuple form), markdown (a table) or pytorch (one .py per architecture).")
@click.option("--out", type=click.Path(), default=None,
              help="File to write (folder for pytorch).  [default: stdout; pytorch: RUN_DIR/export-pytorch]")
@click.option("--retrain", is_flag=True, default=False,
              help="Re-train each architecture with the run's recipe and add its test accuracy (docs/training.md).")
@click.option("--retrain-seeds", type=click.IntRange(1), default=None, show_default="1",
              help="With --retrain: re-train with seeds 0..N-1 and report the mean test accuracy.")
@device_option
@click.option("--data-dir", default=None, help="Where the data set files are, for --retrain.  [default: the run's]")
@config_option
def export(run_dir: str, top: int, format: str, out: str | None, retrain: bool, retrain_seeds: int | None,
           device: str | None, data_dir: str | None) -> None:
    """Export the best distinct architectures of RUN_DIR, ranked by fitness (validation accuracy)."""
    from alife_nas import export as ex

    if retrain_seeds is not None and not retrain:
        raise UserError("--retrain-seeds only applies with --retrain")
    with open_run(run_dir) as store, user_errors():
        config = store.config
        info = store.dataset_info
        rows = ex.top_architectures(store.evaluations(), k=top)
    if not rows:
        raise UserError(f"{run_dir} has no successful training yet: nothing to export")
    if format == "pytorch" and not info:
        raise UserError(f"{run_dir}: the run does not record its input shape and classes; cannot write PyTorch files")
    target = Path(out) if out else (Path(run_dir) / "export-pytorch" if format == "pytorch" else None)
    if target is not None:
        try:  # before re-training: a wrong --out must not cost an hour of training first
            ex.check_target(format, target)
        except ValueError as exc:
            raise UserError(f"--out {exc}") from None

    if retrain:
        if data_dir is not None:
            config = build_config({"data_dir": data_dir}, base=config)
        rows = _retrain(rows, config, device, retrain_seeds or 1)
    if target is None:
        click.echo(ex.export_text(rows, format), nl=False)
        return
    try:
        written = ex.write_export(
            rows, format, target, input_shape=info and info["input_shape"], num_classes=info and info["num_classes"],
            hidden=config.training.hidden, init=config.training.init,
        )
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write the export to {target}: {exc}") from None
    what = f"{len(rows)} architecture{'s' if len(rows) != 1 else ''}"
    if format == "pytorch":
        click.echo(f"wrote {what} as PyTorch files to {_show(target)}/ ({written[0].name} .. {written[-1].name})")
    else:
        click.echo(f"wrote {what} ({format}) to {_show(target)}")


def _retrain(rows: list[dict], config: Any, device: str | None, seeds: int) -> list[dict]:
    """Re-train the exported rows (alife_nas.retraining's policy); progress on stderr."""
    from alife_nas import export as ex
    from alife_nas.retraining import make_trainer, retrain

    with user_errors():
        trainer = make_trainer(config, device=device)
    click.echo(f"re-training {len(rows)} architectures on {config.data.dataset} ({trainer.device}, "
               f"seeds 0..{seeds - 1})", err=True)
    out = []
    for row in rows:
        new = ex.with_retraining(row, retrain(row["genome"], trainer, seeds))
        failed = f", failed: {'; '.join(new['retrain_failures'])}" if new.get("retrain_failures") else ""
        click.echo(f"  {row['rank']:>2}. {row['genome']}: test accuracy {new['test_accuracy']:.4f}"
                   f" ({new['retrain_time']:.1f} s{failed})", err=True)
        sys.stderr.flush()
        out.append(new)
    return out
