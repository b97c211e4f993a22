"""The PostgreSQL order store against a real server (fixture: pg_url)."""

from __future__ import annotations

import threading

import pytest
from roboframe_postgres.store import PgStore, robot_channel

from roboframe.core.events import Fill, NewOrder, OrderUpdate
from roboframe.store import StoreUnavailable, open_store


def order(n, robot="alpha", run="r1", side="buy", qty=1):
    return NewOrder(f"{robot}-{run}-{n}", "Si-12.26", side, qty)


@pytest.fixture
def stores(pg_url):
    robot, exchange = open_store(pg_url), open_store(pg_url)
    robot.setup()
    yield robot, exchange
    robot.close()
    exchange.close()


def test_scheme_selects_the_backend(pg_url):
    store = open_store(pg_url)
    assert isinstance(store, PgStore)
    store.close()


def test_insert_is_idempotent_on_client_id(stores):
    robot, exchange = stores
    assert robot.insert_order("alpha", "r1", order(1), 10) is True
    assert robot.insert_order("alpha", "r1", order(1), 11) is False  # a retry: no second order
    orders, _ = exchange.new_requests()
    assert [o.order.client_id for o in orders] == ["alpha-r1-1"]
    assert orders[0].ts == 10


def test_each_robot_hears_only_its_own_changes(stores, pg_url):
    robot, exchange = stores
    beta = open_store(pg_url)
    robot.listen_robot("alpha")
    beta.listen_robot("beta")
    robot.insert_order("alpha", "r1", order(1), 1)
    beta.insert_order("beta", "r1", order(1, robot="beta"), 1)
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 2, "accepted"))
    exchange.record_fill("alpha", Fill("alpha-r1-1", 3, "Si-12.26", "buy", 1, 92000, "x", "2"))
    assert robot.wait(2.0) is True
    assert beta.wait(0.3) is False
    fills, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [u for _, u in updates] == [OrderUpdate("alpha-r1-1", 2, "accepted", "", "1")]
    assert [f.trade_id for _, f in fills] == ["1"]
    assert fills[0][1] == Fill("alpha-r1-1", 3, "Si-12.26", "buy", 1, 92000, "1", "2")
    assert beta.changes_after("beta", "beta-r1-", 0, 0) == ([], [])
    beta.close()


def test_changes_after_resumes_without_repeats_and_filters_by_run(stores):
    robot, exchange = stores
    for n in (1, 2):
        robot.insert_order("alpha", "r1", order(n), n)
    robot.insert_order("alpha", "r2", order(1, run="r2"), 5)
    for cid in ("alpha-r1-1", "alpha-r1-2", "alpha-r2-1"):
        exchange.record_fill("alpha", Fill(cid, 9, "Si-12.26", "buy", 1, 100, "", "0"))
    fills, _ = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [(ref, f.client_id) for ref, f in fills] == [(1, "alpha-r1-1"), (2, "alpha-r1-2")]
    assert robot.changes_after("alpha", "alpha-r1-", 1, 0)[0] == fills[1:]
    assert robot.changes_after("alpha", "alpha-r1-", 2, 0)[0] == []
    # an underscore or percent in a run id is matched literally
    assert robot.changes_after("alpha", "alpha-r_-", 0, 0) == ([], [])


def test_order_status_follows_updates_and_fills(stores):
    robot, exchange = stores
    robot.insert_order("alpha", "r1", order(1, qty=3), 1)
    robot.insert_order("alpha", "r1", order(2), 1)
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 2, "accepted"))
    exchange.record_fill("alpha", Fill("alpha-r1-1", 3, "Si-12.26", "buy", 2, 100, "", "0"))
    assert [(o.order.client_id, o.status, o.filled) for o in exchange.open_orders()] == [
        ("alpha-r1-1", "accepted", 2),
        ("alpha-r1-2", "new", 0),
    ]
    exchange.record_fill("alpha", Fill("alpha-r1-1", 4, "Si-12.26", "buy", 1, 100, "", "0"))
    exchange.record_update("alpha", OrderUpdate("alpha-r1-2", 5, "rejected", "no"))
    assert exchange.open_orders() == []


def test_cancel_requests_reach_the_exchange_side(stores):
    robot, exchange = stores
    exchange.listen_exchange()
    robot.insert_order("alpha", "r1", order(1), 1)
    robot.request_cancel("alpha", "alpha-r1-1", 2)
    assert exchange.wait(2.0) is True
    orders, cancels = exchange.new_requests()
    assert len(orders) == 1 and cancels == [(1, "alpha", "alpha-r1-1")]
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 3, "accepted"))
    exchange.mark_handled([1])
    assert exchange.new_requests() == ([], [])  # acknowledged and answered: nothing left
    # the robot hears the exchange's answer, never its own cancel request
    _, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [u.status for _, u in updates] == ["accepted"]


def test_concurrent_setup_is_safe(pg_url):
    errors = []

    def setup():
        try:
            store = open_store(pg_url)
            store.setup()
            store.close()
        except Exception as exc:  # pragma: no cover - the assertion reports it
            errors.append(exc)

    threads = [threading.Thread(target=setup) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []


def test_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        PgStore("postgresql://postgres@127.0.0.1:1/test")


def test_channel_names_are_valid_identifiers():
    assert robot_channel("si-trend.v2") == robot_channel("si-trend.v2")
    assert robot_channel("a").startswith("rf_robot_") and len(robot_channel("a")) == 25
