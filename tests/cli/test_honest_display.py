"""Honest display (issue 18): what the bar, the log lines, status, the pictures and export say."""
import itertools
import json
import re
import time
import zlib

import pytest
from click.testing import CliRunner

from alife_nas import visualize as viz
from alife_nas.cli import main
from alife_nas.cli._estimate import TimeLeft
from alife_nas.cli.pictures import _file_range
from alife_nas.cli.run import Reporter
from alife_nas.compare import load_curve
from alife_nas.contract import EvalRequest
from alife_nas.executors import Progress, Task
from alife_nas.export import top_architectures
from alife_nas.genome import parse_genome
from alife_nas.search import Search, read_status
from alife_nas.store import Evaluation, RunStore, rank_key
from tests.cli.test_progress import bar_frames
from tests.conftest import fake_score, make_search, run_search


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Crash(BaseException):
    """Passes the evaluator's isolation the way a kill would."""


def dying_after(n, score=fake_score):
    calls = itertools.count(1)

    def score_or_die(genome, seed):
        if next(calls) > n:
            raise Crash
        return score(genome, seed)

    return score_or_die


def run_until_crash(run_dir, n, score=fake_score, **options):
    """A run killed during its (n+1)-th training: n trainings stored."""
    with make_search(run_dir, dying_after(n, score), **options) as search:
        with pytest.raises(Crash):
            search.run()
    return run_dir


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


# --- 1. the time left --------------------------------------------------------------------------
COST = {"16": 1e6, "64": 1e7, "512": 1e8}.get  # FLOPs per image


def test_time_left_weights_by_cost_and_counts_the_time_in_flight():
    clock = Clock()
    est = TimeLeft(slots=1, max_epochs=4, cost=COST, clock=clock)
    assert est.left(3) is None  # nothing finished: no estimate
    est.finished(4.0, 4, 1e6)  # 1 s an epoch at 1 MFLOP
    est.finished(400.0, 4, 1e8)  # 100 s an epoch at 100 MFLOP: seconds per epoch = 1e-6 × FLOPs
    assert est.epoch_seconds("64") == pytest.approx(10.0)  # weighted by its cost, not the mean epoch (50.5 s)
    assert est.left(0) == 0.0 and est.left(1) == pytest.approx(202.0)  # one not yet drawn: the mean training
    est.started(0, "64", 4)
    assert est.left(0) == pytest.approx(40.0)  # 4 epochs of 10 s
    clock.now = 15.0
    assert est.left(0) == pytest.approx(25.0)  # the time in flight counts, without any event
    clock.now = 20.0
    est.epoch(0, "64", 1, 4)  # its own pace now: 20 s an epoch, 3 to go
    assert est.left(0) == pytest.approx(60.0)
    clock.now = 30.0
    assert est.left(0) == pytest.approx(50.0) and est.left(2) == pytest.approx(50.0 + 2 * 202.0)
    two = TimeLeft(slots=2, max_epochs=4, cost=COST, clock=clock)
    two.finished(4.0, 4, 1e6)
    two.finished(400.0, 4, 1e8)
    two.started(0, "512", 4)  # 400 s expected: longer than the rest shared by two workers
    assert two.left(1) == pytest.approx(400.0) and two.left(5) == pytest.approx((400.0 + 5 * 202.0) / 2)
    est.idle(0)
    assert est.in_flight == 0 and est.left(0) == 0.0


def test_early_stopping_shortens_what_a_training_is_expected_to_take():
    clock = Clock()
    est = TimeLeft(max_epochs=10, cost=None, clock=clock)
    est.finished(50.0, 5, None)  # stopped at 5 of 10 epochs: 10 s an epoch
    est.started(0, "32", 10)
    assert est.left(0) == pytest.approx(50.0)  # half the limit, as the finished ones used


def ev(order, genome, fitness, **kw):
    return Evaluation(order=order, genome=genome, fitness=fitness, step=kw.pop("step", 1), index=kw.pop("index", order),
                      epochs=kw.pop("epochs", 4), **kw)


