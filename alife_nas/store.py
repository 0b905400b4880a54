"""The run store: one SQLite database (stdlib ``sqlite3``, WAL mode) per run directory.

It holds the run's config, every training ever made (the evaluation cache), every finished step
(its record and the lattice after it), the strategy's and the random generator's state after the
newest step (one row, replaced with each step: a resume reads only the newest, and a strategy's
state can be large, e.g. the ``rl`` controller's weights and Adam moments), and a small event log.
Each finished training is committed at once; each finished step, with the states after it, is one
transaction. A process killed at any moment therefore loses at most the training in flight.

What crosses into and out of the store is typed: :class:`~alife_nas.config.SearchConfig`,
:class:`Evaluation` (one training) and :class:`StepRow` (one finished step). This module is the
one place that maps them to SQL.
"""
from __future__ import annotations

import errno
import json
import math
import os
import sqlite3
import statistics

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer is not enforced there
    fcntl = None  # type: ignore[assignment]
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from alife_nas.config import ConfigError, SearchConfig
from alife_nas.contract import PRUNED, FitnessStats
from alife_nas.genome import one_line

__all__ = ["RunStore", "RunStoreError", "Evaluation", "StepRow", "DB_NAME", "SCHEMA_VERSION", "TOOL_NAME",
           "refuse_existing_run", "rank_key", "run_files", "UNKNOWN_FAILURE_KIND"]

DB_NAME = "run.sqlite"
#: A run's database is built as ``run.sqlite.creating`` and renamed when complete.
CREATING_SUFFIX = ".creating"
#: How long a write waits for a reader's brief lock (status, pictures) before it reports one.
BUSY_TIMEOUT_MS = 10_000
LOCK_NAME = "run.lock"
#: The kind of a failed training stored without one (a custom fitness function's), as ``status``,
#: the log lines and ``export --failures`` name it.
UNKNOWN_FAILURE_KIND = "unknown"
TOOL_NAME = "alife_nas"
#: 2: the config is the nested SearchConfig and the data set's shape is in meta.
#: 3: each training's per-epoch validation curve (``evaluations.history``) and the ``samples`` table
#: (further trainings of a stored genome with fresh seeds, for noise handling).
#: 4: the strategy's and the generator's state after the newest step are one row of ``resume_state``
#: (replaced in each step's transaction) instead of two columns of every ``steps`` row.
#: Older runs (1: alife_nas 0.1, a flat config; 2: 0.2; 3: 0.3) are read as they are and upgraded
#: in place when a run is resumed.
SCHEMA_VERSION = 4
_READABLE = (1, 2, 3, 4)

#: What a resume needs, after the newest step only (schema 4).
_RESUME_STATE_TABLE = """
CREATE TABLE resume_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    step INTEGER NOT NULL,                      -- the step these states follow: the newest in steps
    strategy_state TEXT NOT NULL,               -- JSON, enough to continue the strategy
    rng_state TEXT NOT NULL                     -- JSON numpy bit-generator state
)"""

_STEPS_TABLE = """
CREATE TABLE steps (
    step INTEGER PRIMARY KEY,                   -- 0 = initialisation
    record TEXT NOT NULL,                       -- JSON step record (the strategy's small account of the step)
    snapshot TEXT,                              -- JSON lattice after the step (null for non-lattice strategies)
    trainings INTEGER NOT NULL,                 -- trainings made during this step
    cache_hits INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    finished_at TEXT NOT NULL
)"""

#: Further trainings of a stored genome with fresh seeds (sample 0 is its ``evaluations`` row).
_SAMPLES_TABLE = """
CREATE TABLE samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    cache_key TEXT NOT NULL,                    -- the evaluations row this is another sample of
    sample INTEGER NOT NULL,                    -- 1, 2, ...
    fitness REAL NOT NULL,
    failure TEXT,
    failure_kind TEXT,
    epochs INTEGER,
    best_epoch INTEGER,
    train_time REAL,
    history TEXT,
    seed INTEGER,
    device TEXT,
    step INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (cache_key, sample)
)"""

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE config (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL, settings_hash TEXT NOT NULL);
CREATE TABLE evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,      -- training order, 1..n
    cache_key TEXT NOT NULL UNIQUE,             -- settings_hash + ':' + canonical genome
    genome TEXT NOT NULL,
    fitness REAL NOT NULL,
    failure TEXT,
    failure_kind TEXT,
    at_chance INTEGER NOT NULL DEFAULT 0,
    epochs INTEGER,
    best_epoch INTEGER,
    train_time REAL,
    images_per_sec REAL,
    params INTEGER,
    flops INTEGER,
    effective_layers TEXT,
    step INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    operator TEXT,
    parents TEXT,                               -- JSON list of compact genomes
    position TEXT,                              -- JSON [r, c] or null
    seed INTEGER,
    device TEXT,
    created_at TEXT NOT NULL,
    history TEXT                                -- JSON list: validation accuracy after each epoch
);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);
""" + _STEPS_TABLE + ";" + _RESUME_STATE_TABLE + ";" + _SAMPLES_TABLE


@dataclass(frozen=True)
class Evaluation:
    """One training as stored: its result, and where in the search it was made.

    ``order`` is the training order (1..n); ``index`` the candidate's index in its step.
    """

    order: int
    genome: str
    fitness: float
    step: int
    index: int
    failure: str | None = None
    failure_kind: str | None = None
    at_chance: bool = False
    epochs: int | None = None
    best_epoch: int | None = None
    train_time: float | None = None
    images_per_sec: float | None = None
    params: int | None = None
    flops: int | None = None
    effective_layers: str | None = None
    operator: str | None = None
    parents: tuple[str, ...] = ()
    position: tuple[int, int] | None = None
    seed: int | None = None
    device: str | None = None
    created_at: str = ""
    history: tuple[float, ...] = ()

    @classmethod
    def from_result(cls, result: Mapping[str, Any], **where: Any) -> "Evaluation":
        """A not-yet-stored evaluation from a score function's result dict and its place in the search."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in result.items() if k in known}
        values.update(where)
        values.setdefault("order", 0)
        values["parents"] = tuple(values.get("parents") or ())
        values["history"] = tuple(values.get("history") or ())
        position = values.get("position")
        values["position"] = None if position is None else tuple(position)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        data = asdict(self)
        data["parents"] = list(self.parents)
        data["history"] = list(self.history)
        data["position"] = None if self.position is None else list(self.position)
        return data


