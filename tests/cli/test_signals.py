"""Stopping a run from outside: SIGTERM (batch schedulers, ``docker stop``, ``kill PID``) stops
``evolve``/``resume`` as Ctrl-C does — one line with what is saved and the resume command, the
workers stopped, exit code 143 — and ``resume`` then finishes the run as if nothing had happened.
(Real-trainer runs with worker processes, for SIGINT and SIGTERM: tests/cli/test_run.py.)"""
import pytest
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from click.testing import CliRunner

from alife_nas.cli import main
from tests.test_search import history

REPO = Path(__file__).resolve().parents[2]

# The CLI with the trainer swapped for tests.conftest.fake_score. ALIFE_TEST_SLOW_AT=N makes the
# N-th training a long one (two minutes of Python work, as a real training is), announced by
# creating the file ALIFE_TEST_MARK when it starts.
DRIVER = textwrap.dedent("""
    import os, sys, time
    from tests.conftest import fake_score
    calls = [0]
    def score(genome, seed):
        calls[0] += 1
        if calls[0] == int(os.environ.get("ALIFE_TEST_SLOW_AT", "0")):
            open(os.environ["ALIFE_TEST_MARK"], "w").close()
            end = time.monotonic() + 120
            while time.monotonic() < end:
                sum(range(1000))
        return fake_score(genome, seed)
    from types import SimpleNamespace
    from alife_nas.search import Search
    data = SimpleNamespace(name="fake", sizes=lambda: {}, input_shape=(1, 8, 8), num_classes=10, classes=None)
    create, open_ = Search.create.__func__, Search.open.__func__
    Search.create = classmethod(lambda cls, *a, **k: create(cls, *a, **{**k, "score": score, "data": data}))
    Search.open = classmethod(lambda cls, *a, **k: open_(cls, *a, **{**k, "score": score}))
    from alife_nas.cli import main
    main(sys.argv[1:], prog_name="alife-nas")
""")
ARGS = ["--lattice", "3", "--steps", "5", "--seed", "4"]


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `alife-nas evolve ... &` in a script starts it


def start(*args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-c", DRIVER, *map(str, args)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}, **kwargs)


def stop_in_slow_training(tmp_path, args, slow_at, saved):
    """Run the CLI with ``args`` until its ``slow_at``-th training is under way, SIGTERM it, and
    check the stop: at once, exit 143, one line saying ``saved`` trainings are saved."""
    mark = tmp_path / f"slow-{slow_at}-{args[0]}"
    # SIGINT ignored, as under `alife-nas evolve ... &` in a script: SIGTERM still stops the run
    proc = start(*args, env={"ALIFE_TEST_SLOW_AT": str(slow_at), "ALIFE_TEST_MARK": str(mark)},
                 preexec_fn=_ignore_sigint)
    end = time.monotonic() + 120
    while not mark.exists() and proc.poll() is None and time.monotonic() < end:
        time.sleep(0.02)
    assert mark.exists(), proc.communicate()[1]
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert time.monotonic() - sent < 10  # the training in flight was cut short, not waited for (2 minutes)
    assert proc.returncode == 143, err
    # one line (no traceback); every training before the slow one was committed as it ended
    run_dir = args[2] if args[0] == "evolve" else args[1]
    assert re.fullmatch(rf"interrupted by SIGTERM: \d steps? and {saved} trainings? are saved; "
                        rf"continue with: alife-nas resume {re.escape(str(run_dir))}\n", err), err


@pytest.mark.slow  # a real subprocess run stopped and resumed: ~4 s
def test_sigterm_stops_a_serial_training_at_once_and_resume_equals_uninterrupted(tmp_path):
    whole = start("evolve", "--out", tmp_path / "whole", *ARGS)
    out, err = whole.communicate(timeout=120)
    assert whole.returncode == 0, err

    run_dir = tmp_path / "stopped"
    stop_in_slow_training(tmp_path, ["evolve", "--out", run_dir, *ARGS], 12, 11)  # in step 1 (the lattice is 9)
    stop_in_slow_training(tmp_path, ["resume", run_dir], 6, 16)  # the resumed run stops the same way
    proc = start("resume", run_dir)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert history(run_dir) == history(tmp_path / "whole")


def test_the_sigterm_handler_is_there_only_while_a_run_is_driven(tmp_path, monkeypatch):
    from alife_nas.cli import run as cli_run

    seen = []
    drive = cli_run._drive

    def spy(search, run_dir):  # what SIGTERM does while the run is driven: not the handler found before
        search.run = lambda **callbacks: (seen.append(signal.getsignal(signal.SIGTERM)), os.kill(os.getpid(), signal.SIGTERM))
        return drive(search, run_dir)

    monkeypatch.setattr(cli_run, "_drive", spy)

    def before(signum, frame):  # the caller's own handler
        raise AssertionError("the run's handler should have taken this SIGTERM")

    previous = signal.signal(signal.SIGTERM, before)
    try:
        result = CliRunner().invoke(main, ["evolve", "--out", str(tmp_path / "run"), "--lattice", "2", "--steps", "0",
                                           "--filters", "8,16", "--device", "cpu"])
        assert signal.getsignal(signal.SIGTERM) is before  # given back after the run
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert seen and seen[0] not in (before, signal.SIG_DFL, signal.SIG_IGN)
    assert result.exit_code == 143, result.output
    assert f"interrupted by SIGTERM: 0 steps and 0 trainings are saved; continue with: alife-nas resume " \
           f"{tmp_path / 'run'}" in result.output
