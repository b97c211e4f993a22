"""Replacing an order through an order store and through the fast path, end to
end: a robot's gateway, the exchange process and a real store (PostgreSQL, and
MongoDB through SecantusDB). The store is the source of truth: its order row
holds the quantity and price a replace gave the order, and a restarted
exchange rests the order as it stands."""

from __future__ import annotations

import time

import pytest

from roboframe.core import codec
from roboframe.core.events import Bar, NewOrder, OrderUpdate, Replace
from roboframe.core.orders import OrderBook
from roboframe.store import open_store
from roboframe.testing.helpers import RunningTradeStream, wait_for
from tests.integration.exchange import RunningExchange, order_row, stored

# the robot's gateway; the exchange's own DEALER is another robot. Names no other
# test uses: PostgreSQL's notification channels span the schemas of a database
ROBOT, DEALER = "replacer", "replacer-dealer"


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


def robot_gateway(path: str, url: str, running: RunningExchange) -> RunningTradeStream:
    """The robot's end: the store gateway of ``url``'s backend, or the fast one."""
    params = {"url": url, "poll_ms": 200}
    if path == "zmq":
        from roboframe.builtin.zmqgw import FastGateway

        return RunningTradeStream(FastGateway, {**params, "address": running.orders}, ROBOT)
    from roboframe.plugins import get_registry

    backend = "postgres" if url.startswith("postgresql") else "mongo"
    return RunningTradeStream(get_registry().gateways[backend].obj, params, ROBOT)


def statuses(events: list) -> list[str]:
    return [e.status if type(e) is OrderUpdate else f"fill {e.qty}@{e.price}" for e in events]


@pytest.mark.parametrize("path", ["store", "zmq"])
def test_a_replaced_order_is_stored_as_it_stands_and_fills_at_its_new_price(url, path):
    """The robot replaces a resting buy limit (2 @ 90 -> 3 @ 95): the exchange
    answers replaced, the store's order row takes 3 @ 95, and a bar whose low
    (94) only the new limit is above fills all 3 lots at 95."""
    running = RunningExchange(url, fast=path == "zmq")
    stream = robot_gateway(path, url, running)
    cid = f"{ROBOT}-r1-1"
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        stream.gw.submit([NewOrder(cid, "Si", "buy", 2, "limit", 90)])
        assert statuses(stream.events(1)) == ["accepted"]
        stream.gw.submit([Replace(cid, 3, 95)])
        (replaced,) = stream.events(1)
        assert replaced.status == "replaced" and replaced.ref.isdigit()  # a row of the store
        assert order_row(url, cid, (3, 95, "accepted", 0)) == (3, 95, "accepted", 0)
        running.price(Bar("Si", 2, 96, 96, 94, 95))
        assert statuses(stream.events(1)) == ["fill 3@95"]
        assert order_row(url, cid, (3, 95, "filled", 3)) == (3, 95, "filled", 3)
        fills, updates = stored(url, 1, 2, robot=ROBOT)
        assert [u.status for _, u in updates] == ["accepted", "replaced"]
        assert [(f.qty, f.price) for _, f in fills] == [(3, 95)]
        assert not running.failure, running.failure
    finally:
        stream.close()
        running.close()


