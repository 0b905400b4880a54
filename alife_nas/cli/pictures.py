"""``heatmap``, ``curves`` and ``export``: see a run and take its best architectures away."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

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
@click.option("--dpi", type=click.IntRange(30, 600), default=110, help="Resolution of the pictures.")
@config_option
def heatmap(run_dir: str, out: str | None, metric: str, step: str, dpi: int) -> None:
    """Draw the lattice of RUN_DIR as a heatmap: one step, the last, or all of them plus a GIF."""
    steps = _parse_step(step)
    with open_run(run_dir) as store:
        from alife_nas.visualize import render_heatmaps

        target = _pictures_folder(run_dir, out)
        written = _draw(lambda: render_heatmaps(store, target, metric=metric, steps=steps, dpi=dpi))
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
@click.option("--top", type=click.IntRange(1), default=15, help="How many distinct architectures (best first).")
@click.option("--format", "format", type=click.Choice(FORMAT_NAMES + ("onnx",)), default="markdown",
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
@config_option
def export(run_dir: str, top: int, format: str, out: str | None, force: bool, retrain: bool,
           retrain_seeds: int | None, device: str | None, data_dir: str | None) -> None:
    """Export the best distinct architectures of RUN_DIR, ranked by fitness (validation accuracy).

    pytorch and onnx write one file per architecture into a folder: untrained architectures, or,
    with --retrain, the trained networks (PyTorch: rank_N.py with load() and predict() next to
    its weights rank_N.pt). Existing files are kept unless --force; the run's own files are
    never overwritten.
    """
    from alife_nas import export as ex

    if retrain_seeds is not None and not retrain:
        raise UserError("--retrain-seeds only applies with --retrain")
    info_problem = None
    with open_run(run_dir) as store, user_errors():
        config = store.config
        try:
            evaluations = store.evaluations()
            fitness = store.genome_fitness()  # each genome's mean over its trainings
        except ValueError as exc:  # a value the store cannot decode: the database was damaged
            raise UserError(f"{run_dir}: the run database is damaged: {' '.join(str(exc).split())}") from None
        try:
            info = store.dataset_info
        except ValueError as exc:  # only the model formats need it: complain below if they do
            info, info_problem = None, f"its data set record is damaged ({' '.join(str(exc).split())})"
    try:
        rows = ex.top_architectures(evaluations, k=top, fitness=fitness)
    except ValueError as exc:  # a stored genome no parser reads: the database was damaged
        raise UserError(f"{run_dir}: the run database holds a genome that cannot be read ({exc})") from None
    if not rows:
        raise UserError(f"{run_dir} has no successful training yet: nothing to export")
    models = format in ("pytorch", "onnx")
    if models:
        if info_problem:
            raise UserError(f"{run_dir}: {info_problem}; cannot write {format} files")
        try:
            input_shape, num_classes, _ = ex.model_shape(info)
        except ValueError as exc:
            raise UserError(f"{run_dir}: {exc}; cannot write {format} files") from None
        from alife_nas.model_export import ModelExportError, export_models, require_onnx

        if format == "onnx":
            try:
                require_onnx()
            except ModelExportError as exc:
                raise UserError(str(exc)) from None
    target = out if out is not None else (str(Path(run_dir) / f"export-{format}") if models else None)
    real = None
    if target is not None:  # before re-training: a wrong --out must not cost an hour of training first
        files = [f for r in rows for f in ex.model_files(f"rank-{r['rank']}", format, trained=retrain)] if models else []
        try:
            real = ex.safe_target(target, run_dir, folder=models, files=files, force=force)
        except ValueError as exc:
            raise UserError(f"--out {exc}") from None

    written: list[Path] = []

    def write_models(batch: list[dict], retrainings: list[Any] | None = None, trainer: Any = None) -> None:
        """Write the model files of ``batch`` (as soon as each is re-trained: weights never pile up)."""
        meta = None if trainer is None else {
            "run": str(Path(run_dir).resolve()), "device": str(trainer.device),
            "data_split": {"val_size": config.data.val_size, "split_seed": config.data.split_seed}}
        try:
            written.extend(export_models(
                batch, format, real, input_shape=input_shape, num_classes=num_classes, hidden=config.training.hidden,
                init=config.training.init, retrainings=retrainings, data=trainer and trainer.data,
                settings=trainer and trainer.settings, metadata=meta))
        except (OSError, ValueError, ModelExportError) as exc:
            raise UserError(f"cannot write the export to {target}: {exc}") from None

    if retrain:
        if data_dir is not None:
            config = build_config({"data_dir": data_dir}, base=config)
        rows = _retrain(rows, config, device, retrain_seeds or 1, save=write_models if models else None)
    elif models:
        write_models(rows)
    if target is None:
        click.echo(ex.export_text(rows, format), nl=False)
        return
    if not models:
        try:
            ex.write_export(rows, format, real)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot write the export to {target}: {exc}") from None
    what = f"{len(rows)} architecture{'s' if len(rows) != 1 else ''}"
    if models:
        kind = {"pytorch": "PyTorch files", "onnx": "ONNX files"}[format]
        trained = " trained" if retrain else " untrained"
        click.echo(f"wrote {what} as{trained} {kind} to {_show(Path(target))}/ ({written[0].name} .. {written[-1].name})")
    else:
        click.echo(f"wrote {what} ({format}) to {_show(Path(target))}")


def _retrain(rows: list[dict], config: Any, device: str | None, seeds: int,
             save: Callable[[list[dict], list[Any], Any], None] | None = None) -> list[dict]:
    """Re-train the exported rows (alife_nas.retraining's policy); progress on stderr.

    With ``save`` each architecture keeps its best seed's weights (by validation accuracy) and
    ``save([row], [retraining], trainer)`` writes its files at once, before the next one trains.
    """
    from alife_nas import export as ex
    from alife_nas.retraining import make_trainer, retrain

    with user_errors():
        trainer = make_trainer(config, device=device)
    click.echo(f"re-training {len(rows)} architectures on {config.data.dataset} ({trainer.device}, "
               f"seeds 0..{seeds - 1})", err=True)
    out = []
    for row in rows:
        done = retrain(row["genome"], trainer, seeds, keep_weights=save is not None)
        new = ex.with_retraining(row, done)
        failed = f", failed: {'; '.join(new['retrain_failures'])}" if new.get("retrain_failures") else ""
        click.echo(f"  {row['rank']:>2}. {row['genome']}: test accuracy {new['test_accuracy']:.4f}"
                   f" ({new['retrain_time']:.1f} s{failed})", err=True)
        sys.stderr.flush()
        if save is not None:
            save([new], [done], trainer)
            for result in done.results:
                result.weights = None  # written: free them before the next architecture trains
        out.append(new)
    return out
