"""``evolve``, ``resume`` and ``status``: start, continue and inspect a run directory."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import click

from alife_nas.cli import main
from alife_nas.cli._common import (
    UserError,
    config_option,
    load_data,
    open_run,
    parse_filters,
    resolve_device,
    training_overrides,
)
from alife_nas.run import SAFE_TO_CHANGE, Run, RunConfig, config_differences
from alife_nas.store import DB_NAME, RunStore, RunStoreError

# Defaults sized so that `alife-nas evolve --out DIR` alone is a complete small search on the
# bundled digits set in a few minutes on 2 CPU cores. The seed's CIFAR-10 protocol is
# `--dataset cifar10 --lattice 9 --steps 150 --preset paper` (see docs/running.md).
DEFAULTS: dict[str, Any] = {
    "strategy": "neuralfinder",
    "dataset": "digits",
    "data_dir": "data",
    "val_size": 0.2,
    "lattice": 4,
    "radius": 1,
    "ratio": 0.02,
    "steps": 6,
    "seed": 0,
    "preset": "fast",
    "master": "uniform",
    "population": 20,
    "tournament": 5,
    "random_max_layers": 12,
}


def run_options(defaults: bool) -> Callable:
    """The options shared by ``evolve`` (with defaults) and ``resume`` (all optional, checked)."""

    def d(name: str) -> Any:
        return DEFAULTS.get(name) if defaults else None

    def decorate(func: Callable) -> Callable:
        from alife_nas.strategies import STRATEGIES

        options = [
            click.option("--strategy", type=click.Choice(sorted(STRATEGIES)), default=d("strategy"),
                         help="Search strategy."),
            click.option("--dataset", default=d("dataset"), help="digits, cifar10, cifar100, mnist, fashion-mnist, svhn or imagefolder:PATH."),
            click.option("--data-dir", default=d("data_dir"), help="Where data set files are (and are downloaded to)."),
            click.option("--download/--no-download", default=True, help="Download a missing torchvision data set."),
            click.option("--val-size", type=float, default=d("val_size"), help="Validation split: a fraction (<1) or a count of training images."),
            click.option("--lattice", type=click.IntRange(2), default=d("lattice"), help="Lattice side L (L×L cells)."),
            click.option("--radius", type=click.IntRange(1), default=d("radius"), help="Neighbourhood radius d."),
            click.option("--bounded/--torus", default=None if not defaults else False, help="Clip the neighbourhood at the edges instead of wrapping."),
            click.option("--ratio", type=click.FloatRange(0), default=d("ratio"), help="Ratio threshold r of the comparison."),
            click.option("--master", type=click.Choice(["uniform", "proportional"]), default=d("master"), help="How the master cell is picked."),
            click.option("--steps", type=click.IntRange(0), default=d("steps"), help="Total evolution steps of the run (after initialisation)."),
            click.option("--budget", type=click.IntRange(1), default=None, help="Stop after this many trainings instead (cache hits are free)."),
            click.option("--seed", type=int, default=d("seed"), help="Run seed: all randomness and every training seed derive from it."),
            click.option("--preset", type=click.Choice(["paper", "fast"]), default=d("preset"), help="Training preset (see docs/training.md)."),
            click.option("--max-epochs", type=click.IntRange(1), default=None, help="Override the preset's epoch limit."),
            click.option("--patience", type=click.IntRange(1), default=None, help="Override the early-stopping patience."),
            click.option("--batch-size", type=click.IntRange(1), default=None, help="Override the batch size."),
            click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="Override the learning rate."),
            click.option("--max-layers", type=click.IntRange(1), default=None, help="Reject genomes with more layers (fitness 0)."),
            click.option("--max-params", type=click.IntRange(1), default=None, help="Reject networks with more parameters (fitness 0)."),
            click.option("--filters", default=None if not defaults else "16,32,64,96,128,192,224,256,512", help="Filter set, comma-separated."),
            click.option("--population", type=click.IntRange(2), default=d("population"), help="[regularized] population size."),
            click.option("--tournament", type=click.IntRange(1), default=d("tournament"), help="[regularized] tournament size."),
            click.option("--random-max-layers", type=click.IntRange(1), default=d("random_max_layers"), help="[random] longest random genome."),
            click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto" if defaults else None, help="Where to train."),
            config_option,
        ]
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def _settings(preset: str, overrides: dict) -> dict:
    from alife_nas.training import make_settings

    try:
        return make_settings(preset, **overrides).to_dict()
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _load_data(config: RunConfig, download: bool):
    return load_data(config.dataset, config.data_dir, val_size=config.val_size, download=download)


class Reporter:
    """Per-step log lines on stdout; a progress bar and the training in flight on a terminal."""

    def __init__(self, run_dir: str, total_steps: int | None) -> None:
        self.run_dir = run_dir
        self.tty = sys.stderr.isatty()
        self.total = total_steps
        self.started = time.perf_counter()
        self._status = ""

    def training_line(self, text: str) -> None:
        if self.tty:
            line = text[: 110]
            click.echo("\r" + line.ljust(len(self._status)), nl=False, err=True)
            self._status = line

    def on_epoch(self, epoch: int, max_epochs: int, val_acc: float) -> None:
        self.training_line(f"  training: epoch {epoch}/{max_epochs}  val {val_acc:.4f}")

    def on_result(self, request: Any, result: dict, cached: bool) -> None:
        what = "cached" if cached else f"{result.get('epochs') or 0} epochs"
        self.training_line(f"  {request.operator} {result['genome'][:40]} -> {result['fitness']:.4f} ({what})")

    def on_step(self, record: dict, run: Run) -> None:
        if self.tty and self._status:
            click.echo("\r" + " " * len(self._status) + "\r", nl=False, err=True)
            self._status = ""
        s = run.summary()
        total = f"/{self.total}" if self.total is not None else ""
        elapsed = time.perf_counter() - self.started
        click.echo(
            f"step {record['step']}{total}  {record['outcome']:<14} best {s['best']['fitness']:.4f}  "
            f"mean {s['mean']:.4f}  trainings {s['trainings']}  cache hits {s['cache_hits']}  "
            f"failures {s['failures']}  [{elapsed:.0f}s]"
        )


def _drive(run: Run, run_dir: str, reporter: Reporter) -> None:
    """Advance a run to its target; Ctrl-C stops cleanly (everything finished is saved)."""
    try:
        run.advance(on_step=reporter.on_step)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: {run.steps_done} steps and {run.trainings} trainings are saved; "
            f"continue with: alife-nas resume {run_dir}", err=True,
        )
        run.store.close()
        sys.exit(130)
    s = run.summary()
    click.echo(
        f"done: {s['step']} steps, {s['trainings']} trainings, {s['cache_hits']} cache hits; "
        f"best {s['best']['fitness']:.4f} {s['best']['genome']}"
    )
    click.echo(f"results in {run_dir} (see: alife-nas status {run_dir}; alife-nas export {run_dir} --top 15 --format markdown)")
    run.store.close()


def _scorer(config: RunConfig, data: Any, device: str, reporter: Reporter) -> Callable:
    """The real score function: one Trainer (data moved to the device once) for the whole run."""
    from alife_nas.training import Trainer, TrainSettings

    trainer = Trainer(data, TrainSettings.from_dict(config.settings), device)

    def score(genome: Any, seed: int) -> dict:
        return trainer.train(genome, seed, on_epoch=reporter.on_epoch).to_dict()

    return score


@main.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@run_options(defaults=True)
def evolve(out: str, **options: Any) -> None:
    """Start a run in --out (refused when it already holds one) and run it to its end."""
    # RunStore.create refuses this too; checking first avoids loading the data set for nothing.
    if (Path(out) / DB_NAME).exists():
        raise UserError(f"{out} already holds a run; continue it with 'alife-nas resume {out}'")
    device = resolve_device(options["device"])
    config = RunConfig(
        strategy=options["strategy"], dataset=options["dataset"], data_dir=options["data_dir"],
        val_size=options["val_size"], seed=options["seed"], steps=options["steps"], budget=options["budget"],
        device=device, lattice=options["lattice"], radius=options["radius"], torus=not options["bounded"],
        ratio=options["ratio"], master_selection=options["master"], filters=list(parse_filters(options["filters"])),
        population=options["population"], tournament=options["tournament"],
        random_max_layers=options["random_max_layers"],
        settings=_settings(options["preset"], training_overrides(options)),
    )
    if options["budget"] is not None and options["steps"] == DEFAULTS["steps"] and not _given("steps"):
        config.steps = None  # --budget alone: the budget decides when to stop
    data = _load_data(config, options["download"])
    config.input_shape, config.num_classes = list(data.input_shape), int(data.num_classes)
    reporter = Reporter(out, config.steps)
    try:
        run = Run.create(out, config, _scorer(config, data, device, reporter), reporter.on_result)
    except (RunStoreError, ValueError) as exc:
        raise UserError(str(exc)) from None
    click.echo(f"run {out}: {config.strategy} on {config.dataset} {data.sizes()}, device {device}, seed {config.seed}")
    _drive(run, out, reporter)


def _given(name: str) -> bool:
    ctx = click.get_current_context()
    source = ctx.get_parameter_source(name)
    return source not in (None, click.core.ParameterSource.DEFAULT)


@main.command()
@click.argument("run_dir", type=click.Path())
@run_options(defaults=False)
def resume(run_dir: str, **options: Any) -> None:
    """Continue a run after a stop or a crash; options that would change results are refused."""
    store = open_run(run_dir)
    stored = store.config
    given = {
        "strategy": options["strategy"], "dataset": options["dataset"], "val_size": options["val_size"],
        "seed": options["seed"], "lattice": options["lattice"], "radius": options["radius"],
        "torus": None if options["bounded"] is None else not options["bounded"], "ratio": options["ratio"],
        "master_selection": options["master"], "population": options["population"],
        "tournament": options["tournament"], "random_max_layers": options["random_max_layers"],
        "filters": None if options["filters"] is None else list(parse_filters(options["filters"])),
    }
    problems = config_differences(stored, given)
    overrides = training_overrides(options)
    if options["preset"] is not None and options["preset"] != stored["settings"].get("preset"):
        problems.append(f"preset: {stored['settings'].get('preset')!r} -> {options['preset']!r}")
    problems += [f"{k}: {v_old!r} -> {v!r}" for k, v in overrides.items()
                 if (v_old := stored["settings"].get(k)) != v]
    if problems:
        store.close()
        raise UserError(f"{run_dir}: these options would change the run's results: {'; '.join(problems)}"
                        f" (only {', '.join(SAFE_TO_CHANGE)} may change on resume)")
    changes = []
    for key in ("steps", "budget", "data_dir"):
        if options[key] is not None and options[key] != stored.get(key):
            changes.append(f"{key}: {stored.get(key)!r} -> {options[key]!r}")
            stored[key] = options[key]
    device = resolve_device(options["device"] or ("auto" if stored.get("device", "cpu") != "cpu" else "cpu"))
    if device != stored.get("device"):
        changes.append(f"device: {stored.get('device')!r} -> {device!r}")
        stored["device"] = device
    config = RunConfig.from_dict(stored)
    data = _load_data(config, options["download"])
    if changes:
        store.update_config(stored)
        store.log_event("resume", "; ".join(changes))
        click.echo(f"changed on resume: {'; '.join(changes)}")
    store.log_event("resume", f"resumed at step {store.steps_done}")
    reporter = Reporter(run_dir, config.steps)
    run = Run.open(store, _scorer(config, data, device, reporter), reporter.on_result)
    if run.finished():
        click.echo(f"{run_dir} is already complete ({run.steps_done} steps, {run.trainings} trainings); "
                   "give --steps or --budget to go further")
        store.close()
        return
    click.echo(f"resuming {run_dir} at step {run.steps_done} ({run.trainings} trainings so far)")
    _drive(run, run_dir, reporter)


def _status_dict(store: RunStore) -> dict:
    config = store.config
    totals = store.totals()
    last = store.last_step()
    lattice = None
    if last is not None and last["lattice"] is not None:
        snap = last["lattice"]
        lattice = [[{"genome": g, "fitness": f} for g, f in zip(grow, frow)]
                   for grow, frow in zip(snap["genomes"], snap["fitness"])]
    best_eval = store.best_evaluation()
    best_cell = None
    if lattice:
        cells = [(c["fitness"], r, k, c["genome"]) for r, row in enumerate(lattice) for k, c in enumerate(row)]
        fit, r, k, genome = max(cells, key=lambda t: (t[0], -t[1], -t[2]))
        best_cell = {"genome": genome, "fitness": fit, "cell": [r, k]}
    return {
        "run_dir": str(store.run_dir),
        "strategy": config.get("strategy"),
        "dataset": config.get("dataset"),
        "seed": config.get("seed"),
        "initialized": store.initialized,
        "steps_done": totals["steps_done"],
        "steps_target": config.get("steps"),
        "budget": config.get("budget"),
        "trainings": totals["trainings"],
        "cache_hits": totals["cache_hits"],
        "failures": totals["failures"],
        "epochs": totals["epochs"],
        "train_seconds": round(totals["train_seconds"], 3),
        "devices": totals["devices"],
        "lattice": lattice,
        "best": None if best_eval is None else {"genome": best_eval["genome"], "fitness": best_eval["fitness"],
                                                 "params": best_eval["params"], "step": best_eval["step"]},
        "best_in_lattice": best_cell,
    }


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def status(run_dir: str, as_json: bool) -> None:
    """Where a run stands: lattice fitness grid, totals and the best genome found."""
    with open_run(run_dir) as store:
        info = _status_dict(store)
    if as_json:
        click.echo(json.dumps(info))
        return
    target = f"/{info['steps_target']}" if info["steps_target"] is not None else ""
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