@pytest.mark.parametrize("path", ["store", "zmq"])
def test_a_refused_replace_is_answered_and_changes_nothing(url, path):
    """A replace the exchange refuses -- a quantity not above what has filled, an
    order that is not open -- is answered replace_rejected with the reason, is
    stored as such, and leaves the order, in the engine and in the store, as it
    was: the rest still fills at the old price."""
    running = RunningExchange(url, fast=path == "zmq")
    stream = robot_gateway(path, url, running)
    cid = f"{ROBOT}-r1-1"
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        stream.gw.submit([NewOrder(cid, "Si", "buy", 3, "limit", 90)])
        assert statuses(stream.events(1)) == ["accepted"]
        running.price(Bar("Si", 2, 91, 91, 89, 90, 1))  # one lot traded through the limit
        assert statuses(stream.events(1)) == ["fill 1@90"]
        stream.gw.submit([Replace(cid, 1, 95), Replace(f"{ROBOT}-r1-9", 2, 95)])
        refused = stream.events(2)
        assert [(u.status, u.reason) for u in refused] == [
            ("replace_rejected", "replace: quantity 1 is not above the 1 filled"),
            ("replace_rejected", "replace: order not open"),
        ]
        assert all(u.ref.isdigit() for u in refused)
        assert order_row(url, cid, (3, 90, "accepted", 1)) == (3, 90, "accepted", 1)
        resting = running.exchange.engine.open_orders[cid]
        assert (resting.order.qty, resting.order.price, resting.filled) == (3, 90, 1)
        running.price(Bar("Si", 3, 91, 91, 89, 90))
        assert statuses(stream.events(1)) == ["fill 2@90"]
        _, updates = stored(url, 2, 3, robot=ROBOT)
        assert [u.status for _, u in updates] == ["accepted"] + ["replace_rejected"] * 2
    finally:
        stream.close()
        running.close()


def test_a_restarted_exchange_rests_a_replaced_order_as_it_stands(url):
    """The store holds the replaced qty and price, so an exchange restarted after
    the replace reloads the order with them and fills it at them. The robot,
    resumed, sending the replace again through the store gets no second answer."""
    cid = f"{DEALER}-r1-1"
    first = RunningExchange(url, robot=DEALER)
    try:
        first.price(Bar("Si", 1, 100, 100, 100, 100))
        first.dealer.send(codec.encode([NewOrder(cid, "Si", "buy", 2, "limit", 90)]))
        first.dealer.send(codec.encode([Replace(cid, 3, 95)]))
        assert statuses(first.answers(2)) == ["accepted", "replaced"]
    finally:
        first.close()  # its writer writes what it holds before it stops
    second = RunningExchange(url, robot=DEALER)
    robot = open_store(url)
    try:
        resting = second.exchange.engine.open_orders[cid]
        assert (resting.order.qty, resting.order.price, resting.filled) == (3, 95, 0)
        robot.request_replace(DEALER, cid, 3, 95, 5)  # a resumed robot's resubmit
        assert wait_for(lambda: robot.new_requests()[1] == []), "the request was never handled"
        second.price(Bar("Si", 2, 96, 96, 94, 95))
        fills, updates = stored(url, 1, 2, robot=DEALER)
        assert [(f.qty, f.price) for _, f in fills] == [(3, 95)]
        assert [u.status for _, u in updates] == ["accepted", "replaced"]  # not twice
        assert order_row(url, cid) == (3, 95, "filled", 3)
    finally:
        robot.close()
        second.close()


def test_a_replace_request_written_twice_is_answered_once(url):
    """A request written again after its reply was lost is a second row; the
    exchange answers the first and takes the second as answered, so the robot
    hears one answer per replace and counts no anomaly -- whether the replace
    took effect or was refused."""
    running = RunningExchange(url, fast=False, robot=DEALER)
    robot = open_store(url)
    book = OrderBook()
    cid, other = f"{DEALER}-r1-1", f"{DEALER}-r1-9"
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        order = NewOrder(cid, "Si", "buy", 2, "limit", 90)
        book.add(order, 0)
        robot.insert_order(DEALER, "r1", order, 1)
        for client_id in (cid, other):
            for _ in range(2):
                robot.request_replace(DEALER, client_id, 3, 95, 2)
        assert wait_for(lambda: robot.new_requests() == ([], [])), "requests left unhandled"
        time.sleep(0.5)  # time enough for a second answer, if one came
        _, updates = robot.changes_after(DEALER, f"{DEALER}-r1-", 0, 0)
        assert [(u.client_id, u.status) for _, u in updates] == [
            (cid, "accepted"),
            (cid, "replaced"),
            (other, "replace_rejected"),
        ]
        book.open[cid].replace_pending = (3, 95)
        for _, update in updates[:2]:
            book.on_update(update)
        assert (book.open[cid].qty, book.open[cid].price, book.anomalies) == (3, 95, 0)
        assert order_row(url, cid) == (3, 95, "accepted", 0)
    finally:
        robot.close()
        running.close()
