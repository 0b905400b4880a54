"""``evolve``, ``resume`` and ``status``: start, continue and inspect a run directory.

A thin shell over :class:`alife_nas.search.Search`: options -> SearchConfig -> Search -> printed
progress. Every default is the library config's (see ``alife_nas.cli._common.DEFAULTS``).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path
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
from alife_nas.genome import shorten
from alife_nas.search import Search, Summary, read_status
from alife_nas.strategies import STRATEGIES
from alife_nas.tensorboard_log import DEFAULT_EVERY, TensorBoardLog, TensorBoardMissing
from alife_nas.tensorboard_log import LOG_DIR as TENSORBOARD_DIR
from alife_nas.tensorboard_log import check_available as check_tensorboard


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
        _option("population", type=int, help="[regularized, ga] population size."),
        _option("tournament", type=int, help="[regularized] tournament size."),
        _option("random_max_layers", type=int, help="[random, ga] longest random genome (ga: of the initial population)."),
        _option("mutation_prob", type=float, help="[ga] probability pM that a member which did not cross mutates."),
        _option("mutation_per_layer", type=float, help="[ga] probability qM that a mutation edits each layer."),
        _option("crossover_prob", type=float, help="[ga] probability pC that a pair crosses."),
        _option("crossover_per_stage", type=float, help="[ga] probability qC that a crossing pair exchanges each stage."),
        _option("controller_batch", type=int, help="[rl] genomes the controller writes per step (m)."),
        _option("controller_hidden", type=int, help="[rl] LSTM units of the controller."),
        _option("controller_lr", type=float, help="[rl] the controller's Adam learning rate."),
        _option("baseline_decay", type=float, help="[rl] decay of the reward baseline's moving average."),
        _option("controller_max_layers", type=int, help="[rl] longest genome the controller writes."),
        _option("masters", type=int, help="[neuralfinder] masters per step, far enough apart that their steps "
                                          "never touch the same cell; their candidates train as one batch."),
        _option("better_by", type=click.Choice(["accuracy", "error"]),
                help="[neuralfinder] what the ratio r is relative to: accuracy (the seed's: x > y(1+r)) or the "
                     "error rate ((1-x) < (1-y)(1-r); does not freeze near the top)."),
        _option("reevaluate", type=int, help="Trainings a genome gets (fresh seeds) before a strategy relies on "
                                             "it, when it would become the best or enter the lattice/population; "
                                             "the strategy gets their mean. 1 = trust one training."),
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
        watch_options,
        config_option,
    ]
    return data_options(training_options(with_options(options, func)))


#: Seconds of silence after which a log (not a terminal) gets a line about the trainings in flight.
HEARTBEAT_SECONDS = 60.0
#: What the progress bar and the log lines show of a genome.
_GENOME_SHOWN = 28

#: ctx.meta key of the options that only watch a run (shown output, TensorBoard): never in its config.
_WATCH = "alife_nas.watch"


def _watch_option(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Keep a watching option for :func:`_drive`; once both TensorBoard options are read, check
    them, so a missing package is refused before any run is written."""
    watch = ctx.meta.setdefault(_WATCH, {})
    watch[param.name] = value
    if param.name in ("tensorboard", "tensorboard_every") and {"tensorboard", "tensorboard_every"} <= watch.keys():
        if watch["tensorboard"]:
            try:
                check_tensorboard()
            except TensorBoardMissing as exc:
                raise UserError(str(exc)) from None
        elif watch["tensorboard_every"] is not None:
            raise UserError("--tensorboard-every needs --tensorboard")
    return value


def watch_options(func: Callable) -> Callable:
    """How a run is watched: the progress display and the TensorBoard log (not part of the run's config)."""
    options = [
        click.option("--progress", type=click.Choice(["auto", "bar", "lines"]), default="auto", show_default=True,
                     expose_value=False, callback=_watch_option,
                     help="bar: a progress bar on stderr; lines: a line per finished training, with a heartbeat "
                          "line while a long one runs; auto: the bar on a terminal, lines where stdout is not one."),
        click.option("--tensorboard", is_flag=True, default=False, expose_value=False, callback=_watch_option,
                     help='Write a TensorBoard log to RUN_DIR/tensorboard (pip install "alife-nas[tensorboard]").'),
        click.option("--tensorboard-every", type=click.IntRange(min=1), default=None, expose_value=False,
                     callback=_watch_option,
                     help=f"Steps between two lattice images in the TensorBoard log.  [default: {DEFAULT_EVERY}]"),
    ]
    return with_options(options, func)


