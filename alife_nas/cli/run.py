"""``evolve``, ``resume`` and ``status``: start, continue and inspect a run directory.

A thin shell over :class:`alife_nas.search.Search`: options -> SearchConfig -> Search -> printed
progress. Every default is the library config's (see ``alife_nas.cli._common.DEFAULTS``).
"""
from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import click

from alife_nas.cli._common import (
    UserError,
    build_config,
    config_option,
    data_options,
    declared_option,
    download_option,
    given,
    open_run,
    section_names,
    strategy_option_names,
    training_options,
    user_errors,
    with_options,
)
from alife_nas.cli._estimate import TimeLeft, genome_cost
from alife_nas.cli._group import main
from alife_nas.config import ExecutionConfig, FitnessConfig, StopConfig
from alife_nas.contract import PRUNED
from alife_nas.executors import Progress
from alife_nas.genome import shorten
from alife_nas.inheritance import WEIGHTS_DIR
from alife_nas.search import Search, Summary, read_status
from alife_nas.store import UNKNOWN_FAILURE_KIND, rank_key
from alife_nas.tensorboard_log import DEFAULT_EVERY, TensorBoardLog, TensorBoardMissing
from alife_nas.tensorboard_log import LOG_DIR as TENSORBOARD_DIR
from alife_nas.tensorboard_log import check_available as check_tensorboard


def search_options(func: Callable) -> Callable:
    """The options of ``evolve`` and ``resume``: every one defaults to the library's (None = not given)."""
    names = ["strategy", "seed", "init_genomes", *section_names(StopConfig)]
    options = [declared_option(n) for n in names] + [download_option]
    options += [declared_option(n) for n in [*strategy_option_names(), *section_names(FitnessConfig), "device",
                                             *section_names(ExecutionConfig)]]
    options += [
        watch_options,
        config_option,
    ]
    return data_options(training_options(with_options(options, func)))


#: Seconds of silence after which a log (not a terminal) gets a line about the trainings in flight.
HEARTBEAT_SECONDS = 60.0
#: What the progress bar and the log lines show of a genome.
_GENOME_SHOWN = 28
#: What a log line shows of a failed training's reason (``export --failures`` has it whole).
_REASON_SHOWN = 120
#: What ``status`` shows of each failure kind's example reason.
_EXAMPLE_SHOWN = 80

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
        click.option("--report-every", type=click.IntRange(min=1), default=None, expose_value=False,
                     callback=_watch_option,
                     help="Rewrite the web page RUN_DIR/report/index.html every N steps and at the end "
                          "(alife-nas report; a page that cannot be written never stops the run)."),
    ]
    return with_options(options, func)