def rank_key(fitness: float, params: int | None = None, order: int | None = None, genome: str = "") -> tuple:
    """The one rule for "best": sort trainings (or genomes) by this key; the first is the best.

    Higher fitness first (a genome trained several times is ranked by its mean); on a tie the
    smaller network (fewer parameters; unknown counts as the largest), then the one found first
    (lower training order; none counts as last), then the genome text, so the result never
    depends on the order rows were read in. ``status``, ``read_status``, the ``Search`` API
    (``Summary.best_genome``), the exports' ranking and ``compare`` all pick their best with it.
    """
    return (-float(fitness), math.inf if params is None else float(params), order if order else math.inf, str(genome))


@dataclass(frozen=True)
class StepRow:
    """One finished step as stored. ``lattice`` is None for strategies without one.

    ``strategy_state`` and ``rng_state`` are what a resume needs: :meth:`RunStore.commit_step`
    stores them as the newest states (replacing the previous step's), and only
    :meth:`RunStore.last_step` gives them back; :meth:`RunStore.step_rows` leaves them out (None).
    """

    step: int
    record: dict
    lattice: dict | None
    trainings: int
    cache_hits: int
    wall_time: float
    strategy_state: dict | None = None
    rng_state: dict | None = None
    finished_at: str = ""


class RunStoreError(Exception):
    """A run directory or database that cannot be used; the message is one line for the user."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def refuse_existing_run(run_dir: str | os.PathLike) -> None:
    """RunStoreError if ``run_dir`` already holds a run (a new run never overwrites one).

    A database with nothing in it (a creation killed before its first commit by an older
    alife_nas) is no run: it is removed, and the new run takes the directory over.
    """
    db = _run_path(run_dir) / DB_NAME
    if db.is_file() and _holds_nothing(db):
        for path in (*_sidecars(db), db):
            if path.exists():
                path.unlink()
    if db.exists():
        raise RunStoreError(f"{run_dir} already holds a run; continue it with 'alife-nas resume {run_dir}'")


def run_files(run_dir: str | os.PathLike) -> list[Path]:
    """Every file a run's store may make in ``run_dir``: the database and its side files, an
    unfinished creation's, and the writer's lock."""
    run_dir = Path(run_dir)
    db, building = run_dir / DB_NAME, run_dir / (DB_NAME + CREATING_SUFFIX)
    return [db, *_sidecars(db), building, *_sidecars(building), run_dir / LOCK_NAME]


def _run_path(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` as a Path; an empty or blank name (which would mean the current folder) is refused."""
    if not str(os.fspath(run_dir)).strip():
        raise RunStoreError("the run directory name is empty; give a folder name")
    return Path(run_dir)


