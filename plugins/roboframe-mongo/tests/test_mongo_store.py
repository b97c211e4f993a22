"""The MongoDB order store through real pymongo against SecantusDB (change streams)."""

from __future__ import annotations

import time

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
    from roboframe.core.events import Fill, OrderUpdate
    from roboframe.store.base import ID_BLOCK

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

        monkeypatch.setattr(mongo_store, "LEASE_S", 1.0)
        monkeypatch.setattr(mongo_store, "RENEW_S", 0.05)
        third = open_store(mongo_url)
        assert second.try_writer_lock(keep=True)  # now on a short lease
        for _ in range(15):  # renewed: held past the lease
            time.sleep(0.1)
            second.keep_writer_lock()
            assert not third.try_writer_lock(keep=False)
        time.sleep(1.5)  # not renewed: it runs out
        assert third.try_writer_lock(keep=True)
        with pytest.raises(StoreUnavailable, match="lease ran out"):
            second.keep_writer_lock()
        third.close()
    finally:
        second.close()


def test_a_host_whose_clock_runs_ahead_does_not_take_a_live_lease(mongo_url, monkeypatch):
    """Leases are judged by the server's clock: a second exchange on a host a
    minute ahead must still wait, or both would fill every order."""
    from roboframe_mongo import store as mongo_store

    first, second = open_store(mongo_url), open_store(mongo_url)
    try:
        first.setup()
        assert first.take_exchange_lock()
        assert first.try_writer_lock(keep=True)
        real = time.time
        monkeypatch.setattr(mongo_store.time, "time", lambda: real() + 60)
        assert not second.take_exchange_lock()
        assert not second.try_writer_lock(keep=False)
        assert not second.try_writer_lock(keep=True)
    finally:
        monkeypatch.undo()
        first.close()
        second.close()


def test_a_write_retried_after_a_failure_halfway_writes_each_row_once(mongo_url, monkeypatch):
    """These writes are not one transaction: the connection can fail after some
    rows are in (or after a row is in but before its answer came). The retry
    writes the same rows again, under the ids they were given the first time,
    and nothing is in twice: no second trade, no fill counted twice."""
    from roboframe_mongo.store import MongoStore

    from roboframe.core.events import Fill, NewOrder, OrderUpdate
    from roboframe.storewriter import write_items

    store = open_store(mongo_url)
    store.setup()
    cid = "alpha-r1-1"
    store.insert_order("alpha", "r1", NewOrder(cid, "Si-12.26", "buy", 2), 1)
    items = [
        ("alpha", OrderUpdate(cid, 2, "accepted")),
        ("alpha", Fill(cid, 3, "Si-12.26", "buy", 1, 100, "", "0")),
        ("alpha", Fill(cid, 4, "Si-12.26", "buy", 1, 101, "", "0")),
    ]
    real, calls = MongoStore.record_fill, []

    def fails_after_the_second(self, robot, fill):
        written = real(self, robot, fill)
        calls.append(written)
        if len(calls) == 2:  # written, but its answer never came
            raise StoreUnavailable("connection lost")
        return written

    monkeypatch.setattr(MongoStore, "record_fill", fails_after_the_second)
    with pytest.raises(StoreUnavailable):
        write_items(store, items)
    monkeypatch.setattr(MongoStore, "record_fill", real)
    assert items  # nothing taken off: all of it is retried
    write_items(store, items)
    assert items == []
    trades = list(store.db.trades.find({}, {"_id": 0, "id": 1, "price": 1}).sort("id", 1))
    assert [t["price"] for t in trades] == [100, 101]
    assert [t["id"] for t in trades] == calls  # under the ids given the first time
    assert store.db.order_events.count_documents({}) == 1
    order = store.db.orders.find_one({"client_id": cid})
    assert (order["filled"], order["status"]) == (2, "filled")
    fills, updates = store.changes_after("alpha", "alpha-r1-", 0, 0)
    assert len(fills) == 2 and len(updates) == 1
    store.close()


def test_a_store_of_an_older_roboframe_gets_unique_ids(mongo_url):
    """Its plain index on id is replaced by a unique one; one that already holds
    repeated ids is refused with a clear error, not half upgraded."""
    from roboframe.errors import ConfigError

    store = open_store(mongo_url)
    store.db.trades.create_index("id")  # as an older roboframe made it
    store.db.order_events.create_index("id")
    store.db.order_events.insert_many([{"id": 1}, {"id": 2}])
    store.setup()
    assert store.db.trades.index_information()["id_1"].get("unique")
    store.db.trades.drop_index("id_1")
    store.db.trades.create_index("id")
    store.db.trades.insert_many([{"id": 7}, {"id": 7}])
    with pytest.raises(ConfigError, match="trades collection holds rows with the same id"):
        store.setup()
    assert "id_1" in store.db.trades.index_information()  # its plain index left in place
    store.close()


