"""``evolve``, ``resume`` and ``status``: start, continue and inspect a run directory.

A thin shell over :class:`alife_nas.search.Search`: options -> SearchConfig -> Search -> printed
progress. Every default is the library config's (see ``alife_nas.cli._common.DEFAULTS``).
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any, Callable

import click

from alife_nas.cli._common import (
    UserError,
    _option,
    build_config,
    config_option,
    data_options,
    device_option,
    given,
    open_run,
    training_options,
    user_errors,
    with_options,
)
from alife_nas.cli._group import main
from alife_nas.executors import Progress
from alife_nas.search import Search, Summary, read_status
from alife_nas.strategies import STRATEGIES


def search_options(func: Callable) -> Callable:
    """The options of ``evolve`` and ``resume``: every one defaults to the library's (None = not given)."""
    options = [
        _option("strategy", type=click.Choice(sorted(STRATEGIES)), help="Search strategy."),
        _option("seed", type=int, help="Run seed: all randomness and every training seed derive from it."),
        _option("steps", type=int, help="Total evolution steps of the run (after initialisation); with --budget "
                                        "alone, no step limit."),
        _option("budget", type=int, help="Stop after this many trainings (cache hits are free)."),
        click.option("--download/--no-download", default=True, show_default=True,
                     help="Download a missing torchvision data set."),
        _option("lattice", type=int, help="[neuralfinder] lattice side L (L×L cells)."),
        _option("radius", type=int, help="[neuralfinder] neighbourhood radius d."),
        _option("torus", "--torus/--bounded", help="[neuralfinder] wrap the neighbourhood around the edges, "
                                                   "or clip it there."),
        _option("ratio", type=float, help="[neuralfinder] ratio threshold r of the comparison."),
        _option("master_selection", "--master-selection", "--master", type=click.Choice(["uniform", "proportional"]),
                help="[neuralfinder] how the master cell is picked."),
        _option("filters", help="Filter set, comma-separated (at least two distinct counts)."),
        _option("population", type=int, help="[regularized] population size."),
        _option("tournament", type=int, help="[regularized] tournament size."),
        _option("random_max_layers", type=int, help="[random] longest random genome."),
        _option("masters", type=int, help="[neuralfinder] masters per step, far enough apart that their steps "
                                          "never touch the same cell; their candidates train as one batch."),
        device_option,
        _option("workers", type=int, help="Trainings at once: 1 = in this process; N = N worker processes "
                                          "(or N Ray actors with --ray)."),
        _option("devices", help="Devices the workers are spread over, e.g. cuda:0,cuda:1 (several workers may "
                                "share one)."),
        _option("threads", type=int, help="Torch threads per training (default: the cores split between the "
                                          "workers; torch's choice when serial)."),
        _option("ray", is_flag=False, flag_value="local", help="Train on Ray: --ray starts Ray on this machine, "
                                                                "--ray auto or --ray ADDRESS joins a cluster."),
        _option("gpus_per_trial", type=float, help="With --ray: the GPU share of one training (0.25 packs four "
                                                   "on a GPU)."),
        config_option,
    ]
    return data_options(training_options(with_options(options, func)))


class Reporter:
    """Per-step log lines on stdout; on a terminal, every worker's training in flight (stderr);
    elsewhere, one line per finished training, so a log never goes quiet for a whole step."""

    def __init__(self, run_dir: str, total_steps: int | None) -> None:
        self.run_dir = run_dir
        self.tty = sys.stderr.isatty()
        self.total = total_steps
        self.started = time.perf_counter()
        self._status = ""
        self._flight: dict[int, str] = {}  # worker -> what it is training

    def training_line(self, text: str) -> None:
        if self.tty:
            line = text[: 110]
            click.echo("\r" + line.ljust(len(self._status)), nl=False, err=True)
            self._status = line

    def on_progress(self, p: Progress) -> None:
        if p.task is None:
            self._flight.pop(p.worker, None)
        else:
            epoch = f" {p.epoch}/{p.max_epochs} {p.val:.3f}" if p.epoch else ""
            self._flight[p.worker] = f"{p.task.genome[:24]}{epoch}"
        if list(self._flight) == [0]:  # serial, or one worker busy: no worker numbers needed
            self.training_line(f"  training {self._flight[0]}")
        elif self._flight:
            self.training_line("  " + " | ".join(f"w{w}: {t}" for w, t in sorted(self._flight.items())))

    def on_result(self, request: Any, ev: Any, cached: bool) -> None:
        what = "cached" if cached else f"{ev.epochs or 0} epochs"
        line = f"  {request.operator} {ev.genome[:40]} -> {ev.fitness:.4f} ({what})"
        if self.tty:
            self.training_line(line)
        elif not cached:
            click.echo(line)

    def on_step(self, s: Summary) -> None:
        if self.tty and self._status:
            click.echo("\r" + " " * len(self._status) + "\r", nl=False, err=True)
            self._status = ""
        total = f"/{self.total}" if self.total is not None else ""
        outcome = (s.record or {}).get("outcome", "")
        step = (s.record or {}).get("step", s.step)
        elapsed = time.perf_counter() - self.started
        click.echo(
            f"step {step}{total}  {outcome:<14} best {s.best_fitness:.4f}  mean {s.mean:.4f}  "
            f"trainings {s.trainings}  cache hits {s.cache_hits}  failures {s.failures}  [{elapsed:.0f}s]"
        )