def _sidecars(db: Path) -> list[Path]:
    return [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


class RunStore:
    """Read and write one run's database. Use :meth:`create` or :meth:`open`."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection, readonly: bool = False, notice: str = "") -> None:
        self.run_dir = run_dir
        self.path = run_dir / DB_NAME
        self.readonly = readonly
        #: Something a reader should be told (e.g. the WAL could not be read); "" when all is well.
        self.notice = notice
        self._conn = conn
        self._lock: Any = None
        self._identity = _identity(self.path)
        # Runs written before schema 3 have no curve column; they read as trainings without one.
        self._eval_columns = _EVAL_COLUMNS if self.schema_version >= 3 else _EVAL_COLUMNS.replace(
            "history", "NULL AS history")

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: str | os.PathLike, config: SearchConfig, settings_hash: str,
               dataset_info: dict | None = None) -> "RunStore":
        """Make a new run in ``run_dir`` (created if needed); refuses a directory holding a run.

        The database is built under a temporary name and renamed into place complete, so a
        kill at any moment leaves either a whole run or an unfinished creation that the next
        ``create`` in the same directory clears away. ``dataset_info`` (``input_shape``,
        ``num_classes``, ``classes``) lets exports rebuild the networks without the data set.
        """
        run_dir = _run_path(run_dir)
        db = run_dir / DB_NAME
        refuse_existing_run(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise RunStoreError(f"{run_dir} exists and is not a directory")
        building = run_dir / (DB_NAME + CREATING_SUFFIX)
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            _discard_unfinished_creation(run_dir)
            conn = sqlite3.connect(building, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("BEGIN IMMEDIATE")  # a failure leaves a file that is discarded below
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("tool", TOOL_NAME), ("schema_version", str(SCHEMA_VERSION)), ("created_at", _now()),
                     ("dataset_info", json.dumps(dataset_info))],
                )
                conn.execute("INSERT INTO config (id, body, settings_hash) VALUES (1, ?, ?)",
                             (json.dumps(config.to_dict()), settings_hash))
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()  # the last connection: everything is in the database file, no WAL left
            os.replace(building, db)  # the run appears whole, or not at all
            _sync_directory(run_dir)
        except (OSError, sqlite3.Error) as exc:
            hint = "; free some space or raise the file-size limit" if _is_full(exc) else ""
            raise RunStoreError(f"cannot create a run in {run_dir}: {_reason(exc)}{hint}") from None
        finally:
            if not db.exists():
                _discard_unfinished_creation(run_dir)
        return cls.open(run_dir)

    @classmethod
    def open(cls, run_dir: str | os.PathLike, readonly: bool = False) -> "RunStore":
        """Open an existing run; a foreign, newer, corrupted or missing database is refused.

        ``readonly`` is for readers (status, pictures, exports): they never write, and they work
        on read-only media too — where SQLite cannot even make its shared-memory file they read
        the database file alone and say so in :attr:`notice` if a WAL file had to be left
        unread. A refused directory is left exactly as it was (SQLite side files it made are
        removed).
        """
        run_dir = _run_path(run_dir)
        db = run_dir / DB_NAME
        if not run_dir.is_dir():
            raise RunStoreError(f"{run_dir} is not a directory")
        if not db.is_file():
            if (run_dir / (DB_NAME + CREATING_SUFFIX)).exists():
                raise RunStoreError(f"{run_dir} holds a run whose creation was interrupted before it began; "
                                    f"start it again with 'alife-nas evolve --out {run_dir}'")
            raise RunStoreError(f"{run_dir} is not an alife_nas run directory (no {DB_NAME} in it)")
        existing = {p for p in _sidecars(db) if p.exists()}
        conn = None
        notice = ""
        try:
            if readonly:
                conn, notice = _connect_readonly(db)
                _check(conn, db)
            else:
                if not os.access(run_dir, os.W_OK) or not os.access(db, os.W_OK):
                    raise RunStoreError(f"cannot write to {db} (read-only or not yours); reading it works: "
                                        f"'alife-nas status {run_dir}'")
                conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None)
                _check(conn, db)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        except (RunStoreError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            for side in _sidecars(db):
                if side.exists() and side not in existing:
                    side.unlink()
            if isinstance(exc, RunStoreError):
                raise
            raise RunStoreError(f"{db} is not a readable alife_nas run database ({_reason(exc)})") from None
        return cls(run_dir, conn, readonly=readonly, notice=notice)

    def _write(self) -> "_transaction":
        """One write transaction, after checking that the database file is still the one opened."""
        if _identity(self.path) != self._identity:
            raise RunStoreError(f"{self.path} was deleted or replaced while this process was writing the run; "
                                "it stopped (what it wrote since is not in any run)")
        return _transaction(self._conn, self.path)

    def checkpoint(self) -> None:
        """Move everything committed from the WAL into the database file itself.

        Done after every step and on close, so that ``run.sqlite`` alone (copied, shared, or left
        without its ``-wal`` file) is the complete run up to its last step.
        """
        if self.readonly:
            return
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            raise RunStoreError(_write_failure(self.path, exc)) from None

    def close(self) -> None:
        try:
            if not self.readonly and _identity(self.path) == self._identity:
                self.checkpoint()
        except RunStoreError:
            pass  # everything committed is in the WAL still; the next open recovers it
        finally:
            self._conn.close()
        if self._lock is not None:
            self._lock.close()  # closing the file releases the lock
            self._lock = None

    def lock_for_writing(self) -> None:
        """Make this process the run's one writer, or raise RunStoreError if another one is.

        An exclusive ``flock`` on ``RUN_DIR/run.lock``, held until :meth:`close`; the system drops it
        when the process ends in any way (SIGKILL included), so a crash never leaves a run locked.
        Readers take no lock: ``status``, pictures and exports work while a run is written.
        """
        if self._lock is not None or fcntl is None:  # held already; or no flock (Windows): not enforced
            return
        path = self.run_dir / LOCK_NAME
        try:
            handle = open(path, "a+")
        except OSError as exc:
            raise RunStoreError(f"cannot write to {self.run_dir}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            handle.close()
            raise RunStoreError(f"{self.run_dir} is being written by {owner}; wait for it to finish or stop it "
                                f"(status, heatmap, curves and export work meanwhile)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}")
        handle.flush()
        self._lock = handle

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- config and events ---------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return int(self._meta("schema_version"))

    @property
    def config(self) -> SearchConfig:
        """The run's configuration (a schema-1 run's flat config is read as the same SearchConfig)."""
        body = json.loads(self._conn.execute("SELECT body FROM config WHERE id = 1").fetchone()[0])
        try:
            return SearchConfig.from_flat_v1(body) if self.schema_version == 1 else SearchConfig.from_dict(body)
        except ConfigError as exc:
            raise RunStoreError(f"{self.path} holds a config this alife_nas cannot use: {exc}") from None

    @property
    def dataset_info(self) -> dict | None:
        """``input_shape``, ``num_classes`` (and ``classes``) of the run's data set, or None."""
        if self.schema_version == 1:
            body = json.loads(self._conn.execute("SELECT body FROM config WHERE id = 1").fetchone()[0])
            if body.get("input_shape") and body.get("num_classes"):
                return {"input_shape": body["input_shape"], "num_classes": body["num_classes"], "classes": None}
            return None
        return json.loads(self._meta("dataset_info") or "null")

    @property
    def settings_hash(self) -> str:
        return self._conn.execute("SELECT settings_hash FROM config WHERE id = 1").fetchone()[0]

    def update_config(self, config: SearchConfig) -> None:
        """Store a config after a safe change (more steps, another device)."""
        with self._write():
            self._conn.execute("UPDATE config SET body = ? WHERE id = 1", (json.dumps(config.to_dict()),))

    def upgrade(self) -> bool:
        """Bring an older run to the current schema in one transaction; True if it changed.

        From schema 1: the config becomes the nested form, the data set's shape moves to meta, and
        lattice strategies' saved state stops repeating the step's lattice. From schema 2: the
        ``history`` column and the ``samples`` table are added (old trainings have no curve). From
        schemas 1 to 3: the newest step's strategy and generator states move to ``resume_state``
        and the per-step copies are dropped (the file keeps its size; SQLite reuses the freed
        pages). The settings hash (and so every cache key) stays as it is, so nothing is trained again.
        """
        version = self.schema_version
        if version == SCHEMA_VERSION:
            return False
        config, info = self.config, self.dataset_info
        last = self.last_step()
        with self._write():
            if version == 1:
                self._conn.execute("UPDATE config SET body = ? WHERE id = 1", (json.dumps(config.to_dict()),))
                self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('dataset_info', ?)",
                                   (json.dumps(info),))
            if version < 3:
                self._conn.execute("ALTER TABLE evaluations ADD COLUMN history TEXT")
                self._conn.execute(_SAMPLES_TABLE)
            if version < 4:
                self._conn.execute(_RESUME_STATE_TABLE)
                if last is not None:
                    state = last.strategy_state
                    if version == 1 and isinstance(state, dict):
                        state.pop("lattice", None)  # schema 1 repeated the lattice in the state
                    self._write_resume_state(last.step, state, last.rng_state)
                # SQLite drops columns only from 3.35 on: the table is rebuilt without them instead
                self._conn.execute(_STEPS_TABLE.replace("CREATE TABLE steps", "CREATE TABLE steps_new"))
                self._conn.execute(f"INSERT INTO steps_new ({_STEP_COLUMNS}) SELECT {_STEP_COLUMNS} FROM steps")
                self._conn.execute("DROP TABLE steps")
                self._conn.execute("ALTER TABLE steps_new RENAME TO steps")
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
        self._eval_columns = _EVAL_COLUMNS
        return True

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def log_event(self, kind: str, message: str) -> None:
        with self._write():
            self._conn.execute("INSERT INTO events (at, kind, message) VALUES (?, ?, ?)", (_now(), kind, message))

    def events(self) -> list[dict]:
        rows = self._conn.execute("SELECT at, kind, message FROM events ORDER BY id").fetchall()
        return [{"at": a, "kind": k, "message": m} for a, k, m in rows]

    # --- evaluations (the cache) ------------------------------------------------------------
    def lookup(self, cache_key: str) -> Evaluation | None:
        """The stored evaluation for this cache key, or None."""
        row = self._conn.execute(f"SELECT {self._eval_columns} FROM evaluations WHERE cache_key = ?", (cache_key,)).fetchone()
        return None if row is None else _eval_row(row)

    def add_evaluation(self, cache_key: str, ev: Evaluation) -> Evaluation:
        """Commit one finished training at once; returns it with its training order and time.

        A training of a genome whose stored one was pruned (``--prune``) takes its cache key: the
        pruned row stays, as a training with its cost, under ``KEY#pruned-ID``, which no lookup
        finds, so the cache never serves a pruned training as a full one."""
        ev = Evaluation(**{**asdict(ev), "order": 0, "created_at": _now()})
        values = {name: getattr(ev, name) for name in _EVAL_FIELDS[1:]}
        values["at_chance"] = int(bool(ev.at_chance))
        values["parents"] = json.dumps(list(ev.parents))
        values["position"] = json.dumps(None if ev.position is None else list(ev.position))
        values["history"] = json.dumps(list(ev.history))
        columns = ", ".join(_COLUMN.get(name, name) for name in values)
        with self._write():
            self._conn.execute("UPDATE evaluations SET cache_key = cache_key || '#pruned-' || id "
                               "WHERE cache_key = ? AND failure_kind = ?", (cache_key, PRUNED))
            cur = self._conn.execute(
                f"INSERT INTO evaluations (cache_key, {columns}) VALUES (?, {', '.join('?' * len(values))})",
                (cache_key, *values.values()),
            )
        return Evaluation(**{**asdict(ev), "order": int(cur.lastrowid)})

    def genome_keys(self, from_step: int) -> list[str]:
        """The genome part of the cache keys of the finished trainings stored at ``from_step`` or
        later (``--inherit-weights``: whose weights a replayed step may still start from)."""
        rows = self._conn.execute("SELECT cache_key FROM evaluations WHERE step >= ? AND failure IS NULL",
                                  (int(from_step),))
        return [key.partition(":")[2] for (key,) in rows]

    def training_at(self, cache_key: str, step: int, index: int) -> Evaluation | None:
        """The first training of this cache key made for (``step``, ``index``): the one stopped
        there (``--prune halving``'s rung, kept under ``KEY#pruned-ID``) before a full one."""
        row = self._conn.execute(
            f"SELECT {self._eval_columns} FROM evaluations WHERE step = ? AND idx = ? "
            "AND (cache_key = ? OR substr(cache_key, 1, ?) = ?) ORDER BY failure_kind IS NOT ?, id LIMIT 1",
            (int(step), int(index), cache_key, len(cache_key) + 8, cache_key + "#pruned-", PRUNED)).fetchone()
        return None if row is None else _eval_row(row)

    def epoch_medians(self, before_step: int) -> list[tuple[float, int]]:
        """Per epoch e (index e - 1): the median validation accuracy of the finished (not failed,
        not pruned) first trainings stored before ``before_step`` that reached e, and how many
        did. What ``--prune median`` compares a training with; the same before a step and after a
        kill in it, so a replayed step prunes alike."""
        by_epoch: list[list[float]] = []
        for (history,) in self._conn.execute(
                "SELECT history FROM evaluations WHERE failure IS NULL AND step < ?", (int(before_step),)):
            for e, value in enumerate(json.loads(history or "[]")):
                if e == len(by_epoch):
                    by_epoch.append([])
                by_epoch[e].append(float(value))
        return [(statistics.median(values), len(values)) for values in by_epoch]

    def evaluations(self) -> list[Evaluation]:
        """Every training made, in training order."""
        rows = self._conn.execute(f"SELECT {self._eval_columns} FROM evaluations ORDER BY id").fetchall()
        return [_eval_row(r) for r in rows]

    def best_evaluation(self) -> Evaluation | None:
        """The best genome so far by :func:`rank_key` (failed trainings left out, as the exports
        do), or None: its first training's row, with ``fitness`` the mean of all its trainings
        (:meth:`genome_fitness`; the training's own value when it has one)."""
        fitness = self.sample_fitness() if self.count_samples() else {}
        best: tuple | None = None
        for order, key, genome, value, params, failure in self._conn.execute(
                "SELECT id, cache_key, genome, fitness, params, failure FROM evaluations"):
            if failure is not None or value is None:
                continue
            value = FitnessStats.of(fitness[key]).mean if key in fitness else float(value)
            if not math.isfinite(value):
                continue
            candidate = (rank_key(value, params, order, genome), key, value)
            if best is None or candidate[0] < best[0]:
                best = candidate
        if best is None:
            return None
        first = self.lookup(best[1])
        assert first is not None
        return replace(first, fitness=best[2])

    def count_evaluations(self) -> int:
        """Trainings made so far, the number a training budget counts: every genome's first
        training (the ``evaluations`` rows) plus every further sample (the ``samples`` rows)."""
        first = self._conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
        return first + self.count_samples()

    # --- further samples of a genome (repeated trainings with fresh seeds) -----------------------
    # Sample 0 of a genome is its evaluations row; samples 1, 2, ... are rows of the samples table.
    # They come back as Evaluation objects with order 0 (they are not in the evaluations' training
    # order) and without what belongs to the genome rather than to one training (operator, parents,
    # position, params, FLOPs): those are on sample 0.

    def _has_samples(self) -> bool:
        return self.schema_version >= 3  # older runs have no samples table until they are upgraded

    def count_samples(self) -> int:
        """Further samples stored (trainings beyond each genome's first)."""
        if not self._has_samples():
            return 0
        return self._conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    def lookup_sample(self, cache_key: str, sample: int) -> Evaluation | None:
        """Sample ``sample`` of the genome with this cache key (0: its evaluations row), or None."""
        if sample == 0:
            return self.lookup(cache_key)
        if not self._has_samples():
            return None
        row = self._conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE cache_key = ? AND sample = ?",
                                 (cache_key, int(sample))).fetchone()
        return None if row is None else _sample_row(row)[2]

    def add_sample(self, cache_key: str, sample: int, ev: Evaluation) -> Evaluation:
        """Commit one further training (``sample`` >= 1) of a genome at once; returns it as stored."""
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 1:
            raise ValueError(f"a further sample is numbered 1, 2, ...; got {sample!r}")
        with self._write():
            self._conn.execute(
                "INSERT INTO samples (cache_key, sample, fitness, failure, failure_kind, epochs, best_epoch, "
                "train_time, history, seed, device, step, idx, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (cache_key, sample, ev.fitness, ev.failure, ev.failure_kind, ev.epochs, ev.best_epoch, ev.train_time,
                 json.dumps(list(ev.history)), ev.seed, ev.device, ev.step, ev.index, _now()),
            )
        stored = self.lookup_sample(cache_key, sample)
        assert stored is not None
        return stored

    def samples_of(self, cache_key: str) -> dict[int, Evaluation]:
        """Every stored training of one genome by sample number (0 = its evaluations row)."""
        out: dict[int, Evaluation] = {}
        first = self.lookup(cache_key)
        if first is not None:
            out[0] = first
        if self._has_samples():
            rows = self._conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples WHERE cache_key = ? ORDER BY sample",
                                      (cache_key,)).fetchall()
            out.update((number, ev) for _key, number, ev in map(_sample_row, rows))
        return out

    def samples(self) -> list[tuple[str, int, Evaluation]]:
        """Every further sample as (cache key, sample number, training), in the order they were made."""
        if not self._has_samples():
            return []
        rows = self._conn.execute(f"SELECT {_SAMPLE_COLUMNS} FROM samples ORDER BY id").fetchall()
        return [_sample_row(r) for r in rows]

    def sample_fitness(self, before_step: int | None = None) -> dict[str, list[float]]:
        """Every genome's training fitness in sample order (0 first), by cache key.

        With ``before_step``, only the trainings made in earlier steps: what a step saw when it
        began, the same whether it runs for the first time or is replayed after a restart.
        """
        where, args = ("WHERE step < ?", (int(before_step),)) if before_step is not None else ("", ())
        out: dict[str, list[float]] = {}
        for key, fitness in self._conn.execute(f"SELECT cache_key, fitness FROM evaluations {where} ORDER BY id", args):
            out[key] = [float(fitness)]
        if self._has_samples():
            rows = self._conn.execute(f"SELECT cache_key, fitness FROM samples {where} ORDER BY cache_key, sample", args)
            for key, fitness in rows:
                if key in out:  # a sample's genome has its first training (sample 0) stored before it
                    out[key].append(float(fitness))
        return out

    def trainings_in_order(self) -> list[tuple[str, float]]:
        """Every training, first ones and further samples alike, as (cache key, fitness) in the
        order they were made: by step, and inside a step first trainings before further samples
        (the two tables share no finer order). What a budget of trainings counts, one by one."""
        return [(key, float(f)) for key, f in self._in_training_order(
            "SELECT id, step, cache_key, fitness FROM evaluations", "SELECT id, step, cache_key, fitness FROM samples")]

    def training_costs(self) -> list[tuple[int, int | None]]:
        """(epochs, forward FLOPs per image) of every training, in :meth:`trainings_in_order`'s
        order (a further sample has its genome's FLOPs): what ``compare --cost`` adds up."""
        return [(int(e or 0), None if f is None else int(f)) for e, f in self._in_training_order(
            "SELECT id, step, epochs, flops FROM evaluations",
            "SELECT s.id, s.step, s.epochs, e.flops FROM samples s LEFT JOIN evaluations e ON e.cache_key = s.cache_key")]

    def _in_training_order(self, first: str, samples: str) -> list[tuple]:
        """The rows of two queries (``id, step, values...`` of the first trainings and of the further
        samples) as their values, in training order: by step, first trainings before samples, by id."""
        rows = [(step, 0, i, values) for i, step, *values in self._conn.execute(first)]
        if self._has_samples():
            rows += [(step, 1, i, values) for i, step, *values in self._conn.execute(samples)]
        return [tuple(values) for *_, values in sorted(rows, key=lambda r: r[:3])]

    def genome_fitness(self) -> dict[str, FitnessStats]:
        """Every genome's fitness over all its trainings (mean, lowest, highest, how many), by compact genome.

        A pruned training (``--prune``) is not its genome's fitness and is left out; a genome trained
        from several parents' weights (``--inherit-weights``: one cache key each) has them all."""
        genome_of = {key: genome for key, genome, kind in self._conn.execute(
            "SELECT cache_key, genome, failure_kind FROM evaluations") if kind != PRUNED}
        values: dict[str, list[float]] = {}
        for key, fitness in self.sample_fitness().items():
            if key in genome_of:
                values.setdefault(genome_of[key], []).extend(fitness)
        return {genome: FitnessStats.of(found) for genome, found in values.items()}

    # --- steps -----------------------------------------------------------------------------
    def commit_step(self, row: StepRow) -> None:
        """Store a finished step in one transaction: its row, and its strategy and generator states
        as the newest (they replace the previous step's, so their size does not add up per step)."""
        if row.strategy_state is None or row.rng_state is None:
            raise ValueError("a finished step is committed with the strategy's and the generator's state")
        with self._write():
            self._conn.execute(
                f"INSERT INTO steps ({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (row.step, json.dumps(row.record), None if row.lattice is None else json.dumps(row.lattice),
                 row.trainings, row.cache_hits, row.wall_time, _now()),
            )
            self._write_resume_state(row.step, row.strategy_state, row.rng_state)
        self.checkpoint()

    def _write_resume_state(self, step: int, strategy_state: dict, rng_state: dict) -> None:
        """Replace the one ``resume_state`` row (inside the caller's transaction)."""
        self._conn.execute(
            "INSERT OR REPLACE INTO resume_state (id, step, strategy_state, rng_state) VALUES (1, ?, ?, ?)",
            (step, json.dumps(strategy_state), json.dumps(rng_state)))

    def last_step(self) -> StepRow | None:
        """The newest finished step with its saved states, or None before initialisation ends."""
        if self.schema_version < 4:  # an older run as it is: every step row holds its own states
            row = self._conn.execute(
                f"SELECT {_STEP_COLUMNS}, strategy_state, rng_state FROM steps ORDER BY step DESC LIMIT 1").fetchone()
            if row is None:
                return None
            *plain, state, rng = row
            return _step_row(plain, strategy_state=json.loads(state), rng_state=json.loads(rng))
        # one statement, so one snapshot: a reader never sees a step and the states of another
        columns = ", ".join(f"s.{name}" for name in _STEP_COLUMNS.split(", "))
        row = self._conn.execute(
            f"SELECT {columns}, r.step, r.strategy_state, r.rng_state FROM steps AS s "
            "LEFT JOIN resume_state AS r ON r.id = 1 ORDER BY s.step DESC LIMIT 1").fetchone()
        if row is None:
            return None
        *plain, saved_step, state, rng = row
        if saved_step != plain[0]:  # written in one transaction with the step: never apart
            raise RunStoreError(f"{self.path} has no saved state for its last step {plain[0]}; the run is damaged")
        return _step_row(plain, strategy_state=json.loads(state), rng_state=json.loads(rng))

    def step_rows(self) -> list[StepRow]:
        """Every finished step in order, without the saved states (pictures and curves need none)."""
        rows = self._conn.execute(f"SELECT {_STEP_COLUMNS} FROM steps ORDER BY step").fetchall()
        return [_step_row(r) for r in rows]

    @property
    def steps_done(self) -> int:
        """Evolution steps finished (initialisation, step 0, not counted)."""
        value = self._conn.execute("SELECT MAX(step) FROM steps").fetchone()[0]
        return 0 if value is None else int(value)

    @property
    def initialized(self) -> bool:
        return self._conn.execute("SELECT COUNT(*) FROM steps").fetchone()[0] > 0

    @property
    def cache_hits(self) -> int:
        return int(self._conn.execute("SELECT COALESCE(SUM(cache_hits), 0) FROM steps").fetchone()[0])

    def totals(self) -> dict:
        """Counters for ``status``: trainings, failures, pruned (trainings stopped by ``--prune``:
        trainings with their epochs, not failures), epochs, time spent training, and
        ``flop_epochs`` (each training's forward FLOPs per image times its epochs, summed).

        Every count includes the further samples of genomes (``samples``: how many of the
        trainings they are), so ``trainings`` is what a training budget counts.
        """
        tables = ["evaluations"] + (["samples"] if self._has_samples() else [])
        n = failures = pruned = epochs = seconds = 0
        devices: set[str | None] = set()
        for table in tables:
            counts = self._conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM({_FAILED}), 0), COALESCE(SUM(failure_kind IS ?), 0), "
                f"COALESCE(SUM(epochs), 0), COALESCE(SUM(train_time), 0) FROM {table}", (PRUNED,)
            ).fetchone()
            n, failures, pruned, epochs, seconds = (
                a + b for a, b in zip((n, failures, pruned, epochs, seconds), counts))
            devices |= {d for (d,) in self._conn.execute(f"SELECT DISTINCT device FROM {table}")}
        # forward FLOPs per image x epochs, summed (a further sample has its genome's FLOPs)
        flop_epochs = self._conn.execute("SELECT COALESCE(SUM(flops * epochs), 0) FROM evaluations").fetchone()[0]
        if self._has_samples():
            flop_epochs += self._conn.execute(
                "SELECT COALESCE(SUM(e.flops * s.epochs), 0) FROM samples s JOIN evaluations e "
                "ON e.cache_key = s.cache_key").fetchone()[0]
        return {"trainings": n, "failures": failures, "pruned": pruned, "epochs": epochs, "train_seconds": seconds,
                "flop_epochs": int(flop_epochs), "samples": self.count_samples(), "cache_hits": self.cache_hits,
                "steps_done": self.steps_done,
                "devices": sorted(devices, key=lambda d: (d is not None, d or ""))}

    def failures_by_kind(self) -> dict[str, dict]:
        """Failed trainings by kind, for ``status``: ``{kind: {"count", "example", "genome"}}``.

        Counted like :meth:`totals` counts ``failures`` (every training whose ``failure`` is set,
        pruned ones apart, further samples included), so the counts add up to it. ``example`` is the reason of the
        kind's first failed training (by step, first trainings before further samples, then the
        order they were made) and ``genome`` its genome. A failure stored without a kind (a custom
        fitness function's) counts as ``unknown``. Most frequent kind first, then by name. Reads only.
        """
        found: dict[str, dict] = {}
        tables = [("evaluations", "genome")] + ([("samples", "cache_key")] if self._has_samples() else [])
        for rank, (table, genome) in enumerate(tables):
            # SQLite takes the bare columns of a MIN() aggregate from the row holding that minimum
            rows = self._conn.execute(
                f"SELECT failure_kind, COUNT(*), MIN(id), step, {genome}, failure FROM {table} "
                f"WHERE {_FAILED} GROUP BY failure_kind").fetchall()
            for kind, count, first, step, name, failure in rows:
                if table == "samples":
                    name = str(name).partition(":")[2]
                key = UNKNOWN_FAILURE_KIND if kind is None else str(kind)
                entry = found.setdefault(key, {"count": 0, "example": failure, "genome": name,
                                               "_first": (step, rank, first)})
                entry["count"] += count
                if (step, rank, first) < entry["_first"]:
                    entry.update(example=failure, genome=name, _first=(step, rank, first))
        ordered = sorted(found.items(), key=lambda item: (-item[1]["count"], item[0]))
        return {kind: {"count": e["count"], "example": e["example"], "genome": e["genome"]} for kind, e in ordered}

    def failed_trainings(self) -> list[tuple[int, Evaluation]]:
        """Every failed training as (sample number, training): first trainings (sample 0, their
        full row) and further samples alike, by step, first trainings before further samples,
        then in the order they were made (as :meth:`trainings_in_order`). Reads only."""
        rows = [(ev.step, 0, ev.order, 0, ev) for ev in map(_eval_row, self._conn.execute(
            f"SELECT {self._eval_columns} FROM evaluations WHERE {_FAILED} ORDER BY id").fetchall())]
        if self._has_samples():
            for row_id, *row in self._conn.execute(
                    f"SELECT id, {_SAMPLE_COLUMNS} FROM samples WHERE {_FAILED} ORDER BY id").fetchall():
                _key, number, ev = _sample_row(tuple(row))
                rows.append((ev.step, 1, row_id, number, ev))
        return [(number, ev) for *_, number, ev in sorted(rows, key=lambda r: r[:3])]