def test_the_bar_time_left_moves_within_a_training_and_with_each_finished_one(capsys):
    clock = Clock()
    est = TimeLeft(max_epochs=4, cost=COST, clock=clock)
    est.finished(4.0, 4, 1e6)
    est.finished(400.0, 4, 1e8)
    reporter = Reporter("run", budget=6, trainings=2, bar=True, lines=False, clock=clock, estimate=est, tick=None)
    assert reporter.to_start() == 4 and reporter.time_left() == "13:28"  # 4 × 202 s
    reporter.on_progress(Progress(0, Task(0, "64", 1), max_epochs=4))
    assert reporter.time_left() == "10:46"  # 40 s for the 64 + 3 × 202 s
    clock.now = 30.0
    assert reporter.time_left() == "10:16"  # 30 s later, with nothing reported: 30 s less
    reporter._show()
    assert "10:16 left" in bar_frames(capsys.readouterr().err)[-1]
    clock.now = 40.0
    reporter.on_result(EvalRequest(parse_genome("64"), 0, "self"),
                       ev(3, "64", 0.8, train_time=40.0, flops=1e7), False)  # the 64 done: it took 40 s
    assert reporter.trainings == 3 and reporter.to_start() == 3
    assert reporter.time_left() == "07:24"  # 3 × the new mean (444 / 3 = 148 s)
    frame = bar_frames(capsys.readouterr().err)[-1]
    assert frame.startswith("trainings 3/6 |") and "07:24 left, best 0.8000 64" in frame
    reporter.close()


def test_the_bar_redraws_itself_between_events(capsys):
    reporter = Reporter("run", steps=5, bar=True, lines=False, tick=0.02)
    time.sleep(0.3)
    reporter.close()
    assert len(bar_frames(capsys.readouterr().err)) >= 3  # elapsed and left move with the clock


def test_cli_bar_shows_an_estimate_from_the_trainings(tmp_path, fake_trainer):
    result = CliRunner().invoke(main, ["evolve", "--out", str(tmp_path / "b"), "--lattice", "3", "--budget", "12",
                                       "--progress", "bar"])
    assert result.exit_code == 0, result.output
    frames = bar_frames(result.stderr)
    estimates = [f for f in frames if " left" in f]
    assert estimates[0].startswith("trainings 0/12 |") and "? left" in estimates[0]  # nothing to estimate from yet
    assert re.search(r"\d\d:\d\d left", estimates[-1])


# --- 2. status ---------------------------------------------------------------------------------
def test_status_during_the_initialisation_says_where_the_run_is(tmp_path):
    run_until_crash(tmp_path / "r", 3, lattice=3, steps=2)
    text = invoke("status", tmp_path / "r").output
    assert "best found: " in text and "no training finished yet" not in text
    assert "initialisation not finished: 3 trainings so far of the 9 genomes it trains (no lattice yet)" in text
    assert json.loads(invoke("status", tmp_path / "r", "--json").output)["init_trainings"] == 9

    with make_search(tmp_path / "empty", lattice=3, steps=2):
        pass
    text = invoke("status", tmp_path / "empty").output
    assert "no training finished yet" in text and "best found" not in text and "initialisation" not in text

    def failing(genome, seed):
        return {**fake_score(genome, seed), "fitness": 0.0, "failure": "out of memory"}

    run_until_crash(tmp_path / "f", 2, failing, lattice=3, steps=2)
    text = invoke("status", tmp_path / "f").output
    assert "no training succeeded yet (2 failed)" in text and "best found" not in text


# --- 3. heatmap title --------------------------------------------------------------------------
def titles(store, tmp_path, monkeypatch):
    made = []

    class Kept(viz.LatticePlot):
        def update(self, *args, **kwargs):
            made.append(kwargs["title"])
            return super().update(*args, **kwargs)

    monkeypatch.setattr(viz, "LatticePlot", Kept)
    viz.render_heatmaps(store, tmp_path, steps="all")
    return [t.splitlines()[1] for t in made[1:]]  # the first draw only lays the figure out