class Reporter:
    """Shows a run's progress: step lines on stdout; a tqdm bar on stderr (terminal); line output
    with heartbeats (logs and pipes).

    The bar counts trainings against the budget when the run has one, else steps against the step
    target (after a bar over the initialisation's trainings); elapsed and remaining time, the best
    so far and the trainings in flight (every worker's, with its epoch) follow it. The time left
    is :class:`~alife_nas.cli._estimate.TimeLeft`'s, from the trainings still to come weighted by
    their expected cost; it moves with every training and epoch, and (``tick``) every second in
    between. The lines are a line per finished training and, while a training runs, a heartbeat
    at most every ``heartbeat`` seconds, so a log never goes quiet for minutes.

    Trainings of the step in flight that a killed session had finished (``replayable``: their
    (step, index, sample)) come back from the store when the step is replayed: they are marked
    ``replayed`` in the lines and the bar, and count neither as new trainings nor as time spent.
    """

    def __init__(self, run_dir: str, *, steps: int | None = None, budget: int | None = None, steps_done: int = 0,
                 trainings: int = 0, initialized: bool = True, init_trainings: int | None = None,
                 best: tuple[float, str | None] = (0.0, None), bar: bool | None = None, lines: bool | None = None,
                 heartbeat: float = HEARTBEAT_SECONDS, clock: Callable[[], float] = time.monotonic,
                 estimate: TimeLeft | None = None, step_trainings: Sequence[int] = (),
                 replayable: Iterable[tuple[int, int, int]] = (), tick: float | None = 1.0) -> None:
        self.run_dir = run_dir
        self.steps, self.budget = steps, budget
        self.steps_done, self.trainings, self.initialized = steps_done, trainings, initialized
        self._replayable = set(replayable)  # what a killed session finished of the step in flight
        self._replayed = 0  # of them, seen again in this step
        self.init_trainings = init_trainings
        self._init_seen = 0
        self.estimate = estimate or TimeLeft(clock=clock)
        self._step_trainings = list(step_trainings)  # trainings each finished step (after step 0) made
        self._step_seen = 0  # trainings (new or replayed) of the step in flight
        self._flight_genome: dict[int, str] = {}  # worker -> the genome it trains
        self._lock = threading.RLock()  # the ticker redraws the bar from another thread
        self._ticker: threading.Thread | None = None
        self._stop_ticking = threading.Event()
        self.best_fitness, self.best_genome = best
        self._best_params: int | None = None  # the best's size and training order, for rank_key on a tie
        self._best_order: int | None = None
        self.use_bar = sys.stderr.isatty() if bar is None else bar
        # A log (stdout not a terminal) gets the training lines even under a bar; so does a terminal without one.
        self.lines = (not self.use_bar or not sys.stdout.isatty()) if lines is None else lines
        self.heartbeat = heartbeat
        self.clock = clock
        self.started = self._quiet_since = clock()
        self._flight: dict[int, str] = {}  # worker -> what it is training
        self._bar: Any = None
        self._bar_started: float | None = None  # tqdm's start time of the session's first bar
        self._phase = ""  # what the bar counts: trainings, init or steps
        if self.use_bar:
            self._open_bar()
            if tick:
                self._ticker = threading.Thread(target=self._tick, args=(tick,), name="progress-bar", daemon=True)
                self._ticker.start()

    @classmethod
    def for_search(cls, search: Search, run_dir: str, mode: str = "auto", **kwargs: Any) -> "Reporter":
        """A reporter that starts where ``search`` stands; ``mode`` is auto, bar or lines."""
        store, config = search.store, search.config
        best = store.best_evaluation()
        forced = {"auto": {}, "bar": {"bar": True}, "lines": {"bar": False, "lines": True}}[mode]
        clock = kwargs.get("clock", time.monotonic)
        estimate = TimeLeft(slots=getattr(search.executor, "slots", 1), max_epochs=config.training.max_epochs,
                            cost=_cost_of(store, config), clock=clock)
        in_flight = search.steps_done + 1 if store.initialized else 0  # the step a restart replays
        replayable = set()
        for ev in store.evaluations():  # the run's trainings so far: what a training is expected to take
            estimate.finished(ev.train_time, ev.epochs, ev.flops)
            if ev.step == in_flight:
                replayable.add((ev.step, ev.index, 0))
        for _key, sample, ev in store.samples():
            estimate.finished(ev.train_time, ev.epochs, None)
            if ev.step == in_flight:
                replayable.add((ev.step, ev.index, sample))
        init = search.initial_trainings()
        reporter = cls(run_dir, steps=config.stop.steps, budget=config.stop.budget,
                       steps_done=search.steps_done, trainings=search.trainings, initialized=store.initialized,
                       init_trainings=init, best=(0.0, None) if best is None else (best.fitness, best.genome),
                       estimate=estimate, step_trainings=[r.trainings for r in store.step_rows() if r.step > 0],
                       replayable=replayable, **{**forced, **kwargs})
        if best is not None:
            reporter._best_params, reporter._best_order = best.params, best.order
        budget = config.stop.budget
        if budget is not None and not store.initialized and init > budget:
            reporter.echo(f"note: the initialisation trains {init} genomes, more than the budget of {budget} "
                          "trainings; the run ends after it, with no step")
        return reporter

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
        else:  # the time left is ours (in the postfix): tqdm's only moves when the count does
            form = "{desc} {n_fmt}/{total_fmt} |{bar}| {elapsed} elapsed{postfix}"
        self._phase = desc
        self._bar = tqdm(total=total, initial=min(done, total or done), desc=desc, file=sys.stderr,
                         bar_format=form, dynamic_ncols=True, mininterval=0.2, disable=False, leave=True,
                         postfix=None if total is None else f"{self.time_left()} left")
        if self._bar_started is None:
            self._bar_started = self._bar.start_t
        else:  # the steps' bar after the initialisation's: elapsed is the session's
            self._bar.start_t = self._bar_started
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
        """The bar's text after the counts: the time left, the best so far, then what is training."""
        with self._lock:
            if self._bar is None:
                return
            best = f"best {self.best_fitness:.4f} {shorten(self.best_genome, _GENOME_SHOWN)}" if self.best_genome else ""
            replayed = f"{self._replayed} replayed" if self._replayed else ""
            text = "  ".join(t for t in (best, replayed, self._flight_text()) if t)
            if self._bar.total is not None:
                text = f"{self.time_left()} left" + (f", {text}" if text else "")
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.refresh()

    def _tick(self, every: float) -> None:
        """Redraw the bar every ``every`` seconds: elapsed and left move with the clock."""
        while not self._stop_ticking.wait(every):
            try:
                self._show()
            except Exception:  # noqa: BLE001 - e.g. the stream went away: a clock is not worth an error
                return

    def to_start(self) -> float | None:
        """Trainings of what the bar counts that have not started yet (None: not known yet)."""
        flying = self.estimate.in_flight
        if self._phase == "trainings" and self.budget is not None:
            return max(0, self.budget - self.trainings - flying)
        if self._phase == "init" and self.init_trainings is not None:
            return max(0, self.init_trainings - self._init_seen - flying)
        if self._phase == "steps" and self.steps is not None:
            left = self.steps - self.steps_done
            if left <= 0:
                return 0
            if not self._step_trainings:  # no step finished yet: how many trainings one makes is unknown
                return None
            per_step = sum(self._step_trainings) / len(self._step_trainings)
            return max(0.0, left * per_step - self._step_seen - flying)
        return None

    def time_left(self) -> str:
        """The estimate as the bar shows it (``12:03``, ``1:02:03``), ``?`` while there is none."""
        from tqdm import tqdm

        seconds = self.estimate.left(self.to_start())
        return "?" if seconds is None else tqdm.format_interval(round(seconds))

    def close(self) -> None:
        """Take the bar off the screen's last line (it stays above as a record)."""
        self._stop_ticking.set()
        if self._ticker is not None and self._ticker is not threading.current_thread():
            self._ticker.join(timeout=2.0)
        with self._lock:
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
        with self._lock:
            if p.task is None:
                self._flight.pop(p.worker, None)
                self._flight_genome.pop(p.worker, None)
                self.estimate.idle(p.worker)
            else:
                epoch = f" {p.epoch}/{p.max_epochs} {p.val:.3f}" if p.epoch else ""
                self._flight[p.worker] = f"{shorten(p.task.genome, _GENOME_SHOWN)}{epoch}"
                self._flight_genome[p.worker] = p.task.genome
                if p.epoch:
                    self.estimate.epoch(p.worker, p.task.genome, p.epoch, p.max_epochs)
                else:
                    self.estimate.started(p.worker, p.task.genome, p.max_epochs)
        self._show()
        if self.lines and self._flight and self.clock() - self._quiet_since >= self.heartbeat:
            self.echo(f"  still training [{self._elapsed()}]: {self._flight_text()}")

    def on_result(self, request: Any, ev: Any, cached: bool) -> None:
        """A candidate's evaluation arrived (trained, replayed after a restart, or from the cache):
        counts, best, the time left, a line for a log."""
        replayed = not cached and (ev.step, ev.index, request.sample) in self._replayable
        with self._lock:
            if not cached:
                self._step_seen += 1
                self._replayed += replayed
                for worker, genome in list(self._flight_genome.items()):  # it is no longer in flight
                    if genome == ev.genome:
                        self._flight_genome.pop(worker)
                        self._flight.pop(worker, None)
                        self.estimate.idle(worker)
                        break
                if not replayed:  # a new training: one more done, and what it took
                    self.trainings += 1
                    self.estimate.finished(ev.train_time, ev.epochs, ev.flops)
            if self._is_better(ev):
                self.best_fitness, self.best_genome = ev.fitness, ev.genome
                self._best_params, self._best_order = ev.params, ev.order
            if not self.initialized:
                self._init_seen += 1
            if self._phase == "trainings":
                self._advance(self.trainings)
            elif self._phase == "init":
                self._advance(self._init_seen)
        self._show()
        if self.lines and not cached:
            if ev.failure_kind == PRUNED:  # stopped on purpose (--prune): its best so far, not a failure
                how = ", replayed: trained before the restart" if replayed else ""
                best = max(ev.history, default=0.0)
                self.echo(f"  {request.operator} {shorten(ev.genome, 40)} -> pruned at {best:.4f} "
                          f"({ev.epochs or 0} epochs{how})")
                return
            if ev.failure is not None:  # a failure says why: its kind and (shortened) reason
                notes = "; ".join(t for t in (shorten(ev.failure, _REASON_SHOWN),
                                              "replayed: trained before the restart" if replayed else "") if t)
                self.echo(f"  {request.operator} {shorten(ev.genome, 40)} -> failed: {_kind(ev.failure_kind)}"
                          + (f" ({notes})" if notes else ""))
                return
            how = ", replayed: trained before the restart" if replayed else ""
            self.echo(f"  {request.operator} {shorten(ev.genome, 40)} -> {ev.fitness:.4f} ({ev.epochs or 0} epochs{how})")

    def _is_better(self, ev: Any) -> bool:
        """Is this training the best so far, by the run's one rule (:func:`alife_nas.store.rank_key`)?
        A failure never is; on a tie with a best whose size is not known here, the best stays."""
        if ev.failure or not math.isfinite(ev.fitness):
            return False
        if self.best_genome is None or ev.fitness > self.best_fitness:
            return True
        if ev.fitness < self.best_fitness or self._best_params is None:
            return False
        ours = rank_key(self.best_fitness, self._best_params, self._best_order, self.best_genome)
        return rank_key(ev.fitness, ev.params, ev.order, ev.genome) < ours

    def on_step(self, s: Summary) -> None:
        """A step finished: its line on stdout; the bar moves on (from the initialisation to the steps)."""
        outcome = (s.record or {}).get("outcome", "")
        step = (s.record or {}).get("step", s.step)
        total = f"/{self.steps}" if self.steps is not None else ""
        self.trainings, self.steps_done = s.trainings, s.step
        if s.best_genome is not None:
            self.best_fitness, self.best_genome = s.best_fitness, s.best_genome
            self._best_params = self._best_order = None  # the store's best (rank_key's): only a higher fitness beats it
        if step and step > 0:
            self._step_trainings.append(self._step_seen)
        self._step_seen, self._replayed = 0, 0
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


