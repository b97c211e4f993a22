"""roboframe-postgres: the PostgreSQL order store and its gateway.

Registered through the ``roboframe`` entry point like any third-party plugin:
the ``postgresql://`` store scheme and the ``postgres`` gateway.
"""

from __future__ import annotations

from roboframe import hookimpl

# The backends are registered as functions that import them when a store is
# opened: every roboframe command builds the plugin registry, and psycopg
# takes a tenth of a second to import that `run` on a paper robot, `ctl` or
# `--help` would pay for nothing.


def open_store(url: str):
    from roboframe_postgres.store import PgStore

    return PgStore(url)


def open_analysis_store(url: str):
    from roboframe_postgres.analysis import PgAnalysisStore

    return PgAnalysisStore(url)


@hookimpl
def roboframe_register_stores(register):
    register("postgresql", open_store)


@hookimpl
def roboframe_register_analysis_stores(register):
    register("postgresql", open_analysis_store)


@hookimpl
def roboframe_register_gateways(register):
    from roboframe.builtin.storegw import StoreGateway

    class PostgresGateway(StoreGateway):
        """Orders through a PostgreSQL order store (the "slow variant")."""

        schemes = ("postgresql", "postgres")

    register("postgres", PostgresGateway)