def _drive(search: Search, run_dir: str) -> None:
    """Run a search to its target; Ctrl-C stops cleanly (everything finished is saved)."""
    reporter = Reporter(run_dir, search.config.stop.steps)
    try:
        with user_errors():
            s = search.run(on_step=reporter.on_step, on_result=reporter.on_result, on_progress=reporter.on_progress)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: {search.steps_done} steps and {search.trainings} trainings are saved; "
            f"continue with: alife-nas resume {run_dir}", err=True,
        )
        search.close()
        sys.exit(130)
    except BaseException:
        search.close()
        raise
    search.close()
    click.echo(f"done: {s.step} steps, {s.trainings} trainings, {s.cache_hits} cache hits; "
               f"best {s.best_fitness:.4f} {s.best_genome}")
    click.echo(f"results in {run_dir} (see: alife-nas status {run_dir}; alife-nas export {run_dir} --top 15 --format markdown)")


@main.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@search_options
def evolve(out: str, download: bool, **options: Any) -> None:
    """Start a run in --out (refused when it already holds one) and run it to its end."""
    config = build_config(options)
    with user_errors():
        search = Search.create(out, config, download=download)
    data = search.data
    click.echo(f"run {out}: {config.strategy} on {data.name} {data.sizes()}, device {search.config.device}, "
               f"seed {config.seed}")
    _drive(search, out)


@main.command()
@click.argument("run_dir", type=click.Path())
@search_options
def resume(run_dir: str, download: bool, **options: Any) -> None:
    """Continue a run after a stop or a crash; options that would change results are refused."""
    options = given(options)
    with user_errors():
        search = Search.open(run_dir, download=download, **options)
    if search.finished():
        click.echo(f"{run_dir} is already complete ({search.steps_done} steps, {search.trainings} trainings); "
                   "give --steps or --budget to go further")
        search.close()
        return
    if search.changes:
        click.echo(f"changed on resume: {'; '.join(search.changes)}")
    click.echo(f"resuming {run_dir} at step {search.steps_done} ({search.trainings} trainings so far)")
    _drive(search, run_dir)


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def status(run_dir: str, as_json: bool) -> None:
    """Where a run stands: lattice fitness grid, totals and the best genome found."""
    with open_run(run_dir) as store, user_errors():
        info = read_status(store)
    if as_json:
        click.echo(json.dumps(info))
        return
    target = f"/{info['steps']}" if info["steps"] is not None else ""
    budget = f" (budget {info['budget']})" if info["budget"] else ""
    click.echo(f"run {run_dir}: {info['strategy']} on {info['dataset']}, seed {info['seed']}")
    click.echo(f"steps {info['steps_done']}{target}{budget}  trainings {info['trainings']}  cache hits {info['cache_hits']}"
               f"  failures {info['failures']}  epochs {info['epochs']}  training time {_duration(info['train_seconds'])}"
               f" on {', '.join(d for d in info['devices'] if d) or '-'}")
    if info["lattice"]:
        click.echo("lattice fitness:")
        for row in info["lattice"]:
            click.echo("  " + " ".join(f"{cell['fitness']:.3f}" for cell in row))
    if info["best"]:
        b = info["best"]
        click.echo(f"best found: {b['fitness']:.4f}  {b['genome']}  ({b['params']} params, step {b['step']})")
    if info["best_in_lattice"]:
        b = info["best_in_lattice"]
        click.echo(f"best in lattice: {b['fitness']:.4f}  {b['genome']}  (cell {b['cell'][0]},{b['cell'][1]})")
    elif not info["initialized"]:
        click.echo("no training finished yet")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


__all__ = ["evolve", "resume", "status", "UserError"]
