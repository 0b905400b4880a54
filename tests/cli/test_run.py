"""evolve / resume / status through the real command line."""
import dataclasses
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.cli._common import DEFAULTS
from alife_nas.config import SearchConfig
from alife_nas.search import Search
from alife_nas.store import DB_NAME, RunStore
from tests.conftest import tree_state

# A real run on digits small enough for a test: 3×3 lattice, tiny filters, one epoch per training.
TINY = ["--lattice", "3", "--steps", "4", "--filters", "16,32", "--max-epochs", "1", "--preset", "fast",
        "--device", "cpu", "--seed", "3"]


def cli(*args):
    return subprocess.Popen([sys.executable, "-m", "alife_nas", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def history(run_dir):
    with RunStore.open(run_dir) as store:
        evals = [dataclasses.replace(e, created_at="", train_time=None, images_per_sec=None)
                 for e in store.evaluations()]
        snap, steps = store.last_step().lattice, store.steps_done
    weights = run_dir / "weights"  # --inherit-weights: the files the cells hold, and nothing else
    kept = sorted(p.name for p in weights.iterdir()) if weights.is_dir() else []
    return evals, snap, steps, kept


def count(db, sql):
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return -1


def kill_when(proc, db, sql, target, timeout=120):
    """SIGKILL `proc` as soon as `sql` on the run database reaches `target` (a commit point)."""
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        if count(db, sql) >= target:
            break
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()


# about a minute: several real subprocess runs
@pytest.mark.slow
@pytest.mark.parametrize("network", [[], ["--head", "gap", "--batchnorm"], ["--prune", "halving", "--inherit-weights", "--max-epochs", "2"]],
                         ids=["seed's network", "gap+batchnorm", "halving+inherit"])
def test_sigkill_at_random_moments_and_commit_points_then_resume_equals_uninterrupted(tmp_path, network):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    tiny = [*TINY, *network]
    proc = cli("evolve", "--out", str(whole), *tiny)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "done: 4 steps" in out

    db = killed / DB_NAME
    rng = random.Random(7)
    proc = cli("evolve", "--out", str(killed), *tiny)
    kill_when(proc, db, "SELECT COUNT(*) FROM evaluations", 3)  # just after a training's commit
    kills = 1
    plans = [("SELECT COUNT(*) FROM steps", 1), ("SELECT COUNT(*) FROM evaluations", 14), (None, rng.uniform(0.5, 3)),
             ("SELECT COUNT(*) FROM steps", 3), (None, rng.uniform(0.5, 3))]
    for sql, target in plans:
        if not db.exists():  # killed before the database existed: start again
            proc = cli("evolve", "--out", str(killed), *tiny)
        else:
            proc = cli("resume", str(killed))
        if sql is None:
            time.sleep(target)  # a random moment, maybe mid-training
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
        else:
            kill_when(proc, db, sql, target)
        kills += proc.returncode == -signal.SIGKILL
    proc = cli("resume", str(killed))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert kills >= 3
    assert history(killed) == history(whole)


def test_status_text_and_json_and_resume_complete(tmp_path):
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(main, ["evolve", "--out", str(run_dir), *TINY[:-2], "--steps", "2"])
    assert result.exit_code == 0, result.output
    assert "step 2/2" in result.output and "results in" in result.output
    result = runner.invoke(main, ["status", str(run_dir), "--json"])
    info = json.loads(result.output)
    for key in ("steps_done", "trainings", "cache_hits", "failures", "lattice", "best"):
        assert key in info
    assert info["steps_done"] == 2 and len(info["lattice"]) == 3 and len(info["lattice"][0]) == 3
    assert set(info["lattice"][0][0]) == {"genome", "fitness"} and set(info["best"]) >= {"genome", "fitness"}
    text = runner.invoke(main, ["status", str(run_dir)]).output
    assert "lattice fitness:" in text and "best found:" in text and "cache hits" in text
    again = runner.invoke(main, ["resume", str(run_dir)])
    assert again.exit_code == 0 and "already complete" in again.output
    more = runner.invoke(main, ["resume", str(run_dir), "--steps", "3", "--device", "cpu"])
    assert more.exit_code == 0, more.output
    assert "steps: 2 -> 3" in more.output and "step 3/3" in more.output
    with RunStore.open(run_dir) as store:
        assert any("steps: 2 -> 3" in e["message"] for e in store.events())


def assert_refused(args, path: Path, words):
    before = tree_state(path) if path.exists() else None
    proc = subprocess.run([sys.executable, "-m", "alife_nas", *args], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0]
    if before is not None:
        assert tree_state(path) == before


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "run"
    result = CliRunner().invoke(main, ["evolve", "--out", str(run_dir), *TINY[:-2], "--steps", "1"])
    assert result.exit_code == 0, result.output
    return run_dir


@pytest.mark.slow
def test_user_mistakes_exit_2_one_line_nothing_changed(tmp_path, done_run):
    assert_refused(["evolve", "--out", str(done_run)], done_run, ["already holds a run"])
    assert_refused(["resume", str(done_run), "--lattice", "4", "--seed", "9", "--max-epochs", "3"], done_run,
                   ["lattice: 3 -> 4", "seed: 0 -> 9", "max_epochs: 1 -> 3"])
    assert_refused(["resume", str(done_run), "--dataset", "mnist"], done_run, ["dataset"])
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "x.txt").write_text("x")
    assert_refused(["resume", str(plain)], plain, ["not an alife_nas run directory"])
    assert_refused(["status", str(plain)], plain, ["not an alife_nas run directory"])
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    conn = sqlite3.connect(foreign / DB_NAME)
    conn.execute("CREATE TABLE t (a)")
    conn.commit()
    conn.close()
    assert_refused(["resume", str(foreign)], foreign, ["not an alife_nas run"])
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / DB_NAME).write_bytes(b"garbage" * 500)
    assert_refused(["status", str(broken)], broken, ["not a readable"])
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    with RunStore.open(done_run) as store:
        store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = (done_run / DB_NAME).read_bytes()
    (truncated / DB_NAME).write_bytes(data[: len(data) // 3])
    assert_refused(["resume", str(truncated)], truncated, [DB_NAME])
    assert_refused(["evolve", "--out", str(tmp_path / "new"), "--dataset", "nope"], tmp_path, ["nope"])
    assert not (tmp_path / "new").exists()
    assert_refused(["evolve", "--out", str(tmp_path / "new"), "--filters", "16,abc"], tmp_path, ["--filters"])
    assert_refused(["evolve", "--out", str(tmp_path / "new"), "--lattice", "1"], tmp_path, ["lattice must be"])
    assert_refused(["evolve", "--out", str(tmp_path / "new"), "--population", "5"], tmp_path,
                   ["population is an option of the regularized and ga strategies"])
    assert_refused(["evolve", "--out", str(tmp_path / "new"), "--device", "gpu"], tmp_path, ["device must be"])
    assert not (tmp_path / "new").exists()


def test_config_file_supplies_options(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('lattice = 3\nsteps = 1\nfilters = [16, 32]\nmax-epochs = 1\npreset = "fast"\nseed = 4\n'
                      'torus = false\nmaster_selection = "proportional"\n')
    run_dir = tmp_path / "run"
    result = CliRunner().invoke(main, ["evolve", "--out", str(run_dir), "--config", str(config), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    with RunStore.open(run_dir) as store:
        stored = store.config
    assert stored == SearchConfig.from_options(lattice=3, steps=1, filters=[16, 32], max_epochs=1, seed=4,
                                               torus=False, master_selection="proportional", device="cpu")
    info = json.loads(CliRunner().invoke(main, ["status", str(run_dir), "--json"]).output)
    assert info["config"] == stored.to_dict() and info["config"]["method"]["torus"] is False
    for text, words in [("colour = 'red'\n", "unknown option 'colour'"), ("lattice = 3.9\n", "3.9"),
                        ("lattice = {a = 1}\n", "must be a single value"), ("torus = 1\n", "true or false"),
                        ("master = 'uniform'\n", "unknown option 'master'")]:
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        result = CliRunner().invoke(main, ["evolve", "--out", str(tmp_path / "x"), "--config", str(bad)])
        assert result.exit_code == 2 and words in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


class Captured(Exception):
    pass


def capture_config(monkeypatch, args):
    """The SearchConfig that `evolve ARGS` hands to the library (nothing is run)."""
    seen = {}

    def create(run_dir, config=None, **kwargs):
        seen["config"] = config
        raise Captured

    monkeypatch.setattr(Search, "create", staticmethod(create))
    result = CliRunner().invoke(main, ["evolve", "--out", "unused", *args])
    assert isinstance(result.exception, Captured), result.output
    return seen["config"]


def test_evolve_defaults_are_the_library_defaults(monkeypatch):
    assert capture_config(monkeypatch, []) == SearchConfig()
    text = CliRunner().invoke(main, ["evolve", "--help"], terminal_width=200).output
    for name in ("lattice", "steps", "ratio", "radius", "dataset", "val_size", "preset", "seed", "population"):
        assert f"[default: {DEFAULTS[name]}]" in " ".join(text.split()), name
    library = SearchConfig()
    assert (DEFAULTS["lattice"], DEFAULTS["steps"], DEFAULTS["preset"], DEFAULTS["val_size"]) == (
        library.method.lattice, library.stop.steps, library.training.preset, library.data.val_size)


def test_help_shows_defaults():
    result = CliRunner().invoke(main, ["evolve", "--help"])
    assert result.exit_code == 0
    assert "--lattice" in result.output and "[default: 4" in result.output and "--config" in result.output


def test_options_validate_alike_in_every_command(monkeypatch):
    config = capture_config(monkeypatch, ["--patience", "0", "--max-layers", "0", "--device", "cpu"])
    assert config.training.patience == 0 and config.training.max_layers == 0  # 0 = off, as in `train`
    for command in (["evolve", "--out", "x"], ["train", "16-M"]):
        result = CliRunner().invoke(main, [*command, "--patience", "-1"])
        assert result.exit_code == 2 and "patience" in result.output
        result = CliRunner().invoke(main, [*command, "--device", "cuda:x"])
        assert result.exit_code == 2 and "device must be auto, cpu, cuda or cuda:N" in result.output


@pytest.mark.slow
def test_a_second_writer_is_refused_while_readers_work(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli("evolve", "--out", str(run_dir), "--lattice", "3", "--steps", "500", "--filters", "16,32,64,128,256",
               "--max-epochs", "3", "--device", "cpu")  # long enough to be running throughout
    try:
        db = run_dir / DB_NAME
        end = time.time() + 120
        while count(db, "SELECT COUNT(*) FROM evaluations") < 1 and time.time() < end:
            time.sleep(0.05)
        second = subprocess.run([sys.executable, "-m", "alife_nas", "resume", str(run_dir)], capture_output=True,
                                text=True)
        assert second.returncode == 2 and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1 and "is being written by process" in second.stderr
        again = subprocess.run([sys.executable, "-m", "alife_nas", "evolve", "--out", str(run_dir)],
                               capture_output=True, text=True)
        assert again.returncode == 2 and "already holds a run" in again.stderr
        status = subprocess.run([sys.executable, "-m", "alife_nas", "status", str(run_dir), "--json"],
                                capture_output=True, text=True)
        assert status.returncode == 0 and json.loads(status.stdout)["trainings"] >= 1
    finally:
        proc.kill()
        proc.wait()
    # the killed writer's lock went with it: the run can be written again at once
    from tests.conftest import fake_score

    with Search.open(run_dir, score=fake_score) as search:
        assert search.store.steps_done == 0


def worker_pids(proc):
    """The PIDs of the worker processes ``proc`` (an alife-nas run with --workers) has spawned."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]


@pytest.mark.slow  # about 25 s each: three real runs
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_sigkill_or_sigterm_of_a_coordinator_with_workers_then_resume_equals_serial(tmp_path, sig):
    from tests.executors.test_local import history as by_step

    args = [*TINY[:-2], "--seed", "5", "--threads", "1"]
    whole = subprocess.run([sys.executable, "-m", "alife_nas", "evolve", "--out", str(tmp_path / "serial"), *args],
                           capture_output=True, text=True)
    assert whole.returncode == 0, whole.stderr
    killed = tmp_path / "killed"
    proc = cli("evolve", "--out", str(killed), *args, "--workers", "2")
    end = time.time() + 120
    while count(killed / DB_NAME, "SELECT COUNT(*) FROM evaluations") < 6 and time.time() < end:
        time.sleep(0.01)
    workers = worker_pids(proc)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # stopped as Ctrl-C stops it: one line, the workers stopped before the coordinator exited
        assert proc.returncode == 143, err
        assert err.strip().splitlines()[-1].startswith("interrupted by SIGTERM: ") and "Traceback" not in err, err
        assert f"continue with: alife-nas resume {killed}" in err
        assert len(workers) == 2 and not any(Path(f"/proc/{pid}").exists() for pid in workers)
    proc = cli("resume", str(killed))  # the workers option is stored with the run: 2 workers again
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert by_step(killed) == by_step(tmp_path / "serial")


def _default_sigint():
    """The child takes Ctrl-C even when this test runs with SIGINT ignored (`nohup pytest ... &` in a
    script): an ignored signal is inherited, and alife-nas keeps it ignored, as POSIX asks."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow  # 11-16 s each: real trainings in two worker processes
@pytest.mark.parametrize("sig, code, said", [(signal.SIGINT, 130, "interrupted: "),
                                             (signal.SIGTERM, 143, "interrupted by SIGTERM: ")], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_every_worker_and_says_how_to_resume(tmp_path, sig, code, said):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "alife_nas", "evolve", "--out", str(run_dir), "--lattice", "3",
                             "--steps", "500", "--filters", "16,32,64,128", "--max-epochs", "3", "--device", "cpu",
                             "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=_default_sigint)
    end = time.time() + 120
    while count(run_dir / DB_NAME, "SELECT COUNT(*) FROM evaluations") < 1 and time.time() < end:
        time.sleep(0.05)
    workers = worker_pids(proc)
    assert len(workers) == 2
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code and f"continue with: alife-nas resume {run_dir}" in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith(said), err  # the workers said nothing after it
    for pid in workers:  # stopped (killed and reaped) before the coordinator exited
        assert not Path(f"/proc/{pid}").exists()
