"""The run store: one SQLite database (stdlib ``sqlite3``, WAL mode) per run directory.

It holds the run's config, every training ever made (the evaluation cache), every finished step
with the lattice after it (stored once), the strategy's and the random generator's state, and a
small event log. Each finished training is committed at once; each finished step is one
transaction. A process killed at any moment therefore loses at most the training in flight.

What crosses into and out of the store is typed: :class:`~alife_nas.config.SearchConfig`,
:class:`Evaluation` (one training) and :class:`StepRow` (one finished step). This module is the
one place that maps them to SQL.
"""
from __future__ import annotations

import json
import os
import sqlite3

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writer is not enforced there
    fcntl = None  # type: ignore[assignment]
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from alife_nas.config import ConfigError, SearchConfig

__all__ = ["RunStore", "RunStoreError", "Evaluation", "StepRow", "DB_NAME", "SCHEMA_VERSION", "TOOL_NAME",
           "refuse_existing_run"]

DB_NAME = "run.sqlite"
LOCK_NAME = "run.lock"
TOOL_NAME = "alife_nas"
#: 2: the config is the nested SearchConfig and the data set's shape is in meta. Schema 1 (alife_nas
#: 0.1: a flat config) is still read, and upgraded in place when a run is resumed.
SCHEMA_VERSION = 2
_READABLE = (1, 2)

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
    created_at TEXT NOT NULL
);
CREATE TABLE steps (
    step INTEGER PRIMARY KEY,                   -- 0 = initialisation
    record TEXT NOT NULL,                       -- JSON step record
    snapshot TEXT,                              -- JSON lattice after the step (null for non-lattice strategies)
    strategy_state TEXT NOT NULL,               -- JSON, enough to continue the strategy
    rng_state TEXT NOT NULL,                    -- JSON numpy bit-generator state after the step
    trainings INTEGER NOT NULL,                 -- trainings made during this step
    cache_hits INTEGER NOT NULL,
    wall_time REAL NOT NULL,
    finished_at TEXT NOT NULL
);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL);
"""


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

    @classmethod
    def from_result(cls, result: Mapping[str, Any], **where: Any) -> "Evaluation":
        """A not-yet-stored evaluation from a score function's result dict and its place in the search."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in result.items() if k in known}
        values.update(where)
        values.setdefault("order", 0)
        values["parents"] = tuple(values.get("parents") or ())
        position = values.get("position")
        values["position"] = None if position is None else tuple(position)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict (tuples become lists)."""
        data = asdict(self)
        data["parents"] = list(self.parents)
        data["position"] = None if self.position is None else list(self.position)
        return data


@dataclass(frozen=True)
class StepRow:
    """One finished step as stored. ``lattice`` is None for strategies without one.

    ``strategy_state`` and ``rng_state`` are what a resume needs; :meth:`RunStore.step_rows`
    leaves them out (None) because pictures and curves never need them.
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
    """RunStoreError if ``run_dir`` already holds a run (a new run never overwrites one)."""
    if (Path(run_dir) / DB_NAME).exists():
        raise RunStoreError(f"{run_dir} already holds a run; continue it with 'alife-nas resume {run_dir}'")


