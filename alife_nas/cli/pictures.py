"""``heatmap``, ``curves`` and ``export``: see a run and take its best architectures away."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from alife_nas.cli import main
from alife_nas.cli._common import UserError, config_option, open_run, resolve_device

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
@click.option("--format", "fmt", type=click.Choice(FORMAT_NAMES), default="markdown",
              help="json, paper (the seed's tuple form), markdown (a table) or pytorch (one .py per architecture).")
@click.option("--out", type=click.Path(), default=None,
              help="File to write (folder for pytorch).  [default: stdout; pytorch: RUN_DIR/export-pytorch]")
@click.option("--retrain", is_flag=True, default=False,
              help="Re-train each architecture on the full training set (train + validation) and add its test accuracy.")
@click.option("--epochs", type=click.IntRange(1), default=None,
              help="Epochs for --retrain.  [default: the epoch at which the search's training peaked]")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Device for --retrain.")
@click.option("--data-dir", default=None, help="Where the data set files are, for --retrain.  [default: the run's]")
@config_option
def export(run_dir: str, top: int, fmt: str, out: str | None, retrain: bool, epochs: int | None, device: str,
           data_dir: str | None) -> None:
    """Export the best distinct architectures of RUN_DIR, ranked by fitness (validation accuracy)."""
    from alife_nas import export as ex

    if epochs is not None and not retrain:
        raise UserError("--epochs only applies with --retrain")
    with open_run(run_dir) as store:
        config = store.config
        rows = ex.top_architectures(store.evaluations(), k=top)
    if not rows:
        raise UserError(f"{run_dir} has no successful training yet: nothing to export")
    settings: dict[str, Any] = dict(config.get("settings") or {})
    input_shape, num_classes = config.get("input_shape"), config.get("num_classes")
    if fmt == "pytorch" and (not input_shape or not num_classes):
        raise UserError(f"{run_dir}: the run does not record its input shape and classes; cannot write PyTorch files")
    target = Path(out) if out else (Path(run_dir) / "export-pytorch" if fmt == "pytorch" else None)
    if target is not None:
        try:  # before re-training: a wrong --out must not cost an hour of training first
            ex.check_target(fmt, target)
        except ValueError as exc:
            raise UserError(f"--out {exc}") from None

    if retrain:
        rows = _retrain(rows, config, device, epochs, data_dir)
    if target is None:
        click.echo(ex.export_text(rows, fmt), nl=False)
        return
    try:
        written = ex.write_export(
            rows, fmt, target, input_shape=input_shape, num_classes=num_classes,
            hidden=int(settings.get("hidden", 512)), init=str(settings.get("init", "glorot")),
        )
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write the export to {target}: {exc}") from None
    what = f"{len(rows)} architecture{'s' if len(rows) != 1 else ''}"
    if fmt == "pytorch":
        click.echo(f"wrote {what} as PyTorch files to {_show(target)}/ ({written[0].name} .. {written[-1].name})")
    else:
        click.echo(f"wrote {what} ({fmt}) to {_show(target)}")


def _retrain(rows: list[dict], config: dict, device: str, epochs: int | None, data_dir: str | None) -> list[dict]:
    """Re-train the exported rows on the full training set; progress on stderr."""
    from alife_nas import export as ex

    device = resolve_device(device)
    try:
        train_fn = ex.make_retrainer(config, device, epochs=epochs, data_dir=data_dir)
    except ImportError as exc:
        raise UserError(f"re-training is not available: {exc}") from None
    except ValueError as exc:  # alife_nas.data.DatasetError is a ValueError
        raise UserError(f"cannot re-train: {exc}") from None
    click.echo(f"re-training {len(rows)} architectures on the full training set of {config.get('dataset')} ({device})",
               err=True)

    def report(row: dict, result: dict) -> None:
        acc = row.get("test_accuracy")
        outcome = f"test accuracy {acc:.4f}" if acc is not None else f"failed: {row.get('retrain_failure')}"
        time_taken = result.get("train_time")
        took = f", {time_taken:.1f} s" if isinstance(time_taken, (int, float)) else ""
        click.echo(f"  {row['rank']:>2}. {row['genome']}: {outcome} ({row.get('retrain_epochs', '?')} epochs{took})",
                   err=True)
        sys.stderr.flush()

    return ex.retrain(rows, train_fn, on_result=report)