def _cost_of(store: Any, config: Any) -> Callable[[str], float | None] | None:
    """Genome -> FLOPs per image on the run's input (the cost weight of the time left), or None
    for a run stored without its data set's shape."""
    try:
        info = store.dataset_info
        return genome_cost(tuple(info["input_shape"]), int(info["num_classes"]), config.training)
    except (TypeError, KeyError, ValueError):
        return None


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


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, as Ctrl-C raises KeyboardInterrupt: every layer that lets
    Ctrl-C through (a training, the executor, the store's transactions) stops the same way."""


class _StopSignals:
    """While a run is driven, SIGTERM (batch schedulers, ``docker stop``, ``kill PID``) stops it as
    Ctrl-C does: :class:`_Terminated` is raised in the main thread, also in the middle of a training
    in this process. The first SIGTERM stops the run; later ones, and any once :meth:`disarm` was
    called (the run is finishing or stopping), are ignored. The handler found before is restored on
    exit. A signal this process was started ignoring stays ignored, as POSIX asks: a run started
    where SIGINT is ignored (``cmd &`` in a script) is not stopped by ``kill -INT``, but ``kill PID``
    (SIGTERM) stops it cleanly.
    Only the main thread can take signals: elsewhere (a test driving the CLI in a thread) nothing
    is installed.
    """

    def __init__(self) -> None:
        self.armed = False
        self._installed = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.armed:
            self.armed = False
            raise _Terminated()

    def disarm(self) -> None:
        self.armed = False

    def __enter__(self) -> "_StopSignals":
        if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) != signal.SIG_IGN:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = self.armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        self.armed = False
        if self._installed:  # None: a handler set outside Python, which SIG_DFL stands for best
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self._previous is None else self._previous)
            self._installed = False


