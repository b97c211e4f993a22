"""roboframe-mongo: the MongoDB order store (change streams) and its gateway.

Registered through the ``roboframe`` entry point like any third-party plugin:
the ``mongodb://`` store scheme and the ``mongo`` gateway. Change streams
need a replica set; a single-node one is enough::

    mongod --replSet rs0 --dbpath /var/lib/mongo && mongosh --eval "rs.initiate()"
"""

from __future__ import annotations

from roboframe import hookimpl

# Registered as functions that import the backend when a store is opened, so
# commands that never open one do not import pymongo (see roboframe_postgres).


def open_store(url: str):
    from roboframe_mongo.store import MongoStore

    return MongoStore(url)


def open_analysis_store(url: str):
    from roboframe_mongo.analysis import MongoAnalysisStore

    return MongoAnalysisStore(url)


@hookimpl
def roboframe_register_stores(register):
    register("mongodb", open_store)


@hookimpl
def roboframe_register_analysis_stores(register):
    register("mongodb", open_analysis_store)


@hookimpl
def roboframe_register_gateways(register):
    from roboframe.builtin.storegw import StoreGateway

    class MongoGateway(StoreGateway):
        """Orders through a MongoDB order store, fills through change streams."""

        schemes = ("mongodb",)

    register("mongo", MongoGateway)