def test_an_order_the_fast_path_took_does_not_wake_the_exchange(mongo_url):
    """The fast path's writer writes the order row behind, after the exchange
    answered it over ZeroMQ: the exchange's change stream leaves it out, while
    a robot's own insert (the store path) still wakes it."""
    from roboframe.core.events import NewOrder
    from roboframe.testing.helpers import take_notifications

    writer, exchange = open_store(mongo_url), open_store(mongo_url)
    writer.setup()
    exchange.listen_exchange()
    exchange.wait(0)
    exchange.pushed_requests()  # the first take after connecting says "read the store"
    try:
        taken = NewOrder("alpha-r1-1", "Si-12.26", "buy", 1)
        assert writer.insert_taken_order("alpha", "r1", taken)
        assert not writer.insert_taken_order("alpha", "r1", taken)  # a retry: a no-op
        writer.insert_order("alpha", "r1", NewOrder("alpha-r1-2", "Si-12.26", "buy", 1), 5)
        assert take_notifications(exchange)
        orders, _ = exchange.pushed_requests()
        assert [o.order.client_id for o in orders] == ["alpha-r1-2"]
        assert [o.order.client_id for o in exchange.new_requests()[0]] == [
            "alpha-r1-1",
            "alpha-r1-2",
        ]  # both are in the store, for a restarted exchange to read
    finally:
        writer.close()
        exchange.close()


def test_connections_making_an_id_counter_at_once_all_get_ids(mongo_url):
    """The first ids of a fresh store, taken at once by several connections (a
    robot's first request while the exchange takes its first block): each
    upsert of the new counter gets an id of its own, none fails."""
    import threading

    stores = [open_store(mongo_url) for _ in range(8)]
    start = threading.Barrier(len(stores))
    got, errors = [], []

    def take(store) -> None:
        start.wait()
        try:
            got.append(store.reserve_ids("order_events", 1)[0])
        except Exception as exc:  # the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=take, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    for store in stores:
        store.close()
    assert errors == []
    assert len(set(got)) == len(stores)


def test_a_run_resumed_after_a_crash_takes_its_robot_lease_over_at_once(mongo_url):
    """A robot killed outright leaves its lease behind for LEASE_S; the same run
    resumed (``run --resume``) takes it over at once, another run does not."""
    crashed = open_store(mongo_url)
    crashed.setup()
    assert crashed.take_robot_lock("alpha", "r1")  # never closed: the process died
    resumed, other = open_store(mongo_url), open_store(mongo_url)
    try:
        assert not other.take_robot_lock("alpha", "r2")
        assert resumed.take_robot_lock("alpha", "r1")
    finally:
        resumed.close()
        other.close()
        crashed.client.close()


def test_open_orders_are_brought_up_to_trades_and_updates_a_dead_exchange_left_half_written(
    mongo_url,
):
    """A trade (or an update) and its order row are two writes here. An exchange
    that died between them left the row behind: reloaded from it, a partly filled
    order filled its lots again and a cancelled one rested again."""
    from roboframe.core.events import NewOrder, OrderUpdate

    store = open_store(mongo_url)
    store.setup()
    try:
        part, gone = NewOrder("half-r1-1", "Si", "buy", 10), NewOrder("half-r1-2", "Si", "buy", 1)
        for order in (part, gone):
            store.insert_order("half", "r1", order, 1)
            store.record_update("half", OrderUpdate(order.client_id, 2, "accepted"))
        # the first write of each pair, and then the exchange died
        trade = {"id": 777, "name": "half", "client_id": part.client_id, "symbol": "Si",
                 "side": "buy", "qty": 4, "price": 100, "fee": "0", "ts": 3}  # fmt: skip
        store.db.trades.insert_one(trade)
        store.db.order_events.insert_one({"id": 778, "name": "half", "client_id": gone.client_id,
                                          "kind": "cancelled", "reason": "", "ts": 3})  # fmt: skip
        assert [o.filled for o in store.open_orders() if o.robot == "half"] == [0, 0]  # a read
        store.repair_open_orders()  # as an exchange does before it reloads them
        mine = [o for o in store.open_orders() if o.robot == "half"]
        assert [(o.order.client_id, o.status, o.filled) for o in mine] == [
            (part.client_id, "accepted", 4)
        ]
        store.repair_open_orders()  # a second repair counts the trade once
        assert store.db.orders.find_one({"client_id": part.client_id})["filled"] == 4
    finally:
        store.close()


def test_an_order_row_from_before_trade_ids_keeps_its_filled(mongo_url):
    """Rows written before order rows kept their trade ids have ``filled`` and no
    ``trade_ids``: every trade looked uncounted and was counted again."""
    from roboframe.core.events import Fill, NewOrder, OrderUpdate

    store = open_store(mongo_url)
    store.setup()
    try:
        order = NewOrder("old-r1-1", "Si", "buy", 10)
        store.insert_order("old", "r1", order, 1)
        store.record_update("old", OrderUpdate(order.client_id, 2, "accepted"))
        store.record_fill("old", Fill(order.client_id, 3, "Si", "buy", 4, 100, "", "0"))
        store.db.orders.update_one({"client_id": order.client_id}, {"$unset": {"trade_ids": ""}})
        store.repair_open_orders()
        (mine,) = [o for o in store.open_orders() if o.robot == "old"]
        assert mine.filled == 4
    finally:
        store.close()