#: SQL: a failed training. A pruned one (``--prune``) is a training stopped on purpose, counted
#: apart (``totals()["pruned"]``), not a failure.
_FAILED = f"(failure IS NOT NULL AND failure_kind IS NOT '{PRUNED}')"

#: Evaluation fields in column order ("order" is the id column, "index" the idx column).
_EVAL_FIELDS = [f.name for f in fields(Evaluation) if f.name != "order"]
_EVAL_FIELDS.insert(0, "order")
_COLUMN = {"order": "id", "index": "idx"}
_EVAL_COLUMNS = ", ".join(_COLUMN.get(name, name) for name in _EVAL_FIELDS)
_STEP_COLUMNS = "step, record, snapshot, trainings, cache_hits, wall_time, finished_at"


_SAMPLE_COLUMNS = ("cache_key, sample, fitness, failure, failure_kind, epochs, best_epoch, train_time, history, "
                   "seed, device, step, idx, created_at")


def _sample_row(row: tuple) -> tuple[str, int, Evaluation]:
    key, sample, fitness, failure, failure_kind, epochs, best_epoch, train_time, history, seed, device, step, idx, \
        created_at = row
    ev = Evaluation(order=0, genome=key.partition(":")[2], fitness=fitness, step=step, index=idx, failure=failure,
                    failure_kind=failure_kind, epochs=epochs, best_epoch=best_epoch, train_time=train_time,
                    seed=seed, device=device, created_at=created_at, history=tuple(json.loads(history or "[]")))
    return key, int(sample), ev


