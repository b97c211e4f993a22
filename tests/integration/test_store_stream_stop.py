"""What the loop hands the trade stream as the run stops reaches the order store.

A strategy error stops the robot at once: orders journaled as sent by the
events just before may still sit in the pipe to the trade stream. They are
written before the stream ends, on every store-backed gateway -- not left
for a resume to send them hours later, nor missing from ``roboframe orders``.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal

import pytest
import zmq

from roboframe.core.events import Cancel, NewOrder
from roboframe.core.gateway import Runtime
from roboframe.core.instruments import Instrument
from roboframe.core.streams import trade_stream
from roboframe.plugins import get_registry
from roboframe.store import open_store
from roboframe.testing.helpers import free_port

ROBOT = "alpha"


@pytest.fixture(params=["postgres", "mongo", "zmq"])
def gateway(request):
    """(gateway class, params) of each store-backed gateway; the fast path's
    exchange is not there: it goes through the store at stop anyway."""
    plugin = request.param
    url = request.getfixturevalue("mongo_url" if plugin == "mongo" else "pg_url")
    params = {"url": url}
    if plugin == "zmq":
        from roboframe.builtin.zmqgw import FastGateway

        params["address"] = f"tcp://127.0.0.1:{free_port()}"
        return FastGateway, params
    return get_registry().gateways[plugin].obj, params


def stop_with(gateway_cls, params: dict, actions: list) -> None:
    """Hand ``actions`` to the trade stream of a run that has stopped, and let
    the stream end."""
    ctx = zmq.Context()
    runtime = Runtime(ROBOT, "r1", ctx, f"inproc://{ROBOT}-loop", None)
    loop = ctx.socket(zmq.PULL)
    loop.bind(runtime.loop_address)
    gw = gateway_cls(params, {"SI": Instrument("SI", Decimal(1))}, robot=ROBOT)
    gw.open(runtime)
    try:
        gw.submit(actions)
        runtime.stop.set()  # the loop stopped right after handing them over
        thread = threading.Thread(target=trade_stream, args=(gw, runtime), daemon=True)
        thread.start()
        thread.join(15)
        assert not thread.is_alive(), "the trade stream did not end"
    finally:
        gw.close()
        loop.close(0)
        ctx.term()


def test_orders_handed_over_as_the_run_stops_are_written(gateway):
    gateway_cls, params = gateway
    stop_with(
        gateway_cls,
        params,
        [
            NewOrder("alpha-r1-1", "SI", "buy", 2, "limit", 90),
            NewOrder("alpha-r1-2", "SI", "sell", 1),
        ],
    )
    exchange = open_store(params["url"])
    try:
        orders, _ = exchange.new_requests()
        assert [(o.robot, o.order.client_id, o.order.qty) for o in orders] == [
            (ROBOT, "alpha-r1-1", 2),
            (ROBOT, "alpha-r1-2", 1),
        ]
    finally:
        exchange.close()


def test_a_cancel_handed_over_as_the_run_stops_is_written(pg_url):
    """``on_stop``'s cancels (``open_orders_on_stop: cancel``) go the same way."""
    robot = open_store(pg_url)
    robot.setup()
    robot.insert_order(ROBOT, "r1", NewOrder("alpha-r1-1", "SI", "buy", 1, "limit", 90), 1)
    robot.close()
    stop_with(get_registry().gateways["postgres"].obj, {"url": pg_url}, [Cancel("alpha-r1-1")])
    exchange = open_store(pg_url)
    try:
        _, requests = exchange.new_requests()
        assert [(robot, type(action), action.client_id) for _, robot, action in requests] == [
            (ROBOT, Cancel, "alpha-r1-1")
        ]
    finally:
        exchange.close()


def test_a_store_down_at_stop_leaves_them_to_resume_and_says_so(caplog):
    """One attempt, then the log names how many wait for ``run --resume``."""
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test"  # nothing listens
    with caplog.at_level(logging.WARNING, logger="roboframe.builtin.storegw"):
        stop_with(
            get_registry().gateways["postgres"].obj,
            {"url": url},
            [NewOrder("alpha-r1-1", "SI", "buy", 1)],
        )
    assert "1 order request(s) the robot made before it stopped were not written" in caplog.text
    assert "roboframe run --resume" in caplog.text
