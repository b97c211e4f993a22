"""Built-in analysis database: SQLite (``sqlite:///file.db`` or a plain path)."""

from __future__ import annotations

from collections.abc import Callable

from roboframe.plugins import hookimpl


def open_sqlite(url: str):
    """The SQLite analysis store, imported when one is opened: every command
    builds the plugin registry, and only ``analyze`` needs the analyzer."""
    from roboframe.analyze.sqlite import SqliteStore

    return SqliteStore(url)


@hookimpl
def roboframe_register_analysis_stores(register: Callable[[str, type], None]) -> None:
    register("sqlite", open_sqlite)
