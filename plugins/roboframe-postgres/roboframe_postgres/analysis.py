"""The PostgreSQL analysis database: ``roboframe analyze --db postgresql://...``.

The tables of :data:`roboframe.analyze.tables.TABLES` (integer → BIGINT,
real → DOUBLE PRECISION, text → TEXT), each with its
:data:`~roboframe.analyze.tables.KEYS` as PRIMARY KEY and the
:data:`~roboframe.analyze.tables.INDEXES`. A URL may carry ``?schema=NAME``
to keep them in their own schema (created when missing), as the order store
does; the table names (``runs``, ``events``, ``orders`` ...) are plain, so a
schema of their own is the safe choice in a shared database.

Each run is one transaction: :meth:`PgAnalysisStore.begin_run` takes an
advisory lock on the run's number (two analyses of one run wait for each
other instead of colliding on keys) and deletes the run's earlier rows;
rows arrive through binary ``COPY ... FROM STDIN``; :meth:`commit_run` makes the
whole run visible at once and :meth:`abort_run` rolls it back, leaving the
previous analysis in place.
"""

from __future__ import annotations

import contextlib

import psycopg

from roboframe.analyze.store import AnalysisStore
from roboframe.analyze.tables import INDEXES, KEYS, TABLES, column_type
from roboframe.errors import RoboframeError
from roboframe.store.base import shown_url
from roboframe_postgres.store import split_schema

SQL_TYPES = {"integer": "BIGINT", "real": "DOUBLE PRECISION", "text": "TEXT"}
COPY_TYPES = {"integer": "int8", "real": "float8", "text": "text"}
_SETUP_LOCK = 724312  # the order store's setup takes 724311


def create_statements() -> list[str]:
    """``CREATE TABLE`` and ``CREATE INDEX`` statements of the whole schema."""
    out = []
    for table, columns in TABLES.items():
        cols = ", ".join(f"{c} {SQL_TYPES[column_type(c)]}" for c in columns)
        out.append(
            f"CREATE TABLE IF NOT EXISTS {table} ({cols}, PRIMARY KEY ({', '.join(KEYS[table])}))"
        )
    for table, indexes in INDEXES.items():
        for cols in indexes:
            name = f"{table}_{'_'.join(cols)}"
            out.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({', '.join(cols)})")
    return out


class PgAnalysisStore(AnalysisStore):
    """``postgresql://user@host/db?schema=analysis``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.dsn, self.schema = split_schema(url)
        # binary COPY: a fifth faster than text on the analyzer's rows, which always
        # hold int, float, str or None, as the column types say
        self._copy = {
            t: f"COPY {t} ({', '.join(c)}) FROM STDIN (FORMAT BINARY)" for t, c in TABLES.items()
        }
        self._types = {t: [COPY_TYPES[column_type(c)] for c in cs] for t, cs in TABLES.items()}
        self.conn: psycopg.Connection | None = None
        try:
            self.conn = psycopg.connect(self.dsn, connect_timeout=5)
            if self.schema:
                with self.conn.transaction():
                    # another connection may create it at the same moment
                    self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
                    self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                self.conn.execute(f'SET search_path TO "{self.schema}"')
                self.conn.commit()
        except psycopg.Error as exc:
            self.close()
            raise self._error("cannot connect", exc) from exc

    def _error(self, doing: str, exc: psycopg.Error) -> RoboframeError:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return RoboframeError(f"analysis database {shown_url(self.url)}: {doing}: {reason}")

    def setup(self) -> None:
        """Create what is missing; refuse tables of the same names with other columns."""
        assert self.conn is not None
        try:
            with self.conn.transaction():
                self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK,))
                found: dict[str, list[str]] = {}
                for table, column in self.conn.execute(
                    "SELECT table_name, column_name FROM information_schema.columns "
                    "WHERE table_schema = current_schema() AND table_name = ANY(%s) "
                    "ORDER BY table_name, ordinal_position",
                    (list(TABLES),),
                ):
                    found.setdefault(table, []).append(column)
                for table, columns in found.items():
                    if tuple(columns) != TABLES[table]:
                        where = f"schema {self.schema!r}" if self.schema else "the search path"
                        raise RoboframeError(
                            f"analysis database {shown_url(self.url)}: table {table!r} in "
                            f"{where} has columns {', '.join(columns)}, not those of an "
                            "analysis table; give the analysis a schema of its own "
                            "(?schema=analysis) or drop the old tables"
                        )
                for statement in create_statements():
                    self.conn.execute(statement)
        except psycopg.Error as exc:
            raise self._error("cannot create the tables", exc) from exc

    def begin_run(self, run: int) -> None:
        assert self.conn is not None
        try:
            self.conn.rollback()  # nothing of an earlier run may leak into this one
            self.conn.execute("SELECT pg_advisory_xact_lock(%s)", (run,))
            for table in TABLES:
                self.conn.execute(f"DELETE FROM {table} WHERE run = %s", (run,))
        except psycopg.Error as exc:
            raise self._error(f"cannot start run {run}", exc) from exc

    def write(self, table: str, rows: list[tuple]) -> None:
        assert self.conn is not None
        try:
            with self.conn.cursor() as cur, cur.copy(self._copy[table]) as copy:
                copy.set_types(self._types[table])
                write_row = copy.write_row
                for row in rows:
                    write_row(row)
        except psycopg.Error as exc:
            raise self._error(f"cannot write {table}", exc) from exc
        except (TypeError, ValueError, OverflowError) as exc:  # a value not of its column's type
            raise RoboframeError(f"analysis table {table}: {exc}") from exc

    def commit_run(self) -> None:
        assert self.conn is not None
        try:
            self.conn.commit()
        except psycopg.Error as exc:
            raise self._error("cannot commit", exc) from exc

    def abort_run(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):  # a lost connection rolled back already
                self.conn.rollback()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of ``sql`` (tests and tools); a read of its own, committed."""
        assert self.conn is not None
        with self.conn.transaction():
            return self.conn.execute(sql, params).fetchall()

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.abort_run()
                self.conn.close()
            finally:
                self.conn = None
