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


def test_the_writer_lock_is_a_lease_held_while_renewed_and_freed_on_close(mongo_url, monkeypatch):
    """One store writer at a time: a second waits while the first renews its
    lease, takes it when the first closes or stops renewing, and the first then
    learns that it lost it instead of writing on beside the second."""
    import time

    from roboframe_mongo import store as mongo_store

    first, second = open_store(mongo_url), open_store(mongo_url)
    try:
        assert second.try_writer_lock(keep=False)  # nobody holds it
        assert first.try_writer_lock(keep=True)
        assert first.try_writer_lock(keep=True)  # taking it again is keeping it
        assert not second.try_writer_lock(keep=False)
        assert not second.try_writer_lock(keep=True)
        first.close()  # a clean exit frees it at once
        assert second.try_writer_lock(keep=False)
        assert second.try_writer_lock(keep=True)

        monkeypatch.setattr(mongo_store, "LEASE_S", 0.3)
        monkeypatch.setattr(mongo_store, "RENEW_S", 0.05)
        third = open_store(mongo_url)
        assert second.try_writer_lock(keep=True)  # now on a short lease
        for _ in range(10):  # renewed: held past several leases
            time.sleep(0.1)
            second.keep_writer_lock()
            assert not third.try_writer_lock(keep=False)
        time.sleep(0.5)  # not renewed: it runs out
        assert third.try_writer_lock(keep=True)
        with pytest.raises(StoreUnavailable, match="lease ran out"):
            second.keep_writer_lock()
        third.close()
    finally:
        second.close()
