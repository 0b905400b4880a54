"""``alife-nas compare``: best fitness against trainings for several runs, as a PNG and a table."""
from __future__ import annotations

from pathlib import Path

import click

from alife_nas.cli._common import UserError, device_option, open_run, user_errors
from alife_nas.cli._group import main
from alife_nas.compare import (
    common_budget,
    comparison_table,
    load_curve,
    plot_comparison,
    setting_differences,
)


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default="comparison", help="Folder for comparison.png and comparison.txt.")
@click.option("--budget", type=click.IntRange(1), default=None,
              help="Cut every run at this many trainings; refused if a run has fewer.  "
                   "[default: the smallest number of trainings among the runs]")
@click.option("--force", is_flag=True, default=False,
              help="Compare runs whose data set or training settings differ (each difference is printed).")
@click.option("--retrain/--no-retrain", default=False, help="Re-train each run's best architecture and report its test accuracy.")
@click.option("--retrain-seeds", type=click.IntRange(1), default=None, show_default="1",
              help="With --retrain: re-train with seeds 0..N-1 and report the mean test accuracy.")
@device_option
def compare(run_dirs: tuple[str, ...], out: str, budget: int | None, force: bool, retrain: bool,
            retrain_seeds: int | None, device: str | None) -> None:
    """Compare runs at one budget of trainings (several seeds per strategy: median and min–max).

    The runs must share their data set (dataset, val_size, split_seed, image_size and the
    recorded shape and classes) and training settings, or fitness values would not measure the
    same thing; --force compares them anyway.
    """
    if retrain_seeds is not None and not retrain:
        raise UserError("--retrain-seeds only applies with --retrain")
    curves, configs = [], []
    for run_dir in run_dirs:
        with open_run(run_dir) as store:
            curves.append(load_curve(store, Path(run_dir).name or run_dir))
            configs.append(store.config)
    _check_alike(run_dirs, curves, force)
    try:
        cut = common_budget(curves, budget)
    except ValueError as exc:
        raise UserError(f"--{exc}") from None
    if cut == 0:
        empty = next(run_dir for run_dir, curve in zip(run_dirs, curves) if not curve.best)
        raise UserError(f"{empty} has no training yet: nothing to compare")
    out_dir = Path(out)
    try:  # before re-training: a folder that cannot be made must not cost the trainings first
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_failed(exc) from None
    if retrain:
        with user_errors():
            _retrain_best(curves, configs, device, retrain_seeds or 1)
    table = comparison_table(curves, cut)
    try:
        _write_report(out_dir, table, plot_comparison(curves, budget=cut))
    except OSError as exc:
        raise _write_failed(exc) from None
    click.echo(table)
    click.echo(f"every run cut at {cut} trainings{' (--budget)' if budget else ' (the smallest run)'}")
    click.echo(f"wrote {out_dir / 'comparison.png'} and {out_dir / 'comparison.txt'}")


def _check_alike(run_dirs: tuple[str, ...], curves: list, force: bool) -> None:
    """Refuse runs whose data or training settings differ from the first run's, in one line naming
    the runs and the first difference; with ``force``, go on and print every difference."""
    for index, found in setting_differences(curves):
        if not force:
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise UserError(f"{run_dirs[0]} and {run_dirs[index]} differ in data or training settings: {found[0]}"
                            f"{more}; compare runs of one data set and trainer, or give --force")
        for difference in found:
            click.echo(f"warning: {run_dirs[index]} differs from {run_dirs[0]}: {difference}", err=True)


def _write_report(out_dir: Path, table: str, fig: object) -> None:
    """comparison.txt and comparison.png, each written whole or not at all."""
    from alife_nas.files import write_atomically
    from alife_nas.visualize import save_figure

    write_atomically(out_dir / "comparison.txt", table + "\n")
    save_figure(fig, out_dir / "comparison.png", dpi=120)


def _write_failed(exc: OSError) -> UserError:
    """A file or folder the disk refused (full, read-only, ...), as one line naming it and what to do."""
    from alife_nas.files import describe_os_error

    return UserError(describe_os_error(exc, "another folder (--out)"))


def _retrain_best(curves: list, configs: list, device: str | None, seeds: int) -> None:
    """Re-train each run's best genome with its run's recipe and record the mean test accuracy.

    The policy of :mod:`alife_nas.retraining`: seeds 0..seeds-1, test accuracy at the best
    validation epoch, a failed training counts 0. Runs sharing a data set and settings share
    one trainer (the data set is loaded and moved to the device once).
    """
    from alife_nas.config import settings_hash
    from alife_nas.retraining import make_trainer, retrain

    trainers: dict[tuple, object] = {}
    for curve, config in zip(curves, configs):
        if curve.best_genome is None:
            continue
        key = (settings_hash(config.cache_settings()), config.data.data_dir)
        if key not in trainers:
            trainers[key] = make_trainer(config, device=device)
        click.echo(f"re-training {curve.name}'s best {curve.best_genome} (seeds 0..{seeds - 1})", err=True)
        curve.test_accuracy = retrain(curve.best_genome, trainers[key], seeds).test_accuracy