def _sidecars(db: Path) -> list[Path]:
    return [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


class RunStore:
    """Read and write one run's database. Use :meth:`create` or :meth:`open`."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection) -> None:
        self.run_dir = run_dir
        self.path = run_dir / DB_NAME
        self._conn = conn
        self._lock: Any = None

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: str | os.PathLike, config: SearchConfig, settings_hash: str,
               dataset_info: dict | None = None) -> "RunStore":
        """Make a new run in ``run_dir`` (created if needed); refuses a directory holding a run.

        ``dataset_info`` (``input_shape``, ``num_classes``, ``classes``) lets exports rebuild
        the networks without loading the data set.
        """
        run_dir = Path(run_dir)
        db = run_dir / DB_NAME
        refuse_existing_run(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise RunStoreError(f"{run_dir} exists and is not a directory")
        run_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        with _transaction(conn):
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
        return cls(run_dir, conn)

    @classmethod
    def open(cls, run_dir: str | os.PathLike) -> "RunStore":
        """Open an existing run; a foreign, newer, corrupted or missing database is refused.

        A refused directory is left exactly as it was (SQLite side files it made are removed).
        """
        run_dir = Path(run_dir)
        db = run_dir / DB_NAME
        if not run_dir.is_dir():
            raise RunStoreError(f"{run_dir} is not a directory")
        if not db.is_file():
            raise RunStoreError(f"{run_dir} is not an alife_nas run directory (no {DB_NAME} in it)")
        existing = {p for p in _sidecars(db) if p.exists()}
        conn = None
        try:
            conn = sqlite3.connect(f"file:{db}?mode=rw", uri=True, isolation_level=None)
            _check(conn, db)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        except RunStoreError:
            if conn is not None:
                conn.close()
            for side in _sidecars(db):
                if side.exists() and side not in existing:
                    side.unlink()
            raise
        return cls(run_dir, conn)

    def close(self) -> None:
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
        with _transaction(self._conn):
            self._conn.execute("UPDATE config SET body = ? WHERE id = 1", (json.dumps(config.to_dict()),))

    def upgrade(self) -> bool:
        """Bring a schema-1 run to the current schema in one transaction; True if it changed.

        The config becomes the nested form, the data set's shape moves to meta, and lattice
        strategies' saved states stop repeating the step's lattice. The settings hash (and so
        every cache key) stays as it is, so nothing is trained again.
        """
        if self.schema_version == SCHEMA_VERSION:
            return False
        config, info = self.config, self.dataset_info
        rows = self._conn.execute("SELECT step, strategy_state FROM steps").fetchall()
        with _transaction(self._conn):
            self._conn.execute("UPDATE config SET body = ? WHERE id = 1", (json.dumps(config.to_dict()),))
            self._conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('dataset_info', ?)", (json.dumps(info),))
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            for step, state in rows:
                state = json.loads(state)
                if isinstance(state, dict) and "lattice" in state:
                    del state["lattice"]
                    self._conn.execute("UPDATE steps SET strategy_state = ? WHERE step = ?", (json.dumps(state), step))
        return True

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def log_event(self, kind: str, message: str) -> None:
        with _transaction(self._conn):
            self._conn.execute("INSERT INTO events (at, kind, message) VALUES (?, ?, ?)", (_now(), kind, message))

    def events(self) -> list[dict]:
        rows = self._conn.execute("SELECT at, kind, message FROM events ORDER BY id").fetchall()
        return [{"at": a, "kind": k, "message": m} for a, k, m in rows]

    # --- evaluations (the cache) ------------------------------------------------------------
    def lookup(self, cache_key: str) -> Evaluation | None:
        """The stored evaluation for this cache key, or None."""
        row = self._conn.execute(f"SELECT {_EVAL_COLUMNS} FROM evaluations WHERE cache_key = ?", (cache_key,)).fetchone()
        return None if row is None else _eval_row(row)

    def add_evaluation(self, cache_key: str, ev: Evaluation) -> Evaluation:
        """Commit one finished training at once; returns it with its training order and time."""
        ev = Evaluation(**{**asdict(ev), "order": 0, "created_at": _now()})
        values = {name: getattr(ev, name) for name in _EVAL_FIELDS[1:]}
        values["at_chance"] = int(bool(ev.at_chance))
        values["parents"] = json.dumps(list(ev.parents))
        values["position"] = json.dumps(None if ev.position is None else list(ev.position))
        columns = ", ".join(_COLUMN.get(name, name) for name in values)
        with _transaction(self._conn):
            cur = self._conn.execute(
                f"INSERT INTO evaluations (cache_key, {columns}) VALUES (?, {', '.join('?' * len(values))})",
                (cache_key, *values.values()),
            )
        return Evaluation(**{**asdict(ev), "order": int(cur.lastrowid)})

    def evaluations(self) -> list[Evaluation]:
        """Every training made, in training order."""
        rows = self._conn.execute(f"SELECT {_EVAL_COLUMNS} FROM evaluations ORDER BY id").fetchall()
        return [_eval_row(r) for r in rows]

    def best_evaluation(self) -> Evaluation | None:
        """The fittest training so far (the earliest on ties), or None."""
        row = self._conn.execute(
            f"SELECT {_EVAL_COLUMNS} FROM evaluations ORDER BY fitness DESC, id ASC LIMIT 1").fetchone()
        return None if row is None else _eval_row(row)

    def count_evaluations(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    # --- steps -----------------------------------------------------------------------------
    def commit_step(self, row: StepRow) -> None:
        """Store a finished step in one transaction."""
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT INTO steps (step, record, snapshot, strategy_state, rng_state, trainings, cache_hits, wall_time, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.step, json.dumps(row.record), None if row.lattice is None else json.dumps(row.lattice),
                 json.dumps(row.strategy_state), json.dumps(row.rng_state), row.trainings, row.cache_hits,
                 row.wall_time, _now()),
            )

    def last_step(self) -> StepRow | None:
        """The newest finished step with its saved states, or None before initialisation ends."""
        row = self._conn.execute(f"SELECT {_STEP_COLUMNS}, strategy_state, rng_state FROM steps ORDER BY step DESC LIMIT 1").fetchone()
        if row is None:
            return None
        *plain, state, rng = row
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
        """Counters for ``status``: trainings, failures, epochs and time spent training."""
        n, failures, epochs, seconds = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(failure IS NOT NULL), 0), COALESCE(SUM(epochs), 0), COALESCE(SUM(train_time), 0)"
            " FROM evaluations"
        ).fetchone()
        devices = [d for (d,) in self._conn.execute("SELECT DISTINCT device FROM evaluations ORDER BY device")]
        return {"trainings": n, "failures": failures, "epochs": epochs, "train_seconds": seconds,
                "cache_hits": self.cache_hits, "steps_done": self.steps_done, "devices": devices}


#: Evaluation fields in column order ("order" is the id column, "index" the idx column).
_EVAL_FIELDS = [f.name for f in fields(Evaluation) if f.name != "order"]
_EVAL_FIELDS.insert(0, "order")
_COLUMN = {"order": "id", "index": "idx"}
_EVAL_COLUMNS = ", ".join(_COLUMN.get(name, name) for name in _EVAL_FIELDS)
_STEP_COLUMNS = "step, record, snapshot, trainings, cache_hits, wall_time, finished_at"


def _eval_row(row: tuple) -> Evaluation:
    data = dict(zip(_EVAL_FIELDS, row))
    data["at_chance"] = bool(data["at_chance"])
    data["parents"] = tuple(json.loads(data["parents"] or "[]"))
    position = json.loads(data["position"] or "null")
    data["position"] = None if position is None else tuple(position)
    return Evaluation(**data)


def _step_row(row: tuple | list, **states: Any) -> StepRow:
    step, record, snapshot, trainings, cache_hits, wall_time, finished_at = row
    return StepRow(step=step, record=json.loads(record), lattice=None if snapshot is None else json.loads(snapshot),
                   trainings=trainings, cache_hits=cache_hits, wall_time=wall_time, finished_at=finished_at, **states)


class _transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error) on an autocommit connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _check(conn: sqlite3.Connection, db: Path) -> None:
    """Raise RunStoreError unless ``conn`` is an intact alife_nas database of a known schema."""
    try:
        ok = conn.execute("PRAGMA quick_check").fetchone()[0]
        if ok != "ok":
            detail = " ".join(str(ok).split())[:120]
            raise RunStoreError(f"{db} is corrupted ({detail}); the run cannot be used")
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            raise RunStoreError(f"{db} is an SQLite database but not an alife_nas run")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.DatabaseError as exc:
        detail = " ".join(str(exc).split())[:120]
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
    missing = {"config", "evaluations", "steps", "events"} - tables
    if missing:
        raise RunStoreError(f"{db} is missing tables {sorted(missing)}; the run is damaged")
