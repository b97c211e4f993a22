"""A read of the store (on connect, on resume, every ``poll_ms``) hands the
robot its missed updates and fills in an order the exchange could have given
them: no fill after its order's last word. Trades and updates are numbered
apart in the store, and a read sent all updates first: a partly filled exit's
``cancelled`` came before its fill, a flatten then closed the whole position,
and the late fill took it past flat."""

from __future__ import annotations

import pytest

from roboframe.core.events import Control, Fill, NewOrder, OrderUpdate
from roboframe.plugins import get_registry
from roboframe.store import open_store
from roboframe.storewriter import write_items
from roboframe.testing.helpers import T0, RunningTradeStream, bar
from tests.unit.core.test_kernel import SI, kernel_with

ROBOT = "catchup"


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


def test_a_read_of_the_store_gives_no_fill_after_its_orders_last_word(url):
    cid = f"{ROBOT}-r1-1"
    robot = open_store(url)
    robot.setup()
    exchange = open_store(url)
    try:
        robot.insert_order(ROBOT, "r1", NewOrder(cid, SI, "sell", 5, "limit", 120), 1)
        write_items(  # what the exchange did, in this order, before the robot connects
            exchange,
            [
                (ROBOT, OrderUpdate(cid, 1, "accepted")),
                (ROBOT, Fill(cid, 2, SI, "sell", 2, 121, "", "0")),
                (ROBOT, OrderUpdate(cid, 3, "cancelled")),
            ],
        )
    finally:
        robot.close()
        exchange.close()
    backend = get_registry().gateways["mongo" if url.startswith("mongodb") else "postgres"].obj
    stream = RunningTradeStream(backend, {"url": url, "poll_ms": 60_000}, ROBOT, symbol=SI)
    try:
        got = [e for e in stream.events(3) if type(e) is not Control]
    finally:
        stream.close()
    assert [(type(e).__name__, getattr(e, "status", None) or e.qty) for e in got] == [
        ("OrderUpdate", "accepted"),
        ("Fill", 2),
        ("OrderUpdate", "cancelled"),
    ]


def test_a_flatten_hearing_the_fill_before_the_cancel_ends_flat():
    """The kernel's side of it: the order the read now keeps."""
    kernel, _ = kernel_with()
    kernel.handle(bar(SI, 1, 100))
    kernel.orders.add(NewOrder("entry", SI, "buy", 5), T0)
    kernel.handle(Fill("entry", T0, SI, "buy", 5, 100, "t1"))  # long 5
    (exit_order,) = kernel._process([kernel.ctx.sell(SI, 5, price=120)], 0)
    kernel.handle(OrderUpdate(exit_order.client_id, T0, "accepted"))
    kernel.handle(Control("flatten", T0))  # cancels the exit first
    kernel.handle(Fill(exit_order.client_id, T0, SI, "sell", 2, 121, "t2"))
    (close,) = kernel.handle(OrderUpdate(exit_order.client_id, T0, "cancelled"))
    assert (close.side, close.qty) == ("sell", 3)
    kernel.handle(Fill(close.client_id, T0, SI, "sell", 3, 100, "t3"))
    assert kernel.ctx.position(SI) == 0
