"""``alife-nas compare``: best fitness against trainings for several runs, as a PNG and a table."""
from __future__ import annotations

from pathlib import Path

import click

from alife_nas.cli import main
from alife_nas.cli._common import load_data, open_run, resolve_device
from alife_nas.compare import comparison_table, load_curve, plot_comparison


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path())
@click.option("--out", type=click.Path(file_okay=False), default="comparison", help="Folder for comparison.png and comparison.txt.")
@click.option("--budget", type=click.IntRange(1), default=None, help="Cut every run at this many trainings (default: the shortest run of each strategy).")
@click.option("--retrain/--no-retrain", default=False, help="Re-train each run's best architecture and report its test accuracy.")
@click.option("--retrain-seeds", type=click.IntRange(1), default=1, show_default=True,
              help="With --retrain: re-train with seeds 0..N-1 and report the mean test accuracy.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", help="Where to re-train.")
def compare(run_dirs: tuple[str, ...], out: str, budget: int | None, retrain: bool, retrain_seeds: int, device: str) -> None:
    """Compare runs (several seeds per strategy are aggregated: median and min–max)."""
    curves, configs = [], []
    for run_dir in run_dirs:
        with open_run(run_dir) as store:
            curves.append(load_curve(store, Path(run_dir).name or run_dir))
            configs.append(store.config)
    if retrain:
        _retrain_best(curves, configs, resolve_device(device), retrain_seeds)
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = comparison_table(curves, budget)
    (out_dir / "comparison.txt").write_text(table + "\n")
    fig = plot_comparison(curves, budget=budget)
    fig.savefig(out_dir / "comparison.png", dpi=120)
    click.echo(table)
    click.echo(f"wrote {out_dir / 'comparison.png'} and {out_dir / 'comparison.txt'}")


def _retrain_best(curves: list, configs: list[dict], device: str, seeds: int = 1) -> None:
    """Re-train each best genome with its run's settings (seeds 0..seeds-1) and record the mean test accuracy.

    One re-training is noisy (and the search's best validation score is biased upwards), so
    several seeds give a fairer number; a failed re-training counts as 0, like in the search.
    """
    from alife_nas.genome import parse_genome
    from alife_nas.training import Trainer, TrainSettings

    loaded: dict[tuple, object] = {}  # runs of one comparison usually share their data set: load it once
    for curve, config in zip(curves, configs):
        if curve.best_genome is None:
            continue
        key = (config["dataset"], config.get("data_dir", "data"), config["val_size"])
        if key not in loaded:
            loaded[key] = load_data(key[0], key[1], val_size=key[2])
        trainer = Trainer(loaded[key], TrainSettings.from_dict(config["settings"]), device)
        accuracies = []
        for seed in range(seeds):
            click.echo(f"re-training {curve.name}'s best {curve.best_genome} (seed {seed})", err=True)
            result = trainer.train(parse_genome(curve.best_genome), seed=seed, evaluate_test=True)
            accuracies.append(result.test_accuracy or 0.0)
        curve.test_accuracy = sum(accuracies) / len(accuracies)