def test_a_running_runs_heatmap_shows_its_target(tmp_path, monkeypatch):
    def stop_after_one(s):
        if s.step == 1:
            raise Crash

    with make_search(tmp_path / "r", lattice=3, steps=6) as search:  # a run of 6 steps, stopped after 1
        with pytest.raises(Crash):
            search.run(on_step=stop_after_one)
    with RunStore.open(tmp_path / "r") as store:
        shown = titles(store, tmp_path / "p", monkeypatch)
    assert shown[0] == "step 0 / 6: initial lattice" and shown[1].startswith("step 1 / 6")
    run_search(tmp_path / "b", lattice=3, steps=None, budget=12)  # no step target: no "/ N"
    with RunStore.open(tmp_path / "b") as store:
        shown = titles(store, tmp_path / "q", monkeypatch)
    assert shown[0] == "step 0: initial lattice" and all(" / " not in t for t in shown)


# --- 4. one notion of best ---------------------------------------------------------------------
def tied(genome, seed):
    """Every genome scores the same: the best is decided by the tie-break alone (sizes in no order)."""
    return {**fake_score(genome, seed), "fitness": 0.5, "params": zlib.crc32(str(genome).encode()) % 10_000}


def test_on_ties_every_reader_names_the_same_best(tmp_path):
    run_dir = tmp_path / "t"
    with make_search(run_dir, tied, lattice=3, steps=2, seed=3) as search:
        summary = search.run()
    with RunStore.open(run_dir) as store:
        evaluations = store.evaluations()
        info = read_status(store)
        curve = load_curve(store, "t")
        best = store.best_evaluation()
    expected = min(evaluations, key=lambda e: rank_key(e.fitness, e.params, e.order, e.genome))
    first_found = min(evaluations, key=lambda e: e.order)
    assert expected.genome != first_found.genome  # the case that used to split status and export
    assert best.genome == expected.genome == summary.best_genome == info["best"]["genome"] == curve.best_genome
    assert top_architectures(evaluations, k=1, fitness=None)[0]["genome"] == expected.genome
    exported = json.loads(invoke("export", run_dir, "--top", "1", "--format", "json").output)
    assert exported[0]["genome"] == expected.genome
    assert f"best found: 0.5000 (n=1)  {expected.genome}  " in invoke("status", run_dir).output


def test_the_tie_break_is_fitness_then_fewer_parameters_then_found_first():
    assert rank_key(0.9, 10**6, 9, "b") < rank_key(0.8, 10, 1, "a")
    assert rank_key(0.9, 10, 9, "b") < rank_key(0.9, 11, 1, "a")
    assert rank_key(0.9, 10, 1, "b") < rank_key(0.9, 10, 2, "a")
    assert rank_key(0.9, 10, 1, "a") < rank_key(0.9, None, 1, "a")  # an unknown size counts as largest


# --- 5. export's file range --------------------------------------------------------------------
def test_export_names_the_files_it_wrote(tmp_path, digits):
    from pathlib import Path

    assert _file_range([Path("rank_1.py")]) == "rank_1.py"
    assert _file_range([Path("rank_1.py"), Path("rank_1.pt")]) == "rank_1.py and rank_1.pt"
    three = [Path(f"rank_{i}.{x}") for i in (1, 2, 3) for x in ("py", "pt")]
    assert _file_range(three) == "rank_1.py .. rank_3.py and rank_1.pt .. rank_3.pt"
    assert _file_range([Path("rank_1.onnx"), Path("rank_2.onnx")]) == "rank_1.onnx .. rank_2.onnx"
    run_search(tmp_path / "r", fake_score, digits, lattice=3, steps=1)
    out = invoke("export", tmp_path / "r", "--top", "1", "--format", "pytorch", "--out", tmp_path / "m").output
    assert out.strip().endswith("/ (rank_1.py)") and ".." not in out