def _eval_row(row: tuple) -> Evaluation:
    data = dict(zip(_EVAL_FIELDS, row))
    data["at_chance"] = bool(data["at_chance"])
    data["parents"] = tuple(json.loads(data["parents"] or "[]"))
    data["history"] = tuple(json.loads(data["history"] or "[]"))
    position = json.loads(data["position"] or "null")
    data["position"] = None if position is None else tuple(position)
    return Evaluation(**data)


def _step_row(row: tuple | list, **states: Any) -> StepRow:
    step, record, snapshot, trainings, cache_hits, wall_time, finished_at = row
    return StepRow(step=step, record=json.loads(record), lattice=None if snapshot is None else json.loads(snapshot),
                   trainings=trainings, cache_hits=cache_hits, wall_time=wall_time, finished_at=finished_at, **states)


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error) on an autocommit connection.

    An SQLite failure (disk full, I/O error, read-only file, a second writer) becomes a
    one-line RunStoreError naming ``path``; what was committed before stays committed.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

    def __enter__(self) -> None:
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise RunStoreError(_write_failure(self.path, exc)) from None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None:
                self.conn.execute("COMMIT")
                return
        except sqlite3.Error as failure:
            exc = failure
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite already rolled back (it does after some I/O errors)
        if isinstance(exc, sqlite3.Error):
            raise RunStoreError(_write_failure(self.path, exc)) from None


