"""Notifications that carry their rows (fixture: pg_url): what a listener takes
from them equals what it would read from the store; anything it cannot trust
(a row too big for a payload, a reconnect, an unknown payload) sends it to the
store instead; an older store is upgraded in place."""

from __future__ import annotations

import pytest
from roboframe_postgres.store import PgStore

from roboframe.core.events import Fill, NewOrder, OrderUpdate
from roboframe.store import open_store
from roboframe.testing.helpers import take_notifications

ROBOT, PREFIX = "alpha", "alpha-r1-"


@pytest.fixture
def stores(pg_url):
    robot, exchange = open_store(pg_url), open_store(pg_url)
    robot.setup()
    robot.listen_robot(ROBOT)
    exchange.listen_exchange()
    for store in (robot, exchange):  # the first take after connecting says "read the store"
        store.wait(0)
        assert store.pushed_changes(ROBOT, PREFIX) is None
    yield robot, exchange
    robot.close()
    exchange.close()


def test_the_exchange_takes_new_orders_and_cancels_from_the_notifications(stores):
    robot, exchange = stores
    robot.insert_order(ROBOT, "r1", NewOrder(f"{PREFIX}1", "Si-12.26", "sell", 3, "limit", 101), 7)
    robot.request_cancel(ROBOT, f"{PREFIX}1", 8)
    assert take_notifications(exchange)
    pushed = exchange.pushed_requests()
    assert pushed == exchange.new_requests()  # the very rows a read gives
    orders, cancels = pushed
    assert [o.order.client_id for o in orders] == [f"{PREFIX}1"]
    assert orders[0].order.price == 101 and orders[0].robot == ROBOT
    assert [c[1:] for c in cancels] == [(ROBOT, f"{PREFIX}1")]
    assert exchange.pushed_requests() == ([], [])  # taken once


def test_a_robot_takes_its_fills_and_updates_in_commit_order(stores):
    robot, exchange = stores
    cid = f"{PREFIX}1"
    robot.insert_order(ROBOT, "r1", NewOrder(cid, "Si-12.26", "buy", 2), 1)
    exchange.record_many(
        [
            (ROBOT, OrderUpdate(cid, 5, "accepted")),
            (ROBOT, Fill(cid, 6, "Si-12.26", "buy", 1, 100, "", "0.5")),
            (ROBOT, Fill(cid, 7, "Si-12.26", "buy", 1, 101, "", "0.5")),
            ("other-robot", OrderUpdate("other-robot-r1-1", 8, "accepted")),
            (ROBOT, OrderUpdate("alpha-r0-9", 9, "cancelled")),  # another run of ours
        ]
    )
    assert take_notifications(robot)
    pushed = robot.pushed_changes(ROBOT, PREFIX)
    fills, updates = robot.changes_after(ROBOT, PREFIX, 0, 0)
    assert [type(e).__name__ for _, e in pushed] == ["OrderUpdate", "Fill", "Fill"]
    assert sorted(pushed, key=lambda p: (type(p[1]).__name__, p[0])) == sorted(
        fills + updates, key=lambda p: (type(p[1]).__name__, p[0])
    )
    assert [e.price for _, e in pushed[1:]] == [100, 101]


def test_a_row_too_big_for_a_payload_sends_the_robot_to_the_store(stores):
    robot, exchange = stores
    cid = f"{PREFIX}1"
    robot.insert_order(ROBOT, "r1", NewOrder(cid, "Si-12.26", "buy", 1), 1)
    reason = "x" * 9000  # NOTIFY takes under 8000 bytes
    exchange.record_many([(ROBOT, OrderUpdate(cid, 2, "rejected", reason))])
    assert take_notifications(robot)
    assert robot.pushed_changes(ROBOT, PREFIX) is None
    _fills, updates = robot.changes_after(ROBOT, PREFIX, 0, 0)
    assert updates[0][1].reason == reason


def test_a_reconnect_or_an_unknown_payload_sends_the_robot_to_the_store(stores):
    robot, exchange = stores
    robot.reconnect()
    robot.wait(0)
    assert robot.pushed_changes(ROBOT, PREFIX) is None  # what came while away is unknown
    exchange.conn.execute("SELECT pg_notify(rf_channel(%s), 'trade:1')", (ROBOT,))
    assert take_notifications(robot)
    assert robot.pushed_changes(ROBOT, PREFIX) is None
    exchange.conn.execute('SELECT pg_notify(rf_channel(%s), \'{"k": "trade"}\')', (ROBOT,))
    assert take_notifications(robot)
    assert robot.pushed_changes(ROBOT, PREFIX) is None  # a row missing its fields