class Reporter:
    """Shows a run's progress: step lines on stdout; a tqdm bar on stderr (terminal); line output
    with heartbeats (logs and pipes).

    The bar counts trainings against the budget when the run has one, else steps against the step
    target (after a bar over the initialisation's trainings); elapsed and remaining time, the best
    so far and the trainings in flight (every worker's, with its epoch) follow it. The lines are a
    line per finished training and, while a training runs, a heartbeat at most every
    ``heartbeat`` seconds, so a log never goes quiet for minutes.
    """

    def __init__(self, run_dir: str, *, steps: int | None = None, budget: int | None = None, steps_done: int = 0,
                 trainings: int = 0, initialized: bool = True, init_trainings: int | None = None,
                 best: tuple[float, str | None] = (0.0, None), bar: bool | None = None, lines: bool | None = None,
                 heartbeat: float = HEARTBEAT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.run_dir = run_dir
        self.steps, self.budget = steps, budget
        self.steps_done, self.trainings, self.initialized = steps_done, trainings, initialized
        self._stored = trainings  # trainings stored before this session: a replay of one is not new
        self.init_trainings = init_trainings
        self._init_seen = 0
        self.best_fitness, self.best_genome = best
        self.use_bar = sys.stderr.isatty() if bar is None else bar
        # A log (stdout not a terminal) gets the training lines even under a bar; so does a terminal without one.
        self.lines = (not self.use_bar or not sys.stdout.isatty()) if lines is None else lines
        self.heartbeat = heartbeat
        self.clock = clock
        self.started = self._quiet_since = clock()
        self._flight: dict[int, str] = {}  # worker -> what it is training
        self._bar: Any = None
        self._phase = ""  # what the bar counts: trainings, init or steps
        if self.use_bar:
            self._open_bar()

    @classmethod
    def for_search(cls, search: Search, run_dir: str, mode: str = "auto", **kwargs: Any) -> "Reporter":
        """A reporter that starts where ``search`` stands; ``mode`` is auto, bar or lines."""
        store = search.store
        best = store.best_evaluation()
        forced = {"auto": {}, "bar": {"bar": True}, "lines": {"bar": False, "lines": True}}[mode]
        return cls(run_dir, steps=search.config.stop.steps, budget=search.config.stop.budget,
                   steps_done=search.steps_done, trainings=search.trainings, initialized=store.initialized,
                   init_trainings=search.strategy.initial_trainings(),
                   best=(0.0, None) if best is None else (best.fitness, best.genome), **{**forced, **kwargs})

    # --- the bar -------------------------------------------------------------------------------
    def _open_bar(self) -> None:
        """The bar of the phase the run is in: trainings (budget), the initialisation, or steps."""
        from tqdm import tqdm

        if self.budget is not None:
            desc, total, done = "trainings", self.budget, self.trainings
        elif not self.initialized:
            desc, total, done = "init", self.init_trainings, self._init_seen
        else:
            desc, total, done = "steps", self.steps, self.steps_done
        if total is None:
            form = "{desc} {n_fmt} | {elapsed} elapsed{postfix}"
        else:
            form = "{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed} elapsed, {remaining} left{postfix}"
        self._bar = tqdm(total=total, initial=min(done, total or done), desc=desc, file=sys.stderr,
                         bar_format=form, dynamic_ncols=True, mininterval=0.2, disable=False, leave=True)
        self._phase = desc
        self._show()

    def _advance(self, done: int) -> None:
        """Move the bar to ``done`` (never back, never past its total)."""
        if self._bar is None:
            return
        if self._bar.total is not None:  # the step that crosses the budget finishes: stay at full
            done = min(done, self._bar.total)
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def _show(self) -> None:
        """The bar's text after the counts: the best so far, then what is training."""
        if self._bar is None:
            return
        best = f"best {self.best_fitness:.4f} {shorten(self.best_genome, _GENOME_SHOWN)}" if self.best_genome else ""
        self._bar.set_postfix_str("  ".join(t for t in (best, self._flight_text()) if t), refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        """Take the bar off the screen's last line (it stays above as a record)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # --- lines ---------------------------------------------------------------------------------
    def echo(self, line: str) -> None:
        """A line on stdout that leaves the bar whole."""
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)
        else:
            click.echo(line)
        self._quiet_since = self.clock()

    def _flight_text(self) -> str:
        if list(self._flight) == [0]:  # serial, or one worker busy: no worker numbers needed
            return f"training {self._flight[0]}"
        return " | ".join(f"w{w}: {t}" for w, t in sorted(self._flight.items()))

    def _elapsed(self) -> str:
        return _duration(self.clock() - self.started)

    # --- callbacks of Search.run ---------------------------------------------------------------
    def on_progress(self, p: Progress) -> None:
        """A worker started a training, finished an epoch or went idle: the bar, or a heartbeat line."""
        if p.task is None:
            self._flight.pop(p.worker, None)
        else:
            epoch = f" {p.epoch}/{p.max_epochs} {p.val:.3f}" if p.epoch else ""
            self._flight[p.worker] = f"{shorten(p.task.genome, _GENOME_SHOWN)}{epoch}"
        self._show()
        if self.lines and self._flight and self.clock() - self._quiet_since >= self.heartbeat:
            self.echo(f"  still training [{self._elapsed()}]: {self._flight_text()}")

    def on_result(self, request: Any, ev: Any, cached: bool) -> None:
        """A candidate's evaluation arrived (trained or from the cache): counts, best, a line for a log."""
        if not cached and ev.order > self._stored:  # a new training (not one replayed after a crash)
            self.trainings += 1
        if ev.fitness > self.best_fitness or self.best_genome is None:
            self.best_fitness, self.best_genome = ev.fitness, ev.genome
        if not self.initialized:
            self._init_seen += 1
        if self._phase == "trainings":
            self._advance(self.trainings)
        elif self._phase == "init":
            self._advance(self._init_seen)
        self._show()
        if self.lines and not cached:
            self.echo(f"  {request.operator} {shorten(ev.genome, 40)} -> {ev.fitness:.4f} ({ev.epochs or 0} epochs)")

    def on_step(self, s: Summary) -> None:
        """A step finished: its line on stdout; the bar moves on (from the initialisation to the steps)."""
        outcome = (s.record or {}).get("outcome", "")
        step = (s.record or {}).get("step", s.step)
        total = f"/{self.steps}" if self.steps is not None else ""
        self.trainings, self.steps_done = s.trainings, s.step
        if s.best_genome is not None:
            self.best_fitness, self.best_genome = s.best_fitness, s.best_genome
        self.echo(
            f"step {step}{total}  {outcome:<14} best {s.best_fitness:.4f}  mean {s.mean:.4f}  "
            f"trainings {s.trainings}  cache hits {s.cache_hits}  failures {s.failures}  [{self._elapsed()}]"
        )
        if not self.initialized:
            self.initialized = True
            if self._bar is not None and self._phase == "init":  # on to the steps' bar
                self._advance(self.init_trainings or self._init_seen)
                self.close()
                self._open_bar()
                return
        if self._bar is not None:
            self._advance(self.trainings if self._phase == "trainings" else self.steps_done)
            self._show()


class _Observers:
    """The search's callbacks, handed to the reporter and to the optional observers (TensorBoard).

    An optional observer that fails (a full disk) is dropped with one warning line: watching a
    run must never stop it.
    """

    def __init__(self, reporter: Reporter, optional: list[Any]) -> None:
        self.reporter = reporter
        self.optional = optional

    def _each(self, method: str, *args: Any) -> None:
        for observer in list(self.optional):
            try:
                getattr(observer, method)(*args)
            except Exception as exc:  # noqa: BLE001 - an observer's failure is reported, not fatal
                self.optional.remove(observer)
                self.reporter.echo(f"warning: {type(observer).__name__} stopped: {type(exc).__name__}: {exc}")

    def on_step(self, s: Summary) -> None:
        self.reporter.on_step(s)
        self._each("on_step", s)

    def on_result(self, request: Any, ev: Any, cached: bool) -> None:
        self.reporter.on_result(request, ev, cached)
        self._each("on_result", request, ev, cached)

    def close(self) -> None:
        self.reporter.close()
        self._each("close")


def _drive(search: Search, run_dir: str) -> None:
    """Run a search to its target; Ctrl-C stops cleanly (everything finished is saved)."""
    ctx = click.get_current_context(silent=True)
    watch = ctx.meta.get(_WATCH, {}) if ctx is not None else {}
    optional: list[Any] = []
    if watch.get("tensorboard"):
        log_dir = Path(run_dir) / TENSORBOARD_DIR
        try:
            optional.append(TensorBoardLog(run_dir, search.store, watch.get("tensorboard_every") or DEFAULT_EVERY))
            click.echo(f"TensorBoard log in {log_dir} (see: tensorboard --logdir {log_dir})")
        except OSError as exc:  # the run itself can go on
            click.echo(f"warning: no TensorBoard log: cannot write {log_dir}: {exc.strerror or exc}", err=True)
    observers = _Observers(Reporter.for_search(search, run_dir, watch.get("progress") or "auto"), optional)
    try:
        with user_errors():
            s = search.run(on_step=observers.on_step, on_result=observers.on_result,
                           on_progress=observers.reporter.on_progress)
    except KeyboardInterrupt:
        observers.close()
        click.echo(
            f"\ninterrupted: {search.steps_done} steps and {search.trainings} trainings are saved; "
            f"continue with: alife-nas resume {run_dir}", err=True,
        )
        search.close()
        sys.exit(130)
    except BaseException:
        observers.close()
        search.close()
        raise
    observers.close()
    search.close()
    click.echo(f"done: {s.step} steps, {s.trainings} trainings, {s.cache_hits} cache hits; "
               f"best {s.best_fitness:.4f} {s.best_genome}")
    click.echo(f"results in {run_dir} (see: alife-nas status {run_dir}; alife-nas export {run_dir} --top 15 --format markdown)")


@main.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@search_options
def evolve(out: str, download: bool, **options: Any) -> None:
    """Start a run in --out (refused when it already holds one) and run it to its end."""
    if not out.strip():  # '' would make the current directory the run directory
        raise UserError(f"--out must name a run directory, got {out!r}")
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
    reevaluate = f", reevaluate {info['reevaluate']}" if info.get("reevaluate", 1) > 1 else ""
    click.echo(f"run {run_dir}: {info['strategy']} on {info['dataset']}, seed {info['seed']}{reevaluate}")
    click.echo(f"steps {info['steps_done']}{target}{budget}  trainings {info['trainings']}  cache hits {info['cache_hits']}"
               f"  failures {info['failures']}  epochs {info['epochs']}  training time {_duration(info['train_seconds'])}"
               f" on {', '.join(d for d in info['devices'] if d) or '-'}")
    if info["lattice"]:
        click.echo("lattice fitness:")
        for row in info["lattice"]:
            click.echo("  " + " ".join(f"{cell['fitness']:.3f}" for cell in row))
    if info["best"]:
        b = info["best"]
        click.echo(f"best found: {b['fitness']:.4f} {_samples(b)}  {b['genome']}  "
                   f"({b['params']} params, step {b['step']})")
    if info["best_in_lattice"]:
        b = info["best_in_lattice"]
        click.echo(f"best in lattice: {b['fitness']:.4f} {_samples(b)}  {b['genome']}  "
                   f"(cell {b['cell'][0]},{b['cell'][1]})")
    elif not info["initialized"]:
        click.echo("no training finished yet")
    if (Path(run_dir) / TENSORBOARD_DIR).is_dir():
        click.echo(f"TensorBoard log: tensorboard --logdir {Path(run_dir) / TENSORBOARD_DIR}")


def _samples(genome: dict) -> str:
    """How many trainings a shown fitness rests on, with their range when there are several."""
    spread = genome.get("fitness_range")
    return f"(n={genome.get('samples', 1)}" + (f", {spread[0]:.4f}-{spread[1]:.4f})" if spread else ")")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


__all__ = ["evolve", "resume", "status", "UserError"]
