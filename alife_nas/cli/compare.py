"""``alife-nas compare``: best fitness against trainings for several runs, as a PNG and a table."""
from __future__ import annotations

import click

from alife_nas.cli._common import UserError, device_option, print_progress, user_errors
from alife_nas.cli._group import main
from alife_nas.compare import COSTS, budget_text
from alife_nas.workflows import compare_runs


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default="comparison", help="Folder for comparison.png and comparison.txt.")
@click.option("--budget", type=click.FloatRange(0, min_open=True), default=None,
              help="Cut every run at this much spent (--cost units); refused if a run spent less.  "
                   "[default: the smallest spend among the runs]")
@click.option("--cost", type=click.Choice(COSTS), default="trainings",
              help="What the budget and the x-axis count: trainings, epochs trained, or training FLOPs "
                   "(forward FLOPs x training images x 3 per epoch; a pruned training counts what it cost).")
@click.option("--force", is_flag=True, default=False,
              help="Compare runs whose data set or training settings differ (each difference is printed).")
@click.option("--retrain/--no-retrain", default=False, help="Re-train each run's best architecture and report its test accuracy.")
@click.option("--retrain-seeds", type=click.IntRange(1), default=None, show_default="1",
              help="With --retrain: re-train with seeds 0..N-1 and report the mean test accuracy.")
@device_option
def compare(run_dirs: tuple[str, ...], out: str, budget: float | None, cost: str, force: bool, retrain: bool,
            retrain_seeds: int | None, device: str | None) -> None:
    """Compare runs at one budget of trainings, epochs or FLOPs (several seeds per strategy:
    median and min–max).

    The runs must share their data set (dataset, val_size, split_seed, image_size and the
    recorded shape and classes) and training settings, or fitness values would not measure the
    same thing; --force compares them anyway.
    """
    if retrain_seeds is not None and not retrain:
        raise UserError("--retrain-seeds only applies with --retrain")
    if cost == "trainings" and budget is not None:
        if budget != int(budget):
            raise UserError(f"--budget counts whole trainings, got {budget:g}")
        budget = int(budget)
    with user_errors():
        report = compare_runs(run_dirs, budget=budget, out=out, force=force, retrain=retrain,
                              retrain_seeds=retrain_seeds or 1, device=device, on_progress=print_progress, cost=cost)
    text, png = report.files
    click.echo(report.table)
    click.echo(f"every run cut at {budget_text(report.budget, cost)}{' (--budget)' if budget else ' (the smallest run)'}")
    click.echo(f"wrote {png} and {text}")
