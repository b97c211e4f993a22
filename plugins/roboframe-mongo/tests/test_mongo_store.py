"""The MongoDB order store through real pymongo against SecantusDB (change streams)."""

from __future__ import annotations

import pytest
from roboframe_mongo.store import MongoStore

from roboframe.store import StoreUnavailable, open_store


def test_scheme_selects_the_backend(mongo_url):
    store = open_store(mongo_url)
    assert isinstance(store, MongoStore)
    store.close()


def test_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        MongoStore("mongodb://127.0.0.1:1/x?directConnection=true&serverSelectionTimeoutMS=300")


def test_exchange_side_ids_come_from_reserved_blocks_in_increasing_order(mongo_url):
    """A trade or update written by the exchange side takes its id from a block
    reserved ahead (no round trip per row); the ids still increase in write order,
    across a restart too (a new block starts above the old one), and a fast-path
    row keeps the id it was given."""
    from roboframe_mongo.store import ID_BLOCK

    from roboframe.core.events import Fill, OrderUpdate

    store = open_store(mongo_url)
    store.setup()
    for i in range(ID_BLOCK + 6):
        store.record_fill("alpha", Fill(f"alpha-r1-{i}", i, "Si-12.26", "buy", 1, 100, "", "0"))
    store.record_update("alpha", OrderUpdate("alpha-r1-0", 1, "accepted"))
    counter = store.db.counters.find_one({"_id": "trades"})["seq"]
    assert counter == 2 * ID_BLOCK  # two reservations, not one round trip per fill
    reserved = store.reserve_ids("trades", 1)[0]
    store.record_fill("alpha", Fill("alpha-r1-x", 9, "Si-12.26", "buy", 1, 100, str(reserved)))
    store.close()
    restarted = open_store(mongo_url)
    restarted.record_fill("alpha", Fill("alpha-r1-y", 10, "Si-12.26", "buy", 1, 100, "", "0"))
    fills, updates = restarted.changes_after("alpha", "alpha-r1-", 0, 0)
    ids = [ref for ref, _ in fills]
    assert ids[: ID_BLOCK + 6] == list(range(1, ID_BLOCK + 7))  # in write order
    assert ids[-2] == reserved and ids[-1] > reserved  # above everything before the restart
    assert len(updates) == 1
    restarted.close()
