"""``alife-nas compare``: best fitness against trainings for several runs, as a PNG and a table."""
from __future__ import annotations

from pathlib import Path

import click

from alife_nas.cli._common import UserError, device_option, open_run, user_errors
from alife_nas.cli._group import main
from alife_nas.compare import comparison_table, load_curve, plot_comparison


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default="comparison", help="Folder for comparison.png and comparison.txt.")
@click.option("--budget", type=click.IntRange(1), default=None, help="Cut every run at this many trainings (default: the shortest run of each strategy).")
@click.option("--retrain/--no-retrain", default=False, help="Re-train each run's best architecture and report its test accuracy.")
@click.option("--retrain-seeds", type=click.IntRange(1), default=None, show_default="1",
              help="With --retrain: re-train with seeds 0..N-1 and report the mean test accuracy.")
@device_option
def compare(run_dirs: tuple[str, ...], out: str, budget: int | None, retrain: bool, retrain_seeds: int | None,
            device: str | None) -> None:
    """Compare runs (several seeds per strategy are aggregated: median and min–max)."""
    if retrain_seeds is not None and not retrain:
        raise UserError("--retrain-seeds only applies with --retrain")
    curves, configs = [], []
    for run_dir in run_dirs:
        with open_run(run_dir) as store:
            curves.append(load_curve(store, Path(run_dir).name or run_dir))
            configs.append(store.config)
    if retrain:
        with user_errors():
            _retrain_best(curves, configs, device, retrain_seeds or 1)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = comparison_table(curves, budget)
    (out_dir / "comparison.txt").write_text(table + "\n")
    fig = plot_comparison(curves, budget=budget)
    fig.savefig(out_dir / "comparison.png", dpi=120)
    click.echo(table)
    click.echo(f"wrote {out_dir / 'comparison.png'} and {out_dir / 'comparison.txt'}")


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