def _drive(search: Search, run_dir: str) -> None:
    """Run a search to its target; Ctrl-C or SIGTERM stops cleanly (everything finished is saved)."""
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
    if watch.get("report_every"):
        from alife_nas.report import ReportWriter

        writer = ReportWriter(run_dir, search.store, watch["report_every"])
        optional.append(writer)
        click.echo(f"web page in {writer.path} (every {_count(writer.every, 'step')} and at the end)")
    observers = _Observers(Reporter.for_search(search, run_dir, watch.get("progress") or "auto"), optional)
    for observer in optional:
        if hasattr(observer, "warn"):
            observer.warn = observers.reporter.echo  # a line that leaves the progress bar whole
    with _StopSignals() as stop:
        try:
            with user_errors():
                s = search.run(on_step=observers.on_step, on_result=observers.on_result,
                               on_progress=observers.reporter.on_progress)
            stop.disarm()  # finished: a SIGTERM from here on does not turn a finished run into a stopped one
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (_Terminated)
            stop.disarm()  # stopping already: a second SIGTERM must not cut the stopping short
            observers.close()
            how, code = ("interrupted by SIGTERM", 143) if isinstance(exc, _Terminated) else ("\ninterrupted", 130)
            click.echo(
                f"{how}: {_count(search.steps_done, 'step')} and {_count(search.trainings, 'training')} are saved; "
                f"continue with: alife-nas resume {run_dir}", err=True,
            )
            search.close()  # stops the workers
            sys.exit(code)
        except BaseException:
            stop.disarm()
            observers.close()
            search.close()
            raise
        done = _done_line(search, s)  # reads the run's failures: before the store is closed
        observers.close()
        search.close()
    click.echo(done)
    click.echo(f"results in {run_dir} (see: alife-nas status {run_dir}; alife-nas export {run_dir} --top 15 --format markdown)")


