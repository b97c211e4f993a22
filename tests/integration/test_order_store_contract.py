"""The order-store contract, run against every backend: PostgreSQL (the local
server) and MongoDB (pymongo against SecantusDB, with change streams)."""

from __future__ import annotations

import pytest

from roboframe.core.events import Fill, NewOrder, OrderUpdate
from roboframe.store import open_store


def order(n, robot="alpha", run="r1", qty=1):
    return NewOrder(f"{robot}-{run}-{n}", "Si-12.26", "buy", qty)


def fill(client_id, ts, qty=1, price=100, fee="0"):
    return Fill(client_id, ts, "Si-12.26", "buy", qty, price, "ignored", fee)


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def stores(url):
    robot, exchange = open_store(url), open_store(url)
    robot.setup()
    yield robot, exchange
    robot.close()
    exchange.close()


def woke(store, seconds=2.0) -> bool:
    """A notification arrived within ``seconds`` (polled, as gateways do)."""
    steps = int(seconds / 0.05)
    return any(store.wait(0.05) for _ in range(steps))


def test_insert_is_idempotent_on_client_id(stores):
    robot, exchange = stores
    assert robot.insert_order("alpha", "r1", order(1), 10) is True
    assert robot.insert_order("alpha", "r1", order(1), 11) is False  # a retry: no second order
    orders, _ = exchange.new_requests()
    assert [(o.order.client_id, o.ts, o.robot) for o in orders] == [("alpha-r1-1", 10, "alpha")]


def test_each_robot_hears_and_reads_only_its_own_changes(stores, url):
    robot, exchange = stores
    beta = open_store(url)
    robot.listen_robot("alpha")
    beta.listen_robot("beta")
    robot.insert_order("alpha", "r1", order(1), 1)
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 2, "accepted"))
    exchange.record_fill("alpha", fill("alpha-r1-1", 3, fee="2"))
    assert woke(robot)
    assert not woke(beta, 0.3)
    fills, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    ((event_id, update),) = updates
    ((trade_id, got),) = fills
    assert update == OrderUpdate("alpha-r1-1", 2, "accepted", "", str(event_id))
    assert got == Fill("alpha-r1-1", 3, "Si-12.26", "buy", 1, 100, str(trade_id), "2")
    assert robot.changes_after("alpha", "alpha-r1-", trade_id, event_id) == ([], [])
    assert beta.changes_after("beta", "beta-r1-", 0, 0) == ([], [])
    beta.close()


def test_changes_are_filtered_by_run_and_resume_without_repeats(stores):
    robot, exchange = stores
    for n in (1, 2):
        robot.insert_order("alpha", "r1", order(n), n)
    robot.insert_order("alpha", "r2", order(1, run="r2"), 5)
    for client_id in ("alpha-r1-1", "alpha-r1-2", "alpha-r2-1"):
        exchange.record_fill("alpha", fill(client_id, 9))
    fills, _ = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [f.client_id for _, f in fills] == ["alpha-r1-1", "alpha-r1-2"]
    assert robot.changes_after("alpha", "alpha-r1-", fills[0][0], 0)[0] == fills[1:]
    assert robot.changes_after("alpha", "alpha-r_-", 0, 0) == ([], [])  # '_' is literal


def test_order_status_follows_updates_and_fills(stores):
    robot, exchange = stores
    robot.insert_order("alpha", "r1", order(1, qty=3), 1)
    robot.insert_order("alpha", "r1", order(2), 1)
    exchange.record_many(
        [
            ("alpha", OrderUpdate("alpha-r1-1", 2, "accepted")),
            ("alpha", fill("alpha-r1-1", 3, qty=2)),
        ]
    )
    assert [(o.order.client_id, o.status, o.filled) for o in exchange.open_orders()] == [
        ("alpha-r1-1", "accepted", 2),
        ("alpha-r1-2", "new", 0),
    ]
    assert [o.order.client_id for o in exchange.new_requests()[0]] == ["alpha-r1-2"]
    exchange.record_fill("alpha", fill("alpha-r1-1", 4))
    exchange.record_update("alpha", OrderUpdate("alpha-r1-2", 5, "rejected", "no"))
    assert exchange.open_orders() == []


def test_cancel_requests_wake_the_exchange_until_handled(stores):
    robot, exchange = stores
    exchange.listen_exchange()
    robot.insert_order("alpha", "r1", order(1), 1)
    robot.request_cancel("alpha", "alpha-r1-1", 2)
    assert woke(exchange)
    orders, cancels = exchange.new_requests()
    assert len(orders) == 1 and [(c[1], c[2]) for c in cancels] == [("alpha", "alpha-r1-1")]
    exchange.record_update("alpha", OrderUpdate("alpha-r1-1", 3, "accepted"))
    exchange.mark_handled([cancels[0][0]])
    assert exchange.new_requests() == ([], [])
    _, updates = robot.changes_after("alpha", "alpha-r1-", 0, 0)
    assert [u.status for _, u in updates] == ["accepted"]  # never its own cancel request
