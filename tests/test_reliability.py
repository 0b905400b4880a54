"""Nothing lost, nothing silent: kills during creation, a full disk, a vanished database, copies of
``run.sqlite`` alone, read-only runs, a second writer. Real SQLite, real subprocesses, a cheap
deterministic fitness (the CLI runs through a driver that only swaps the trainer for it)."""
import ctypes
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from alife_nas.cli import main
from alife_nas.config import SearchConfig
from alife_nas.search import Search
from alife_nas.store import (
    CREATING_SUFFIX,
    DB_NAME,
    RunStore,
    RunStoreError,
    refuse_existing_run,
)
from tests.conftest import fake_score, run_search
from tests.test_search import history

REPO = Path(__file__).resolve().parents[1]

# The CLI with the trainer swapped for tests.conftest.fake_score; argv[1:] are the CLI's arguments.
# ALIFE_TEST_FSIZE sets a file-size limit (SIGXFSZ ignored, so a write past it fails with EFBIG,
# as on a full disk); ALIFE_TEST_KILL_AT=N SIGKILLs the process at the N-th training.
DRIVER = textwrap.dedent("""
    import os, resource, signal, sys
    limit = os.environ.get("ALIFE_TEST_FSIZE")
    if limit:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
    from tests.conftest import fake_score
    calls = [0]
    def score(genome, seed):
        calls[0] += 1
        if calls[0] == int(os.environ.get("ALIFE_TEST_KILL_AT", "0")):
            os.kill(os.getpid(), signal.SIGKILL)
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


def cli(*args, env=None, obey_permissions=False):
    """Run the CLI (with the cheap fitness) in a subprocess; returns the CompletedProcess.

    ``obey_permissions``: as root, drop the capabilities that let root ignore permission bits, so
    a read-only folder is read-only to the command as it is on read-only media.
    """
    return subprocess.run([sys.executable, "-c", DRIVER, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
                          preexec_fn=_obey_permissions if obey_permissions and os.geteuid() == 0 else None)


def _obey_permissions():
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH out of the bounding set
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def one_line_error(proc, *words):
    """The failure the user sees: exit 2 and one 'Error:' line that mentions each word."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


# --- creation is atomic ------------------------------------------------------------------------
CREATE = textwrap.dedent("""
    import os, signal, sys
    from alife_nas import store
    from alife_nas.config import SearchConfig
    kill_at, seen = int(sys.argv[2]), [0]
    CREATION = {"create", "refuse_existing_run", "_holds_nothing", "_discard_unfinished_creation", "_sync_directory"}
    def trace(frame, event, arg):
        if frame.f_code.co_filename == store.__file__ and frame.f_code.co_name in CREATION:
            if event == "line":
                seen[0] += 1
                if seen[0] == kill_at:
                    os.kill(os.getpid(), signal.SIGKILL)
            return trace
        return None
    sys.settrace(trace)
    store.RunStore.create(sys.argv[1], SearchConfig.from_options(lattice=3), "hash").close()
    sys.settrace(None)
    print(seen[0])
""")


@pytest.mark.slow
def test_a_kill_at_any_point_of_creation_leaves_a_run_or_a_directory_evolve_takes_over(tmp_path):
    whole = subprocess.run([sys.executable, "-c", CREATE, str(tmp_path / "whole"), "0"], capture_output=True,
                           text=True, check=True)
    lines = int(whole.stdout)  # Python lines the store runs to create a run (before opening it)
    assert lines > 20
    outcomes = set()
    for kill_at in range(1, lines + 1):  # a kill after each one
        run_dir = tmp_path / f"k{kill_at}"
        proc = subprocess.run([sys.executable, "-c", CREATE, str(run_dir), str(kill_at)], capture_output=True)
        assert proc.returncode == -signal.SIGKILL
        if (run_dir / DB_NAME).exists():  # a whole run: it opens, and a new one is refused
            with RunStore.open(run_dir, readonly=True) as store:
                assert store.config.method.lattice == 3 and store.settings_hash == "hash"
            with pytest.raises(RunStoreError, match="already holds a run"):
                refuse_existing_run(run_dir)
            outcomes.add("run")
            continue
        if run_dir.exists():  # an unfinished creation: resume says what to do; create takes it over
            with pytest.raises(RunStoreError, match="evolve --out") if (run_dir / (DB_NAME + CREATING_SUFFIX)).exists() \
                    else pytest.raises(RunStoreError, match="not an alife_nas run directory"):
                RunStore.open(run_dir)
        RunStore.create(run_dir, SearchConfig.from_options(lattice=3), "hash").close()
        assert sorted(p.name for p in run_dir.iterdir()) == [DB_NAME]
        outcomes.add("taken over")
    assert outcomes == {"run", "taken over"}


@pytest.mark.parametrize("with_schema_in_wal", [False, True])
def test_an_empty_database_left_by_an_older_version_is_taken_over(tmp_path, with_schema_in_wal):
    """alife_nas 0.2 created run.sqlite in place; killed before its first commit it left a database
    with no tables (and perhaps a WAL with no commit in it) that neither evolve nor resume took."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    if with_schema_in_wal:
        conn = sqlite3.connect(run_dir / DB_NAME)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()
    else:
        (run_dir / DB_NAME).touch()
    result = CliRunner().invoke(main, ["resume", str(run_dir)])
    assert result.exit_code == 2
    run_search(run_dir, lattice=3, steps=1)
    with RunStore.open(run_dir) as store:
        assert store.steps_done == 1


# --- the database file holds what was committed ---------------------------------------------------
def test_run_sqlite_alone_is_the_complete_run_after_every_step(tmp_path):
    run_dir = tmp_path / "run"
    copies = []

    def copy_alone(summary):
        target = tmp_path / f"copy{summary.step}"
        target.mkdir()
        shutil.copy(run_dir / DB_NAME, target / DB_NAME)  # no -wal, no -shm
        copies.append((summary.step, target))

    with Search.create(run_dir, SearchConfig.from_options(lattice=3, steps=4), score=fake_score) as search:
        search.run(on_step=copy_alone)
    full_evals, full_rows = history(run_dir)
    for step, target in copies:
        evals, rows = history(target)
        assert rows == full_rows[: step + 1]
        assert evals == full_evals[: len(evals)] and sum(r[3] for r in rows) == len(evals)
    # and a copy resumes to the very run the original made
    with Search.open(copies[1][1], score=fake_score) as search:
        search.run()
    assert history(copies[1][1]) == (full_evals, full_rows)


def test_losing_the_wal_after_a_kill_loses_at_most_the_step_in_flight(tmp_path):
    run_dir = tmp_path / "run"
    proc = cli("evolve", "--out", run_dir, "--lattice", "3", "--steps", "6", env={"ALIFE_TEST_KILL_AT": "30"})
    assert proc.returncode == -signal.SIGKILL
    with RunStore.open(run_dir, readonly=True) as store:
        trainings, steps = store.count_evaluations(), store.steps_done
    (run_dir / (DB_NAME + "-wal")).unlink()  # what a careless copy or clean-up does
    (run_dir / (DB_NAME + "-shm")).unlink(missing_ok=True)
    with RunStore.open(run_dir, readonly=True) as store:
        assert store.steps_done == steps  # every finished step is still there
        assert sum(r.trainings for r in store.step_rows()) == store.count_evaluations() <= trainings
    assert cli("resume", run_dir).returncode == 0
    run_search(tmp_path / "whole", lattice=3, steps=6)
    assert history(run_dir) == history(tmp_path / "whole")


#: An rl run SIGKILLed at one point of step 3's commit (argv: run dir, point). The store's
#: connection is wrapped so the kill lands just before the named statement runs; "between" kills
#: after the step is committed and checkpointed, before step 4 begins.
KILL_IN_COMMIT = textwrap.dedent("""
    import os, signal, sys
    from alife_nas.config import SearchConfig
    from alife_nas.search import Search
    from tests.conftest import fake_score
    run_dir, point = sys.argv[1], sys.argv[2]
    BEFORE = {"state": "INSERT OR REPLACE INTO resume_state", "commit": "COMMIT", "checkpoint": "PRAGMA wal_checkpoint"}
    class Killing:
        def __init__(self, conn):
            self.conn, self.step = conn, None
        def __getattr__(self, name):
            return getattr(self.conn, name)
        def execute(self, sql, *args):
            if sql.startswith("INSERT INTO steps"):
                self.step = args[0][0]
            if self.step == 3 and point in BEFORE and sql.startswith(BEFORE[point]):
                os.kill(os.getpid(), signal.SIGKILL)
            return self.conn.execute(sql, *args)
    config = SearchConfig.from_options(strategy="rl", steps=6, seed=4, controller_batch=3, controller_max_layers=6)
    search = Search.create(run_dir, config, score=fake_score)
    search.store._conn = Killing(search.store._conn)
    search.run(on_step=lambda s: s.step == 3 and os.kill(os.getpid(), signal.SIGKILL))
""")


@pytest.mark.parametrize("point, steps_kept", [("state", 2), ("commit", 2), ("checkpoint", 3), ("between", 3)])
def test_an_rl_run_killed_in_a_steps_commit_resumes_to_the_same_run(tmp_path, point, steps_kept):
    # the step row and the controller's state (kept once, the newest) are one transaction
    config = SearchConfig.from_options(strategy="rl", steps=6, seed=4, controller_batch=3, controller_max_layers=6)
    with Search.create(tmp_path / "whole", config, score=fake_score) as search:
        search.run()
    run_dir = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", KILL_IN_COMMIT, str(run_dir), point], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with RunStore.open(run_dir, readonly=True) as store:
        assert store.steps_done == steps_kept and store.last_step().step == steps_kept
    with Search.open(run_dir, score=fake_score) as search:
        search.run()
    assert history(run_dir) == history(tmp_path / "whole")

    def newest(run):
        with RunStore.open(run, readonly=True) as store:
            last = store.last_step()
            return last.step, last.strategy_state, last.rng_state

    assert newest(run_dir) == newest(tmp_path / "whole")


def test_a_database_deleted_under_a_running_search_stops_it_with_one_line(tmp_path):
    run_dir = tmp_path / "run"
    calls = [0]

    def deleting_score(genome, seed):
        calls[0] += 1
        if calls[0] == 12:
            (run_dir / DB_NAME).unlink()
        return fake_score(genome, seed)

    with Search.create(run_dir, SearchConfig.from_options(lattice=3, steps=6), score=deleting_score) as search:
        with pytest.raises(RunStoreError, match="deleted or replaced"):
            search.run()
    # the CLI: one line, exit 2, never "done"
    script = DRIVER.replace("calls[0] += 1", "calls[0] += 1\n    if calls[0] == 12: os.unlink(sys.argv[3] + '/run.sqlite')")
    proc = subprocess.run([sys.executable, "-c", script, "evolve", "--out", str(tmp_path / "cli2"), "--lattice", "3",
                           "--steps", "6"], cwd=REPO, capture_output=True, text=True)
    one_line_error(proc, "deleted or replaced")
    assert "done" not in proc.stdout


# --- environment failures: one line, exit 2, nothing committed lost --------------------------------
def test_a_full_disk_mid_run_is_one_line_and_resume_then_continues_exactly(tmp_path):
    run_search(tmp_path / "whole", lattice=3, steps=30)
    size = (tmp_path / "whole" / DB_NAME).stat().st_size
    run_dir = tmp_path / "run"
    proc = cli("evolve", "--out", run_dir, "--lattice", "3", "--steps", "30", env={"ALIFE_TEST_FSIZE": str(size * 2 // 3)})
    line = one_line_error(proc, str(run_dir))
    assert "disk" in line or "limit" in line
    with RunStore.open(run_dir, readonly=True) as store:
        assert 0 < store.steps_done < 30
    done = cli("resume", run_dir)
    assert done.returncode == 0, done.stderr
    assert history(run_dir) == history(tmp_path / "whole")


def test_creating_a_run_where_nothing_can_be_written_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    one_line_error(cli("evolve", "--out", blocker / "run", "--lattice", "3"), str(blocker))
    assert blocker.read_text() == "x"
    proc = cli("evolve", "--out", tmp_path / "small" / "run", "--lattice", "3", env={"ALIFE_TEST_FSIZE": "1000"})
    one_line_error(proc, "cannot create a run")
    assert not (tmp_path / "small" / "run" / DB_NAME).exists()
    run_search(tmp_path / "small" / "run", lattice=3, steps=1)  # and the directory is usable once space is back


def test_a_second_writer_gets_one_line(tmp_path):
    run_dir = run_search(tmp_path / "run", lattice=3, steps=1)
    with Search.open(run_dir, score=fake_score, steps=3):
        one_line_error(cli("resume", run_dir, "--steps", "3"), "being written by")
    first, second = RunStore.open(run_dir), RunStore.open(run_dir)  # the lock bypassed, as on a broken NFS
    try:
        ev = first.evaluations()[0]
        second.add_evaluation("k:x", ev)
        with pytest.raises(RunStoreError, match="another process"):
            first.add_evaluation("k:x", ev)
    finally:
        first.close()
        second.close()


# --- read-only runs can be read ------------------------------------------------------------------
def _read_only_copy(run_dir, tmp_path):
    """A copy of the run on 'read-only media': files and folder that nobody may write."""
    target = tmp_path / "published" / "run"
    shutil.copytree(run_dir, target)
    for path in [*target.iterdir(), target]:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
                                                                  if path.is_dir() else 0))
    return target


@pytest.mark.parametrize("case", ["finished", "killed", "killed, no shared-memory file"])
def test_readers_work_on_a_read_only_run(tmp_path, case):
    run_dir = tmp_path / "run"
    if case == "finished":
        run_search(run_dir, lattice=3, steps=3)
    else:  # killed mid-step: the -wal holds trainings of the step in flight
        proc = cli("evolve", "--out", run_dir, "--lattice", "3", "--steps", "6", env={"ALIFE_TEST_KILL_AT": "30"})
        assert proc.returncode == -signal.SIGKILL
        assert (run_dir / (DB_NAME + "-wal")).stat().st_size > 0
    with RunStore.open(run_dir, readonly=True) as store:
        steps = store.steps_done
    target = _read_only_copy(run_dir, tmp_path)
    try:
        if case == "killed, no shared-memory file":  # SQLite cannot make one here: it reads run.sqlite alone
            target.chmod(0o755)
            (target / (DB_NAME + "-shm")).unlink()
            target.chmod(0o555)
        files = sorted(p.name for p in target.iterdir())
        status = cli("status", "--json", target, obey_permissions=True)
        assert status.returncode == 0, status.stderr
        assert f'"steps_done": {steps}' in status.stdout  # every finished step is in the database file
        assert ("-wal cannot be read here" in status.stderr) == (case == "killed, no shared-memory file")
        exported = cli("export", target, "--format", "json", obey_permissions=True)
        assert exported.returncode == 0 and '"genome"' in exported.stdout, exported.stderr
        one_line_error(cli("resume", target, "--steps", "8", obey_permissions=True), "cannot write")
        assert sorted(p.name for p in target.iterdir()) == files  # reading left no trace
    finally:
        for path in [target, *target.iterdir()]:
            path.chmod(0o755)