def _write_failure(path: Path, exc: sqlite3.Error) -> str:
    """One line for a failed write to ``path``: what happened and what to do."""
    text = str(exc).lower()
    run_dir = path.parent
    resume = f"then continue with 'alife-nas resume {run_dir}' (everything committed is kept)"
    if isinstance(exc, sqlite3.IntegrityError):
        return (f"{path} was changed by another process while this one wrote it (two writers on one run?); "
                f"this process stopped")
    if "full" in text:
        return f"cannot write {path}: the disk is full; free some space, {resume}"
    if "disk i/o error" in text:
        return f"cannot write {path}: disk I/O error (disk full, a file-size limit or a failing disk); {resume}"
    if "readonly" in text or "read-only" in text:
        return f"cannot write {path}: it is read-only; make it writable, {resume}"
    if "locked" in text or "busy" in text:
        return f"cannot write {path}: it is locked by another process; stop that process, {resume}"
    return f"cannot write {path}: {_reason(exc)}; {resume}"


def _is_full(exc: BaseException) -> bool:
    """A write failed for lack of room (full disk, quota, file-size limit; SQLite says 'disk I/O')."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return any(word in str(exc).lower() for word in ("full", "disk i/o"))


def _reason(exc: BaseException) -> str:
    """A short, one-line reason from an OSError or SQLite error."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return one_line(text)


