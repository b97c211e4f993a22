"""The embedded analysis database: SQLite, from the standard library.

One file, created on first use. A run's rows go in inside one transaction;
a run analysed again is deleted first, in the same transaction, so a reader
never sees half of a run, and a failure mid-way leaves the previous
analysis in place. WAL mode lets readers keep reading while a run is
written.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from roboframe.analyze.store import AnalysisStore
from roboframe.analyze.tables import INDEXES, KEYS, TABLES, column_type
from roboframe.errors import RoboframeError

_SQL_TYPES = {"integer": "INTEGER", "real": "REAL", "text": "TEXT"}


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


class SqliteStore(AnalysisStore):
    """``sqlite:///relative.db``, ``sqlite:////absolute.db`` (as SQLAlchemy spells them)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.path = Path(url.removeprefix("sqlite:///"))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            # 32 MiB of page cache (the default is 2 MiB): the bulk inserts of a run touch
            # the same index pages again and again; bounded, so memory stays flat
            self.db.execute("PRAGMA cache_size=-32768")
        except (OSError, sqlite3.Error) as exc:
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise RoboframeError(
                f"--db: cannot open the analysis database {self.path}: {why}"
            ) from None
        self._insert = {
            t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join('?' * len(c))})"
            for t, c in TABLES.items()
        }

    def setup(self) -> None:
        for statement in create_statements():
            self.db.execute(statement)

    def begin_run(self, run: int) -> None:
        self.db.execute("BEGIN")
        for table in TABLES:
            self.db.execute(f"DELETE FROM {table} WHERE run = ?", (run,))

    def write(self, table: str, rows: list[tuple]) -> None:
        self.db.executemany(self._insert[table], rows)

    def commit_run(self) -> None:
        self.db.execute("COMMIT")

    def abort_run(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")

    def close(self) -> None:
        self.db.close()
