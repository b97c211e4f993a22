"""roboframe-postgres: the PostgreSQL order store and its gateway.

Registered through the ``roboframe`` entry point like any third-party plugin:
the ``postgresql://`` store scheme and the ``postgres`` gateway.
"""

from __future__ import annotations

from roboframe import hookimpl
from roboframe_postgres.store import PgStore


@hookimpl
def roboframe_register_stores(register):
    register("postgresql", PgStore)


@hookimpl
def roboframe_register_analysis_stores(register):
    from roboframe_postgres.analysis import PgAnalysisStore

    register("postgresql", PgAnalysisStore)


@hookimpl
def roboframe_register_gateways(register):
    from roboframe.builtin.storegw import StoreGateway

    class PostgresGateway(StoreGateway):
        """Orders through a PostgreSQL order store (the "slow variant")."""

        schemes = ("postgresql", "postgres")

    register("postgres", PostgresGateway)
