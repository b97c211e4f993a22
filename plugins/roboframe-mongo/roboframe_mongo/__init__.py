"""roboframe-mongo: the MongoDB order store (change streams) and its gateway.

Registered through the ``roboframe`` entry point like any third-party plugin:
the ``mongodb://`` store scheme and the ``mongo`` gateway. Change streams
need a replica set; a single-node one is enough::

    mongod --replSet rs0 --dbpath /var/lib/mongo && mongosh --eval "rs.initiate()"
"""

from __future__ import annotations

from roboframe import hookimpl
from roboframe_mongo.store import MongoStore


@hookimpl
def roboframe_register_stores(register):
    register("mongodb", MongoStore)


@hookimpl
def roboframe_register_analysis_stores(register):
    from roboframe_mongo.analysis import MongoAnalysisStore

    register("mongodb", MongoAnalysisStore)


@hookimpl
def roboframe_register_gateways(register):
    from roboframe.builtin.storegw import StoreGateway

    class MongoGateway(StoreGateway):
        """Orders through a MongoDB order store, fills through change streams."""

        schemes = ("mongodb",)

    register("mongo", MongoGateway)
