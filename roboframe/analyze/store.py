"""The contract of an analysis database backend.

A backend is registered for a URL scheme through the
``roboframe_register_analysis_stores`` hook; SQLite is built in, PostgreSQL
and MongoDB come with their plugins. The tables and columns are
:data:`roboframe.analyze.tables.TABLES`, the same everywhere.

For each journal the analyzer calls :meth:`begin_run` (which must remove
every row an earlier analysis of the same run left), :meth:`write` any
number of times, then :meth:`commit_run`; on failure :meth:`abort_run`.
A backend makes a run's rows visible all at once where it can.
"""

from __future__ import annotations

from typing import Any


class AnalysisStore:
    def __init__(self, url: str) -> None:
        self.url = url

    def setup(self) -> None:
        """Create tables (collections) and indexes when missing."""
        raise NotImplementedError

    def begin_run(self, run: int) -> None:
        """Start writing run ``run``: earlier rows of that run are removed."""
        raise NotImplementedError

    def write(self, table: str, rows: list[tuple]) -> None:
        """Insert ``rows`` (tuples in the order of the table's columns) before returning:
        the caller reuses the list."""
        raise NotImplementedError

    def commit_run(self) -> None:
        raise NotImplementedError

    def abort_run(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> AnalysisStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