def test_the_writer_keeps_its_lease_through_a_long_backlog(mongo_url, monkeypatch):
    """A backlog written in one go outlasted the writer's lease: a restarted
    exchange found the store free while the old writer still wrote, and two
    writers filled orders twice. The writer renews between chunks."""
    import threading

    import roboframe_mongo.store as mongo_store

    from roboframe.core.events import NewOrder, OrderUpdate
    from roboframe.storewriter import WRITE_CHUNK, _take_writer_lock, _write_renewing

    monkeypatch.setattr(mongo_store, "LEASE_S", 2.0)  # under the 4 s the backlog takes
    monkeypatch.setattr(mongo_store, "RENEW_S", 0.1)
    writer, other = open_store(mongo_url), open_store(mongo_url)
    writer.setup()
    _take_writer_lock(writer)
    cid = "alpha-r1-1"
    writer.insert_order("alpha", "r1", NewOrder(cid, "Si-12.26", "buy", 2), 1)
    real = MongoStore.record_many

    def slow(self, items):  # a busy store: half a second a chunk
        time.sleep(0.5)
        return real(self, items)

    monkeypatch.setattr(MongoStore, "record_many", slow)
    pending = [("alpha", OrderUpdate(cid, n, "accepted")) for n in range(8 * WRITE_CHUNK)]
    done = threading.Event()
    thread = threading.Thread(target=lambda: (_write_renewing(writer, pending), done.set()))
    thread.start()
    free_seen = False
    while not done.is_set():
        free_seen = free_seen or other.try_writer_lock(keep=False)
        time.sleep(0.05)
    thread.join(30)
    assert pending == [] and not free_seen
    writer.close()
    other.close()


def test_the_highest_ids_of_a_robot_are_its_own_rows(mongo_url):
    """As on PostgreSQL: the robot's highest trade and order-event ids (requests
    included), of any run, not another robot's; below ids it holds, the store is
    behind."""
    from roboframe.core.events import Fill, NewOrder, OrderUpdate
    from roboframe.store.base import StoreBehind

    store = open_store(mongo_url)
    store.setup()
    assert store.highest_ids("alpha") == (0, 0)
    cid = "alpha-r1-1"
    store.insert_order("alpha", "r1", NewOrder(cid, "Si-12.26", "buy", 2), 1)
    store.record_many(
        [
            ("alpha", OrderUpdate(cid, 2, "accepted")),
            ("alpha", Fill(cid, 3, "Si-12.26", "buy", 1, 100, "", "0")),
            ("beta", Fill("beta-r1-1", 4, "Si-12.26", "buy", 1, 100, "", "0")),
        ]
    )
    store.request_cancel("alpha", cid, 5)
    trades = [(d["name"], d["id"]) for d in store.db.trades.find().sort("id", 1)]
    events = max(d["id"] for d in store.db.order_events.find())
    assert store.highest_ids("alpha") == (trades[0][1], events)
    store.check_not_behind("alpha", trades[0][1], events, "its journal holds")
    with pytest.raises(StoreBehind, match=r"robot alpha: its journal holds trade id \d+ and"):
        store.check_not_behind("alpha", trades[1][1], events, "its journal holds")
    store.close()


def test_a_row_under_a_reserved_id_where_another_row_is_raises(mongo_url):
    """A row written under an id that is there is a no-op for a retry, which writes
    the very row again; another row there means the ids restarted below the rows,
    and the write was lost without a word."""
    from roboframe.core.events import Fill, NewOrder, OrderUpdate
    from roboframe.store.base import StoreIdClash
    from roboframe.storewriter import write_items

    store = open_store(mongo_url)
    store.setup()
    trade, event = store.reserve_ids("trades", 1)[0], store.reserve_ids("order_events", 1)[0]
    cid = "alpha-r1-1"
    written = [
        ("alpha", NewOrder(cid, "Si-12.26", "buy", 2)),
        ("alpha", OrderUpdate(cid, 2, "accepted", "", str(event))),
        ("alpha", Fill(cid, 3, "Si-12.26", "buy", 1, 100, str(trade), "0")),
    ]
    write_items(store, list(written))
    write_items(store, list(written))  # a retry: nothing happens
    order = store.db.orders.find_one({"client_id": cid})
    assert (order["status"], order["filled"]) == ("accepted", 1)
    other = [("alpha", Fill(cid, 9, "Si-12.26", "buy", 1, 100, str(trade), "0"))]
    with pytest.raises(StoreIdClash, match=rf"trade id {trade} is another trade's \({cid} buy"):
        write_items(store, other)
    clash = [("beta", OrderUpdate("beta-r1-1", 2, "accepted", "", str(event)))]
    with pytest.raises(StoreIdClash, match=rf"order event id {event} is another order event's"):
        write_items(store, clash)
    order = store.db.orders.find_one({"client_id": cid})
    assert (order["status"], order["filled"]) == ("accepted", 1)
    assert store.db.trades.count_documents({}) == 1
    store.close()