@pytest.mark.parametrize(
    "marker",
    [
        "DROP FUNCTION rf_schema_version();",  # before versions were recorded
        "CREATE OR REPLACE FUNCTION rf_schema_version() RETURNS integer AS 'SELECT 1' "
        "LANGUAGE sql;",  # a recorded older version
    ],
)
def test_a_store_made_by_an_older_roboframe_is_upgraded(pg_url, marker):
    old = open_store(pg_url)
    old.setup()
    old.conn.execute(  # as an older roboframe left it: id-only payloads, no rf_record
        """
        CREATE OR REPLACE FUNCTION rf_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify(rf_channel(NEW.robot), 'trade:' || NEW.id);
            RETURN NEW;
        END $$ LANGUAGE plpgsql;
        DROP FUNCTION rf_record(jsonb);
        """
        + marker
    )
    with pytest.raises(Exception, match="rf_record"):  # the old store cannot record
        old.record_many([(ROBOT, Fill(f"{PREFIX}0", 1, "Si-12.26", "buy", 1, 1, "", "0"))])
    old.reconnect()
    robot = open_store(pg_url)
    robot.setup()  # upgrades
    robot.listen_robot(ROBOT)
    robot.wait(0)
    robot.pushed_changes(ROBOT, PREFIX)
    cid = f"{PREFIX}1"
    robot.insert_order(ROBOT, "r1", NewOrder(cid, "Si-12.26", "buy", 1), 1)
    old.record_many([(ROBOT, Fill(cid, 2, "Si-12.26", "buy", 1, 100, "", "0"))])
    assert take_notifications(robot)
    pushed = robot.pushed_changes(ROBOT, PREFIX)
    assert pushed is not None and [e.price for _, e in pushed] == [100]
    old.close()
    robot.close()


def test_the_trade_stream_forwards_notified_rows_without_reading_the_store(pg_url, monkeypatch):
    """With a long poll_ms, the only read of the store is the catch-up on connect:
    the acknowledgement and the fill reach the loop from the notifications alone."""
    import threading
    import time
    from decimal import Decimal

    import zmq
    from roboframe_postgres import roboframe_register_gateways

    from roboframe.core import codec
    from roboframe.core.gateway import Runtime
    from roboframe.core.instruments import Instrument
    from roboframe.core.streams import trade_stream

    reads = []
    real = PgStore.changes_after
    monkeypatch.setattr(
        PgStore, "changes_after", lambda self, *a: reads.append(a) or real(self, *a)
    )
    gateways = {}
    roboframe_register_gateways(lambda name, cls: gateways.setdefault(name, cls))
    ctx = zmq.Context()
    runtime = Runtime(ROBOT, "r1", ctx, "inproc://pg-rows-loop", None)
    loop = ctx.socket(zmq.PULL)
    loop.bind(runtime.loop_address)
    gw = gateways["postgres"](
        {"url": pg_url, "poll_ms": 600_000}, {"SI": Instrument("SI", Decimal(1))}, robot=ROBOT
    )
    gw.open(runtime)
    thread = threading.Thread(target=trade_stream, args=(gw, runtime), daemon=True)
    thread.start()
    exchange = open_store(pg_url)
    exchange.setup()
    try:
        cid = f"{PREFIX}1"
        gw.submit([NewOrder(cid, "SI", "buy", 1)])
        deadline = time.monotonic() + 10
        while not exchange.new_requests()[0]:
            assert time.monotonic() < deadline, "the order never reached the store"
            time.sleep(0.02)
        exchange.record_many(
            [
                (ROBOT, OrderUpdate(cid, 5, "accepted")),
                (ROBOT, Fill(cid, 6, "SI", "buy", 1, 99, "")),
            ]
        )
        got, messages = [], 0
        while len(got) < 2 and loop.poll(5000):
            got.extend(codec.events_in(codec.decode(loop.recv())))
            messages += 1
        assert [type(e).__name__ for e in got] == ["OrderUpdate", "Fill"]
        assert messages == 1  # notified together, handed to the loop together
        assert got[1].price == 99 and got[1].trade_id.isdigit()
        assert len(reads) == 1  # the catch-up on connect, nothing since
    finally:
        runtime.stop.set()
        thread.join(10)
        gw.close()
        exchange.close()
        loop.close(0)
        ctx.term()