@main.command()
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Run directory to create.")
@click.option("--force", is_flag=True, help="Start even when more than a quarter of the initial genomes exceed "
              "the size caps on this input (docs/running.md).")
@search_options
def evolve(out: str, download: bool, force: bool, **options: Any) -> None:
    """Start a run in --out (refused when it already holds one) and run it to its end."""
    if not out.strip():  # '' would make the current directory the run directory
        raise UserError(f"--out must name a run directory, got {out!r}")
    config = build_config(options)
    with user_errors():
        search = Search.create(out, config, download=download, force=force)
    data = search.data
    click.echo(f"run {out}: {config.strategy} on {data.name} {data.sizes()}, device {search.config.device}, "
               f"seed {config.seed}")
    if search.feasibility is not None:
        click.echo(search.feasibility.line())
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
        click.echo(f"{run_dir} is already complete ({_count(search.steps_done, 'step')}, "
                   f"{_count(search.trainings, 'training')}); "
                   "give --steps or --budget to go further")
        search.close()
        return
    if search.changes:
        click.echo(f"changed on resume: {'; '.join(search.changes)}")
    if search.device_note:
        click.echo(search.device_note)
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
    reevaluate += f", prune {info['prune']}" if info.get("prune", "none") != "none" else ""
    network = f", head {info.get('head', 'flatten')}, batchnorm {'on' if info.get('batchnorm') else 'off'}"
    click.echo(f"run {run_dir}: {info['strategy']} on {info['dataset']}, seed {info['seed']}{reevaluate}, "
               f"preset {info.get('preset')}{network}")
    pruned = f" ({info['pruned']} pruned)" if info.get("pruned") else ""
    click.echo(f"steps {info['steps_done']}{target}{budget}  trainings {info['trainings']}{pruned}"
               f"  cache hits {info['cache_hits']}"
               f"  failures {info['failures']}  epochs {info['epochs']}  training time {_duration(info['train_seconds'])}"
               f" on {', '.join(d for d in info['devices'] if d) or '-'}"
               + (f"  training FLOPs {info['train_flops']:.3g}" if info.get("train_flops") else ""))
    if info["failures_by_kind"]:
        click.echo(_failures_line(info["failures"], info["failures_by_kind"]))
    if info.get("weights"):
        kept = info["weights"]
        click.echo(f"inherited weights kept: {kept['files']} files, {kept['bytes'] / 2**20:.1f} MiB in "
                   f"{Path(run_dir) / WEIGHTS_DIR}")
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
    for line in _status_notes(info):
        click.echo(line)
    if (Path(run_dir) / TENSORBOARD_DIR).is_dir():
        click.echo(f"TensorBoard log: tensorboard --logdir {Path(run_dir) / TENSORBOARD_DIR}")


