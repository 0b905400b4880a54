"""Watching a run: the progress bar, the line output with heartbeats, and the watch options."""
import sys

from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.cli.run import Reporter
from alife_nas.config import SearchConfig
from alife_nas.contract import EvalRequest
from alife_nas.executors import Progress, Task
from alife_nas.genome import parse_genome
from alife_nas.search import Search
from alife_nas.store import Evaluation, RunStore
from alife_nas.tensorboard_log import LOG_DIR
from tests.conftest import fake_score, make_search


def bar_frames(err):
    """The bar's successive renderings (tqdm redraws it in place with a carriage return)."""
    return [frame.strip() for frame in err.split("\r") if frame.strip()]


def run_with(reporter, search):
    try:
        return search.run(on_step=reporter.on_step, on_result=reporter.on_result, on_progress=reporter.on_progress)
    finally:
        reporter.close()


def test_bar_counts_the_init_then_steps_with_times_best_and_training_in_flight(tmp_path, capsys):
    with make_search(tmp_path / "run", lattice=3, steps=3, seed=1) as search:
        reporter = Reporter.for_search(search, "run", "bar", lines=False)
        reporter.on_progress(Progress(0, Task(0, "16-M", 1), epoch=2, max_epochs=5, val=0.5))
        run_with(reporter, search)
        best = search.store.best_evaluation()
    out, err = capsys.readouterr()
    frames = bar_frames(err)
    assert frames[0].startswith("init 0/9 |")
    assert any(f.startswith("init 0/9 |") and f.endswith("left, training 16-M 2/5 0.500") for f in frames)
    assert any(f.startswith("init 9/9 |") for f in frames)
    last = frames[-1]
    assert last.startswith("steps 3/3 |") and "elapsed" in last and "left" in last
    assert f"best {best.fitness:.4f} {best.genome}" in last
    assert all("?/" not in f and "/?" not in f for f in frames)
    # the step lines stay on stdout, whole, and the trainings are not listed there on a terminal
    assert [line.split()[1] for line in out.splitlines()] == ["0/3", "1/3", "2/3", "3/3"]
    assert "\r" not in out


def test_bar_shows_every_worker_in_flight(capsys):
    reporter = Reporter("run", steps=5, bar=True, lines=False)
    reporter.on_progress(Progress(0, Task(0, "16-M", 1)))
    reporter.on_progress(Progress(1, Task(1, "32-32", 2), epoch=3, max_epochs=12, val=0.912))
    assert "w0: 16-M | w1: 32-32 3/12 0.912" in bar_frames(capsys.readouterr().err)[-1]
    reporter.on_progress(Progress(1, None))
    reporter.on_progress(Progress(0, Task(0, "16-M", 1), epoch=1, max_epochs=12, val=0.5))
    assert bar_frames(capsys.readouterr().err)[-1].endswith("training 16-M 1/12 0.500")
    long = "-".join(["512"] * 30)
    reporter.on_progress(Progress(0, Task(0, long, 1)))
    assert bar_frames(capsys.readouterr().err)[-1].endswith("training 512-512-512-...-512-512-512 (30 layers)")  # shortened
    reporter.close()


def test_budget_bar_counts_trainings_and_a_resumed_bar_starts_where_the_run_is(tmp_path, capsys):
    with make_search(tmp_path / "b", lattice=3, steps=None, budget=20) as search:
        run_with(Reporter.for_search(search, "b", "bar"), search)
        assert search.trainings > 20  # the step that crosses the budget finishes
    frames = bar_frames(capsys.readouterr().err)
    assert frames[0].startswith("trainings 0/20 |") and frames[-1].startswith("trainings 20/20 |")
    assert sorted({int(f.split()[1].split("/")[0]) for f in frames}) == list(range(21))  # one by one, never past

    with make_search(tmp_path / "s", lattice=3, steps=2) as search:
        search.run()
    with Search.open(tmp_path / "s", score=fake_score, steps=4) as search:
        run_with(Reporter.for_search(search, "s", "bar"), search)
    frames = bar_frames(capsys.readouterr().err)
    assert frames[0].startswith("steps 2/4 |") and frames[-1].startswith("steps 4/4 |")


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_lines_and_a_heartbeat_at_most_every_minute(capsys):
    clock = Clock()
    reporter = Reporter("run", steps=3, bar=False, lines=True, clock=clock)
    task = Task(0, "64-M-128", 7)
    heard = []
    for t, epoch in [(0, 0), (30, 1), (59, 2), (61, 3), (100, 4), (121, 5), (150, 6)]:
        clock.now = 1000.0 + t
        reporter.on_progress(Progress(0, task, epoch=epoch, max_epochs=20, val=epoch / 10))
        heard += [(t, line) for line in capsys.readouterr().out.splitlines()]
    assert [t for t, _ in heard] == [61, 121]
    assert heard[0][1] == "  still training [1m01s]: training 64-M-128 3/20 0.300"

    clock.now = 1000.0 + 170
    ev = Evaluation(order=1, genome="64-M-128", fitness=0.75, step=1, index=0, epochs=6)
    reporter.on_result(EvalRequest(parse_genome("64-M-128"), 0, "self"), ev, False)  # a line resets the quiet time
    assert capsys.readouterr().out == "  self 64-M-128 -> 0.7500 (6 epochs)\n"
    clock.now = 1000.0 + 200
    reporter.on_progress(Progress(0, Task(1, "32", 8)))
    reporter.on_progress(Progress(1, Task(2, "16", 9), epoch=1, max_epochs=2, val=0.25))
    assert capsys.readouterr().out == ""
    clock.now = 1000.0 + 231
    reporter.on_progress(Progress(0, Task(1, "32", 8), epoch=1, max_epochs=2, val=0.5))
    assert capsys.readouterr().out == "  still training [3m51s]: w0: 32 1/2 0.500 | w1: 16 1/2 0.250\n"
    clock.now = 1000.0 + 400
    reporter.on_progress(Progress(0, None))  # w0 idle, w1 still training
    assert capsys.readouterr().out == "  still training [6m40s]: w1: 16 1/2 0.250\n"
    clock.now = 1000.0 + 500
    reporter.on_progress(Progress(1, None))  # nothing in flight: nothing to say
    out, err = capsys.readouterr()
    assert out == "" and err == ""  # and no bar, ever



