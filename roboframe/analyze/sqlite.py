"""The embedded analysis database: SQLite, from the standard library.

One file, created on first use. A run's rows go in inside one transaction;
a run analysed again is deleted first, in the same transaction, so a reader
never sees half of a run, and a failure mid-way leaves the previous
analysis in place.

SQLite's inserts run in a writer process of their own, fed through a pipe:
the replay and the database work on two cores instead of taking turns on
one (a thread would wait for the replay's GIL). The pipe's buffer bounds
what waits between them, so memory stays flat. An insert error surfaces
at :meth:`SqliteStore.commit_run`, and the run is rolled back.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sqlite3
from pathlib import Path
from typing import Any

from roboframe.analyze.store import AnalysisStore
from roboframe.analyze.tables import INDEXES, KEYS, TABLES, column_type
from roboframe.errors import RoboframeError

_SQL_TYPES = {"integer": "INTEGER", "real": "REAL", "text": "TEXT"}


class AnalysisDbError(RoboframeError):
    """The analysis database refused what was written to it."""


def create_statements() -> list[str]:
    """``CREATE TABLE`` and ``CREATE INDEX`` statements of the whole schema."""
    out = []
    for table, columns in TABLES.items():
        cols = ", ".join(f"{c} {_SQL_TYPES[column_type(c)]}" for c in columns)
        key = ", ".join(KEYS[table])
        rowid = " WITHOUT ROWID" if table != "runs" else ""
        out.append(f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({key})){rowid}")
    for table, indexes in INDEXES.items():
        for cols in indexes:
            name = f"{table}_{'_'.join(cols)}"
            out.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(cols)})")
    return out


def connect(path: str | Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")  # readers keep reading while a run is written
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _writer(path: str, pipe: Any) -> None:
    """The writer process: executes commands from ``pipe`` until ``close``."""
    db = connect(path)
    inserts = {
        t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
        for t, c in TABLES.items()
    }
    error: str | None = None
    while True:
        command, *args = pipe.recv()
        try:
            if command == "write":
                if error is None:
                    db.executemany(inserts[args[0]], args[1])
                continue
            if command == "setup":
                for statement in create_statements():
                    db.execute(statement)
            elif command == "begin":
                error = None
                db.execute("BEGIN")
                for table in TABLES:
                    db.execute(f"DELETE FROM {table} WHERE run = ?", (args[0],))
            elif command == "commit":
                if error is not None:
                    db.execute("ROLLBACK")
                    raise sqlite3.DatabaseError(error)
                db.execute("COMMIT")
            elif command == "abort":
                if db.in_transaction:
                    db.execute("ROLLBACK")
                error = None
            elif command == "close":
                db.close()
                pipe.send(("ok", None))
                return
            pipe.send(("ok", None))
        except sqlite3.Error as exc:
            if command == "write":
                error = f"{type(exc).__name__}: {exc}"
            else:
                pipe.send(("error", f"{type(exc).__name__}: {exc}"))


class SqliteStore(AnalysisStore):
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` (as SQLAlchemy spells them)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = Path(url.removeprefix("sqlite:///"))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connect(self.path).close()  # a bad path fails here, in this process, plainly
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self._pipe, theirs = ctx.Pipe()
        self._process = ctx.Process(
            target=_writer, args=(str(self.path), theirs), name="analysis-sqlite", daemon=True
        )
        self._process.start()
        theirs.close()

    def _call(self, *command: Any) -> None:
        self._pipe.send(command)
        try:
            status, message = self._pipe.recv()
        except EOFError:
            raise AnalysisDbError(f"the SQLite writer for {self.path} died") from None
        if status != "ok":
            raise AnalysisDbError(f"analysis database {self.path}: {message}")

    def setup(self) -> None:
        self._call("setup")

    def begin_run(self, run: int) -> None:
        self._call("begin", run)

    def write(self, table: str, rows: list[tuple]) -> None:
        self._pipe.send(("write", table, rows))

    def commit_run(self) -> None:
        self._call("commit")

    def abort_run(self) -> None:
        self._call("abort")

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(AnalysisDbError, OSError):  # closing anyway
                self._call("close")
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
        self._pipe.close()
