"""Built-in analysis database: SQLite (``sqlite:///file.db`` or a plain path)."""

from __future__ import annotations

from collections.abc import Callable

from roboframe.plugins import hookimpl


@hookimpl
def roboframe_register_analysis_stores(register: Callable[[str, type], None]) -> None:
    from roboframe.analyze.sqlite import SqliteStore

    register("sqlite", SqliteStore)
