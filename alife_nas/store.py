"""The run store: one SQLite database (stdlib ``sqlite3``, WAL mode) per run directory.

It holds the run's config, every training ever made (the evaluation cache), every finished step
with the lattice/population after it and the random-number state, and a small event log.
Each finished training is committed at once; each finished step is one transaction. A process
killed at any moment therefore loses at most the training in flight.
"""
from __future__ import annotations

import json
import os
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["RunStore", "RunStoreError", "DB_NAME", "SCHEMA_VERSION", "TOOL_NAME"]

DB_NAME = "run.sqlite"
TOOL_NAME = "alife_nas"
SCHEMA_VERSION = 1

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


class RunStoreError(Exception):
    """A run directory or database that cannot be used; the message is one line for the user."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _sidecars(db: Path) -> list[Path]:
    return [db.with_name(db.name + suffix) for suffix in ("-wal", "-shm", "-journal")]


class RunStore:
    """Read and write one run's database. Use :meth:`create` or :meth:`open`."""

    def __init__(self, run_dir: Path, conn: sqlite3.Connection) -> None:
        self.run_dir = run_dir
        self.path = run_dir / DB_NAME
        self._conn = conn

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, run_dir: str | os.PathLike, config: dict, settings_hash: str) -> "RunStore":
        """Make a new run in ``run_dir`` (created if needed); refuses a directory holding a run."""
        run_dir = Path(run_dir)
        db = run_dir / DB_NAME
        if db.exists():
            raise RunStoreError(f"{run_dir} already holds a run; continue it with 'alife-nas resume {run_dir}'")
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
                [("tool", TOOL_NAME), ("schema_version", str(SCHEMA_VERSION)), ("created_at", _now())],
            )
            conn.execute("INSERT INTO config (id, body, settings_hash) VALUES (1, ?, ?)", (json.dumps(config), settings_hash))
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

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- config and events ---------------------------------------------------------------
    @property
    def config(self) -> dict:
        return json.loads(self._conn.execute("SELECT body FROM config WHERE id = 1").fetchone()[0])

    @property
    def settings_hash(self) -> str:
        return self._conn.execute("SELECT settings_hash FROM config WHERE id = 1").fetchone()[0]

    def update_config(self, config: dict) -> None:
        """Store a config after a safe change (more steps, another device)."""
        with _transaction(self._conn):
            self._conn.execute("UPDATE config SET body = ? WHERE id = 1", (json.dumps(config),))

    def log_event(self, kind: str, message: str) -> None:
        with _transaction(self._conn):
            self._conn.execute("INSERT INTO events (at, kind, message) VALUES (?, ?, ?)", (_now(), kind, message))

    def events(self) -> list[dict]:
        rows = self._conn.execute("SELECT at, kind, message FROM events ORDER BY id").fetchall()
        return [{"at": a, "kind": k, "message": m} for a, k, m in rows]

    # --- evaluations (the cache) ------------------------------------------------------------
    def lookup(self, cache_key: str) -> dict | None:
        """The stored evaluation for this cache key, or None."""
        row = self._conn.execute(f"SELECT {_EVAL_COLUMNS} FROM evaluations WHERE cache_key = ?", (cache_key,)).fetchone()
        return None if row is None else _eval_row(row)

    def add_evaluation(self, cache_key: str, result: dict, *, step: int, index: int, operator: str,
                       parents: list[str], position: Any, seed: int, device: str) -> int:
        """Commit one finished training at once; returns its training order number."""
        with _transaction(self._conn):
            cur = self._conn.execute(
                """INSERT INTO evaluations (cache_key, genome, fitness, failure, failure_kind, at_chance, epochs,
                   best_epoch, train_time, images_per_sec, params, flops, effective_layers, step, idx, operator,
                   parents, position, seed, device, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    cache_key, result["genome"], float(result["fitness"]), result.get("failure"),
                    result.get("failure_kind"), int(bool(result.get("at_chance"))), result.get("epochs"),
                    result.get("best_epoch"), result.get("train_time"), result.get("images_per_sec"),
                    result.get("params"), result.get("flops"), result.get("effective_layers"), step, index,
                    operator, json.dumps(list(parents)), json.dumps(None if position is None else list(position)),
                    seed, device, _now(),
                ),
            )
        return int(cur.lastrowid)

    def evaluations(self) -> list[dict]:
        """Every training made, in training order (``order`` = 1..n)."""
        rows = self._conn.execute(f"SELECT {_EVAL_COLUMNS} FROM evaluations ORDER BY id").fetchall()
        return [_eval_row(r) for r in rows]

    def best_evaluation(self) -> dict | None:
        """The fittest training so far (the earliest on ties), or None."""
        row = self._conn.execute(
            f"SELECT {_EVAL_COLUMNS} FROM evaluations ORDER BY fitness DESC, id ASC LIMIT 1").fetchone()
        return None if row is None else _eval_row(row)

    def count_evaluations(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]

    # --- steps -----------------------------------------------------------------------------
    def commit_step(self, step: int, record: dict, snapshot: dict | None, strategy_state: dict,
                    rng_state: dict, trainings: int, cache_hits: int, wall_time: float) -> None:
        """Store a finished step in one transaction."""
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT INTO steps (step, record, snapshot, strategy_state, rng_state, trainings, cache_hits, wall_time, finished_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (step, json.dumps(record), None if snapshot is None else json.dumps(snapshot), json.dumps(strategy_state),
                 json.dumps(rng_state), trainings, cache_hits, wall_time, _now()),
            )

    def last_step(self) -> dict | None:
        """The newest finished step with its saved states, or None before initialisation ends."""
        row = self._conn.execute(
            "SELECT step, record, snapshot, strategy_state, rng_state FROM steps ORDER BY step DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        step, record, snapshot, state, rng = row
        return {"step": step, "record": json.loads(record), "lattice": None if snapshot is None else json.loads(snapshot),
                "strategy_state": json.loads(state), "rng_state": json.loads(rng)}

    def step_rows(self) -> list[dict]:
        """One dict per finished step: step, record, lattice (or None), trainings, cache_hits, wall_time."""
        rows = self._conn.execute(
            "SELECT step, record, snapshot, trainings, cache_hits, wall_time, finished_at FROM steps ORDER BY step"
        ).fetchall()
        return [
            {"step": s, "record": json.loads(r), "lattice": None if snap is None else json.loads(snap),
             "trainings": t, "cache_hits": h, "wall_time": w, "finished_at": f}
            for s, r, snap, t, h, w, f in rows
        ]

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


_EVAL_FIELDS = [
    "id", "genome", "fitness", "failure", "failure_kind", "at_chance", "epochs", "best_epoch", "train_time",
    "images_per_sec", "params", "flops", "effective_layers", "step", "idx", "operator", "parents", "position",
    "seed", "device", "created_at",
]
_EVAL_COLUMNS = ", ".join(_EVAL_FIELDS)


def _eval_row(row: tuple) -> dict:
    data = dict(zip(_EVAL_FIELDS, row))
    data["order"] = data.pop("id")
    data["index"] = data.pop("idx")
    data["at_chance"] = bool(data["at_chance"])
    data["parents"] = json.loads(data["parents"] or "[]")
    data["position"] = json.loads(data["position"] or "null")
    return data


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
    if version < SCHEMA_VERSION:
        raise RunStoreError(f"{db} uses an old schema version {version} that this alife_nas cannot read")
    missing = {"config", "evaluations", "steps", "events"} - tables
    if missing:
        raise RunStoreError(f"{db} is missing tables {sorted(missing)}; the run is damaged")