def _identity(path: Path) -> tuple[int, int] | None:
    """Which file ``path`` is (device, inode), or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _sync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard_unfinished_creation(run_dir: Path) -> None:
    """Remove what a killed :meth:`RunStore.create` left: the half-built database and its side files."""
    building = run_dir / (DB_NAME + CREATING_SUFFIX)
    for path in (building, *_sidecars(building)):
        if path.exists():
            path.unlink()


def _holds_nothing(db: Path) -> bool:
    """True for a database file with no tables at all: a creation by alife_nas 0.1/0.2 killed
    before its first commit (never a run: the schema, config and meta are one transaction)."""
    wal = db.with_name(db.name + "-wal")
    if db.stat().st_size == 0 and (not wal.exists() or wal.stat().st_size == 0):
        return True
    existing = {p for p in _sidecars(db) if p.exists()}
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()[0] == 0
        finally:
            conn.close()
    except sqlite3.Error:
        return False  # unreadable: not ours to judge here; opening it says what is wrong
    finally:
        for side in _sidecars(db):  # looking leaves the directory as it was
            if side.exists() and side not in existing:
                side.unlink()


def _connect_readonly(db: Path) -> tuple[sqlite3.Connection, str]:
    """A connection that never writes, and a notice for the reader ("" when nothing was left out).

    SQLite reads a WAL-mode database through its ``-shm`` file, which it must be able to create
    or open; on read-only media it cannot, and then only the database file is read
    (``immutable=1``). Since every step is checkpointed, that file holds the run to its last
    step; a ``-wal`` file with more in it is reported as left unread.
    """
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return conn, ""
    except sqlite3.OperationalError:
        conn.close()
    conn = sqlite3.connect(f"file:{db}?immutable=1", uri=True, isolation_level=None)
    wal = db.with_name(db.name + "-wal")
    notice = ""
    if wal.exists() and wal.stat().st_size > 0:
        notice = (f"note: {wal.name} cannot be read here (read-only, and SQLite cannot open its shared-memory "
                  f"file); showing the run as of its last finished step")
    return conn, notice


def _check(conn: sqlite3.Connection, db: Path) -> None:
    """Raise RunStoreError unless ``conn`` is an intact alife_nas database of a known schema."""
    try:
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            detail = one_line(ok)
            raise RunStoreError(f"{db} is corrupted ({detail}); the run cannot be used")
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            raise RunStoreError(f"{db} is an SQLite database but not an alife_nas run")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        detail = one_line(exc)
        raise RunStoreError(f"{db} is not a readable alife_nas run database ({detail})") from None
    if meta.get("tool") != TOOL_NAME:
        raise RunStoreError(f"{db} is an SQLite database but not an alife_nas run")
    try:
        version = int(meta.get("schema_version", ""))
    except ValueError:
        raise RunStoreError(f"{db} has an unreadable schema version {meta.get('schema_version')!r}") from None
    if version > SCHEMA_VERSION:
        raise RunStoreError(f"{db} uses schema version {version}, newer than this alife_nas understands ({SCHEMA_VERSION}); upgrade alife_nas")
    if version not in _READABLE:
        raise RunStoreError(f"{db} uses an old schema version {version} that this alife_nas cannot read")
    missing = {"config", "evaluations", "steps", "events", *(("resume_state",) if version >= 4 else ())} - tables
    if missing:
        raise RunStoreError(f"{db} is missing tables {sorted(missing)}; the run is damaged")