# --- 6. a budget used up by the initialisation -------------------------------------------------
def test_a_budget_the_initialisation_uses_up_says_so(tmp_path, fake_trainer):
    result = invoke("evolve", "--out", tmp_path / "rl", "--strategy", "rl", "--budget", "5")
    assert result.exit_code == 0, result.output
    assert ("done: the initialisation only, no step after it: its 5 genomes used the budget of 5 trainings "
            "(give a larger --budget for steps); 5 trainings, 0 cache hits; best ") in result.output
    assert "done: 0 steps" not in result.output
    result = invoke("evolve", "--out", tmp_path / "nf", "--lattice", "3", "--budget", "4")
    assert result.output.splitlines()[1:3] == [
        "initial population: 0 of 9 genomes (0%) exceed the size caps on 1×8×8 input",
        "note: the initialisation trains 9 genomes, more than the budget of 4 trainings; the run ends after it, "
        "with no step"]
    result = invoke("evolve", "--out", tmp_path / "two", "--lattice", "3", "--steps", "2")
    assert "done: 2 steps after the initialisation, " in result.output
    result = invoke("evolve", "--out", tmp_path / "zero", "--lattice", "3", "--steps", "0")
    assert "done: the initialisation only (--steps 0); 9 trainings" in result.output


# --- 7. curves of a single point ---------------------------------------------------------------
def test_a_single_point_gets_sensible_axes():
    fig = viz.plot_fitness_curves([0], [0.46], [0.40], [0.36])
    ax = fig.axes[0]
    fig.canvas.draw()
    assert ax.get_xlim() == (-0.5, 0.5) and list(ax.get_xticks()) == [0]
    fig = viz.plot_best_vs_trainings([1], [0.5], init_trainings=1)
    ax = fig.axes[0]
    assert ax.get_xlim() == (0.5, 1.5) and list(ax.get_xticks()) == [1]
    assert len(ax.get_lines()) == 2 and not ax.texts[1:]  # no "initial population" line: nothing came after it
    assert ax.get_ylim() == pytest.approx((0.45, 0.55))  # one value: an axis around it
    viz.plot_best_vs_trainings([1, 2, 3, 4], [0.2, 0.3, 0.3, 0.6], ax=ax, label="longer")  # a second run: autoscaled again
    low, high = ax.get_xlim()
    assert low < 1 and high > 4 and ax.get_ylim()[0] < 0.2


def test_curves_of_an_initialisation_only_run(tmp_path):
    run_search(tmp_path / "r", lattice=3, steps=0)
    out = invoke("curves", tmp_path / "r", "--out", tmp_path / "p").output
    assert "fitness_curves.png" in out and (tmp_path / "p" / "fitness_curves.png").stat().st_size > 5000


# --- 9. trainings replayed after a restart -----------------------------------------------------
def test_trainings_replayed_after_a_kill_are_marked(tmp_path, monkeypatch):
    run_dir = tmp_path / "r"
    run_until_crash(run_dir, 9 + 3, lattice=3, steps=2)  # the initialisation and 3 trainings of step 1
    open_ = Search.open.__func__  # resume through the command line, with the cheap fitness
    monkeypatch.setattr(Search, "open", classmethod(
        lambda cls, run_dir, download=False, **options: open_(cls, run_dir, score=fake_score, **options)))
    with RunStore.open(run_dir) as store:
        before = store.count_evaluations()
        stored = [e.genome for e in store.evaluations() if e.step == 1]
    assert before == 12 and len(stored) == 3
    result = invoke("resume", run_dir, "--progress", "lines")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if " -> " in line]
    replayed = [line for line in lines if line.endswith("epochs, replayed: trained before the restart)")]
    assert len(replayed) == 3 and all(any(f" {g} -> " in line for g in stored) for line in replayed)
    assert len(lines) > 3  # the step's new trainings are not marked


def test_the_bar_counts_replays_apart(tmp_path, capsys):
    run_until_crash(tmp_path / "r", 9 + 3, lattice=3, steps=2)
    with Search.open(tmp_path / "r", score=fake_score) as search:
        reporter = Reporter.for_search(search, "r", "bar", lines=False, tick=None)
        assert reporter.trainings == 12 and len(reporter._replayable) == 3
        search.run(on_step=reporter.on_step, on_result=reporter.on_result, on_progress=reporter.on_progress)
        reporter.close()
        assert reporter.trainings == search.trainings  # the replays were not counted twice
    frames = bar_frames(capsys.readouterr().err)
    assert any("3 replayed" in f for f in frames) and "replayed" not in frames[-1]  # until the step ends