def test_cli_bar_goes_to_stderr_and_lines_to_a_log(tmp_path, fake_trainer):
    runner = CliRunner()
    result = runner.invoke(main, ["evolve", "--out", str(tmp_path / "a"), "--lattice", "3", "--steps", "2",
                                  "--progress", "bar"])
    assert result.exit_code == 0, result.output
    frames = bar_frames(result.stderr)
    assert frames[-1].startswith("steps 2/2 |") and "elapsed" in frames[-1] and "best" in frames[-1]
    assert "step 2/2" in result.stdout and "\r" not in result.stdout
    assert "  init " in result.stdout  # stdout is not a terminal here: a log gets every training
    # auto, where neither stream is a terminal: no bar, a line per training and per step
    result = runner.invoke(main, ["resume", str(tmp_path / "a"), "--steps", "3"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "" and "step 3/3" in result.stdout and " -> " in result.stdout
    result = runner.invoke(main, ["resume", str(tmp_path / "a"), "--steps", "4", "--progress", "lines"])
    assert result.exit_code == 0 and result.stderr == "" and "step 4/4" in result.stdout


def test_cli_tensorboard_log_is_no_part_of_the_run(tmp_path, fake_trainer):
    args = ["--lattice", "3", "--steps", "2", "--seed", "5"]
    runner = CliRunner()
    result = runner.invoke(main, ["evolve", "--out", str(tmp_path / "tb"), *args, "--tensorboard",
                                  "--tensorboard-every", "1"])
    assert result.exit_code == 0, result.output
    assert runner.invoke(main, ["evolve", "--out", str(tmp_path / "plain"), *args]).exit_code == 0
    with RunStore.open(tmp_path / "tb") as a, RunStore.open(tmp_path / "plain") as b:
        assert a.config == b.config == SearchConfig.from_options(lattice=3, steps=2, seed=5, device="cpu")
        assert a.settings_hash == b.settings_hash
        trainings = a.count_evaluations()
    log = tmp_path / "tb" / LOG_DIR
    assert any(log.glob("events.out.tfevents.*")) and len(list((log / "trainings").iterdir())) == trainings
    assert not (tmp_path / "plain" / LOG_DIR).exists()
    status = runner.invoke(main, ["status", str(tmp_path / "tb")]).output
    assert f"TensorBoard log: tensorboard --logdir {log}" in status


def test_cli_tensorboard_refused_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the extra were not installed
    runner = CliRunner()
    for args in (["evolve", "--out", str(tmp_path / "new"), "--tensorboard"],
                 ["evolve", "--out", str(tmp_path / "new"), "--tensorboard-every", "2"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()
    result = runner.invoke(main, ["evolve", "--out", str(tmp_path / "new"), "--tensorboard"])
    assert 'pip install "alife-nas[tensorboard]"' in result.output
    result = runner.invoke(main, ["evolve", "--out", str(tmp_path / "new"), "--tensorboard-every", "2"])
    assert "--tensorboard-every needs --tensorboard" in result.output


def test_a_failing_observer_is_dropped_with_one_warning_and_the_run_goes_on(tmp_path, capsys):
    from alife_nas.cli.run import _Observers

    class Broken:
        calls = 0

        def on_step(self, s):
            Broken.calls += 1
            raise OSError(28, "No space left on device")

        def on_result(self, request, ev, cached):
            pass

        def close(self):
            pass

    with make_search(tmp_path / "run", lattice=3, steps=2) as search:
        observers = _Observers(Reporter.for_search(search, "run", "lines"), [Broken()])
        summary = search.run(on_step=observers.on_step, on_result=observers.on_result)
        observers.close()
    out = capsys.readouterr().out
    assert summary.finished and Broken.calls == 1 and "step 2/2" in out
    assert out.count("warning: Broken stopped: OSError: [Errno 28] No space left on device") == 1