def _count(n: int, word: str) -> str:
    """``1 step``, ``2 steps``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _none_succeeded(search: Search) -> str:
    """``no training succeeded: too_large 9 (e.g. 512: network has ...)``: why, from the failures."""
    by_kind = search.store.failures_by_kind()
    return f"no training succeeded: {_failure_kinds(by_kind)}" if by_kind else "no training succeeded"


def _done_line(search: Search, s: Summary) -> str:
    """The last line of a run: how far it got and why it stopped there, then the best found."""
    stop, init = search.config.stop, search.initial_trainings()
    counts = f"{s.trainings} trainings, {s.cache_hits} cache hits"
    best = f"best {s.best_fitness:.4f} {s.best_genome}" if s.best_genome else _none_succeeded(search)
    if not s.finished:  # Search.run gave up: steps in a row that trained nothing new
        return f"stopped after {s.step} steps: the last steps trained nothing new (search space exhausted?); {counts}; {best}"
    if s.step == 0 and stop.budget is not None and s.trainings >= stop.budget and stop.steps != 0:
        return (f"done: the initialisation only, no step after it: its {init} genomes used the budget of "
                f"{stop.budget} trainings (give a larger --budget for steps); {counts}; {best}")
    if s.step == 0:
        return f"done: the initialisation only (--steps 0); {counts}; {best}"
    return f"done: {s.step} step{'s' if s.step != 1 else ''} after the initialisation, {counts}; {best}"


def _status_notes(info: dict) -> list[str]:
    """What ``status`` says besides the best genomes: why one is missing, and where the run is."""
    notes = []
    if not info["trainings"]:
        notes.append("no training finished yet")
    elif not info["best"]:
        notes.append(f"no training succeeded yet ({info['failures']} failed)")
    if info["trainings"] and not info["initialized"]:
        what = "lattice" if info["strategy"] == "neuralfinder" else "first step"
        notes.append(f"initialisation not finished: {info['trainings']} trainings so far of the "
                     f"{info['init_trainings']} genomes it trains (no {what} yet)")
    return notes


def _kind(kind: str | None) -> str:
    """A failed training's kind as every display names it (``unknown`` when none was stored)."""
    return UNKNOWN_FAILURE_KIND if kind is None else shorten(str(kind), 40)


def _failures_line(total: int, by_kind: dict) -> str:
    """``failures 3: too_large 2 (e.g. 512: network has ...), oom 1 (e.g. 64-64: out of memory ...)``."""
    return f"failures {total}: {_failure_kinds(by_kind)}"


def _failure_kinds(by_kind: dict) -> str:
    """Each kind with its count and its first failure's genome and reason, both shortened."""
    parts = []
    for kind, entry in by_kind.items():
        reason = shorten(entry.get("example") or "", _EXAMPLE_SHOWN)
        genome = shorten(entry.get("genome") or "", _GENOME_SHOWN)
        example = f"{genome}: {reason}" if reason else genome
        parts.append(f"{_kind(kind)} {entry['count']}" + (f" (e.g. {example})" if example else ""))
    return ", ".join(parts)


def _samples(genome: dict) -> str:
    """How many trainings a shown fitness rests on, with their range when there are several."""
    spread = genome.get("fitness_range")
    return f"(n={genome.get('samples', 1)}" + (f", {spread[0]:.4f}-{spread[1]:.4f})" if spread else ")")


def _duration(seconds: float) -> str:
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{sec:02d}s" if hours else f"{minutes}m{sec:02d}s"


__all__ = ["evolve", "resume", "status", "UserError"]
