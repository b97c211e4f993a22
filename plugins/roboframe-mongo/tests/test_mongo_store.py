"""The MongoDB order store through real pymongo against SecantusDB (change streams)."""

from __future__ import annotations

import pytest
from roboframe_mongo.store import MongoStore

from roboframe.core.events import Fill, NewOrder, OrderUpdate
from roboframe.store import StoreUnavailable, open_store


def order(n, robot="alpha", run="r1", qty=1):
    return NewOrder(f"{robot}-{run}-{n}", "Si-12.26", "buy", qty)


@pytest.fixture
def stores(mongo_url):
    robot, exchange = open_store(mongo_url), open_store(mongo_url)
    robot.setup()
    yield robot, exchange
    robot.close()
    exchange.close()


def test_scheme_selects_the_backend(mongo_url):
    store = open_store(mongo_url)
    assert isinstance(store, MongoStore)
    store.close()


def test_insert_is_idempotent_on_client_id(stores):
    robot, exchange = stores
    assert robot.insert_order("alpha", "r1", order(1), 10) is True
    assert robot.insert_order("alpha", "r1", order(1), 11) is False
    orders, _ = exchange.new_requests()
    assert [o.order.client_id for o in orders] == ["alpha-r1-1"]


def test_change_stream_wakes_only_the_right_robot(stores, mongo_url):
    robot, exchange = stores
    beta = open_store(mongo_url)
    robot.listen_robot("alpha")
    beta.listen_robot("beta")
    robot.insert_order("alpha", "r1", order(1), 1)
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 2, "accepted"))
    exchange.record_fill("alpha", Fill("alpha-r1-1", 3, "Si-12.26", "buy", 1, 92000, "x", "2"))

    def woke(store, tries=50):
        return any(store.wait(0.05) for _ in range(tries))

    assert woke(robot)
    assert not woke(beta, 5)
    fills, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [u for _, u in updates] == [OrderUpdate("alpha-r1-1", 2, "accepted", "", "1")]
    assert [f for _, f in fills] == [Fill("alpha-r1-1", 3, "Si-12.26", "buy", 1, 92000, "1", "2")]
    assert robot.changes_after("alpha", "alpha-r1-", 1, 1) == ([], [])
    assert robot.changes_after("alpha", "alpha-r2-", 0, 0) == ([], [])
    beta.close()


def test_status_cancels_and_handled(stores):
    robot, exchange = stores
    exchange.listen_exchange()
    robot.insert_order("alpha", "r1", order(1, qty=2), 1)
    robot.request_cancel("alpha", "alpha-r1-1", 2)
    assert any(exchange.wait(0.05) for _ in range(50))
    orders, cancels = exchange.new_requests()
    assert len(orders) == 1 and [(c[1], c[2]) for c in cancels] == [("alpha", "alpha-r1-1")]
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 3, "accepted"))
    exchange.record_fill("alpha", Fill("alpha-r1-1", 4, "Si-12.26", "buy", 1, 100, "", "0"))
    exchange.mark_handled([cancels[0][0]])
    assert exchange.new_requests() == ([], [])
    (open_order,) = exchange.open_orders()
    assert (open_order.status, open_order.filled) == ("accepted", 1)
    exchange.record_fill("alpha", Fill("alpha-r1-1", 5, "Si-12.26", "buy", 1, 100, "", "0"))
    assert exchange.open_orders() == []


def test_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        MongoStore("mongodb://127.0.0.1:1/x?directConnection=true&serverSelectionTimeoutMS=300")
