"""Notifications that carry their rows (fixture: pg_url): what a listener takes
from them equals what it would read from the store; anything it cannot trust
(a row too big for a payload, a reconnect, an unknown payload) sends it to the
store instead; an older store is upgraded in place."""

from __future__ import annotations

import pytest
from roboframe_postgres.store import SCHEMA_VERSION, PgStore, robot_channel

from roboframe.core.events import Cancel, Fill, NewOrder, OrderUpdate, Replace
from roboframe.store import open_store
from roboframe.testing.helpers import (
    RunningTradeStream,
    both_linked,
    take_notifications,
    wait_for,
)

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


def test_the_exchange_takes_new_orders_and_requests_from_the_notifications(stores):
    robot, exchange = stores
    cid = f"{PREFIX}1"
    robot.insert_order(ROBOT, "r1", NewOrder(cid, "Si-12.26", "sell", 3, "limit", 101), 7)
    robot.request_replace(ROBOT, cid, 4, 102, 8)
    robot.request_cancel(ROBOT, cid, 9)
    assert take_notifications(exchange)
    pushed = exchange.pushed_requests()
    assert pushed == exchange.new_requests()  # the very rows a read gives
    orders, requests = pushed
    assert [o.order.client_id for o in orders] == [cid]
    assert orders[0].order.price == 101 and orders[0].robot == ROBOT
    assert [r[1:] for r in requests] == [(ROBOT, Replace(cid, 4, 102)), (ROBOT, Cancel(cid))]
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
    channel = robot_channel(ROBOT, exchange.schema)
    exchange.conn.execute("SELECT pg_notify(%s, 'trade:1')", (channel,))
    assert take_notifications(robot)
    assert robot.pushed_changes(ROBOT, PREFIX) is None
    exchange.conn.execute('SELECT pg_notify(%s, \'{"k": "trade"}\')', (channel,))
    assert take_notifications(robot)
    assert robot.pushed_changes(ROBOT, PREFIX) is None  # a row missing its fields


def test_a_notification_read_with_a_query_reply_is_pending_though_the_socket_is_quiet(stores):
    """A notification in the socket when the connection runs a query is read with
    the reply; a loop that trusted its poll of the socket would sleep on it."""
    import select

    robot, exchange = stores
    cid = f"{PREFIX}1"
    robot.insert_order(ROBOT, "r1", NewOrder(cid, "Si-12.26", "buy", 1), 1)
    exchange.record_many([(ROBOT, Fill(cid, 2, "Si-12.26", "buy", 1, 100, "", "0"))])
    assert select.select([robot.fileno()], [], [], 5)[0]  # the notification is in the socket
    robot.insert_order(ROBOT, "r1", NewOrder(f"{PREFIX}2", "Si-12.26", "buy", 1), 3)
    assert select.select([robot.fileno()], [], [], 0.2)[0] == []  # the socket says nothing
    assert robot.pending()
    pushed = robot.pushed_changes(ROBOT, PREFIX)
    assert pushed is not None and [e.price for _, e in pushed] == [100]
    assert not robot.pending()  # taken once


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
            PERFORM pg_notify('rf_robot_' || substr(md5(NEW.robot), 1, 16), 'trade:' || NEW.id);
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


def test_a_version_5_store_is_upgraded_in_place_to_take_replace_requests(pg_url):
    """A store made by the previous schema (version 5: no qty and price on
    rf_order_events, a pending-requests index for cancels only, functions that
    know no replaces) gets them on the next setup, and keeps its rows."""
    from pathlib import Path

    import psycopg

    robot, prefix = "upgraded", "upgraded-r1-"  # the exchange channel spans schemas
    old = open_store(pg_url)  # no setup: the schema as version 5 made it
    old.conn.execute((Path(__file__).parent / "schema_v5.sql").read_text())
    cid = f"{prefix}1"
    old.insert_order(robot, "r1", NewOrder(cid, "Si-12.26", "buy", 2, "limit", 90), 1)
    old.request_cancel(robot, f"{prefix}0", 2)  # a request from before, still pending
    with pytest.raises(psycopg.errors.UndefinedColumn):
        old.request_replace(robot, cid, 3, 95, 3)
    store = open_store(pg_url)
    store.setup()  # upgrades
    assert store.conn.execute("SELECT rf_schema_version()").fetchone() == (SCHEMA_VERSION,)
    indexes = (
        "SELECT indexname FROM pg_indexes "
        "WHERE schemaname = current_schema() AND tablename = 'rf_order_events'"
    )
    names = {name for (name,) in store.conn.execute(indexes)}
    assert "rf_order_events_requests" in names and "rf_order_events_pending" not in names
    store.listen_exchange()
    store.wait(0)
    assert store.pushed_requests() is None  # just connected: read the store
    old.request_replace(robot, cid, 3, 95, 3)
    assert take_notifications(store)
    pushed = [r[1:] for r in store.pushed_requests()[1] if r[1] == robot]
    assert pushed == [(robot, Replace(cid, 3, 95))]
    orders, requests = store.new_requests()
    assert [s.order.client_id for s in orders] == [cid]
    assert [r[1:] for r in requests] == [
        (robot, Cancel(f"{prefix}0")),
        (robot, Replace(cid, 3, 95)),
    ]
    store.record_many(
        [
            (robot, OrderUpdate(cid, 4, "accepted")),
            (robot, Replace(cid, 3, 95)),
            (robot, OrderUpdate(cid, 4, "replaced")),
        ]
    )
    (stored,) = store.open_orders()
    assert (stored.order.qty, stored.order.price, stored.status) == (3, 95, "accepted")
    old.close()
    store.close()


def _stream(gateway: str, params: dict) -> RunningTradeStream:
    """Gateway ``gateway``'s trade stream for robot ``ROBOT``, running."""
    from roboframe.plugins import get_registry

    if gateway == "zmq":
        from roboframe.builtin.zmqgw import FastGateway

        return RunningTradeStream(FastGateway, params, ROBOT, "SI")
    return RunningTradeStream(get_registry().gateways[gateway].obj, params, ROBOT, "SI")


def test_the_trade_stream_forwards_notified_rows_without_reading_the_store(pg_url, monkeypatch):
    """With a long poll_ms, the only read of the store is the catch-up on connect:
    the acknowledgement and the fill reach the loop from the notifications alone."""
    reads = []
    real = PgStore.changes_after
    monkeypatch.setattr(
        PgStore, "changes_after", lambda self, *a: reads.append(a) or real(self, *a)
    )
    stream = _stream("postgres", {"url": pg_url, "poll_ms": 600_000})
    exchange = open_store(pg_url)
    exchange.setup()
    try:
        cid = f"{PREFIX}1"
        stream.gw.submit([NewOrder(cid, "SI", "buy", 1)])
        assert wait_for(lambda: exchange.new_requests()[0]), "the order never reached the store"
        exchange.record_many(
            [
                (ROBOT, OrderUpdate(cid, 5, "accepted")),
                (ROBOT, Fill(cid, 6, "SI", "buy", 1, 99, "")),
            ]
        )
        got = stream.events(2)
        assert [type(e).__name__ for e in got] == ["OrderUpdate", "Fill"]
        assert stream.messages == 1  # notified together, handed to the loop together
        assert got[1].price == 99 and got[1].trade_id.isdigit()
        assert len(reads) == 1  # the catch-up on connect, nothing since
    finally:
        stream.close()
        exchange.close()


def test_a_fill_notified_while_the_stream_inserts_an_order_is_not_left_waiting(pg_url):
    """The robot's insert waits on a lock; a fill committed meanwhile is notified
    with the insert's reply, so the stream's socket never shows it. The stream
    still forwards it at once, not at its next periodic read (ten minutes away)."""
    import psycopg

    stream = _stream("postgres", {"url": pg_url, "poll_ms": 600_000})
    exchange = open_store(pg_url)
    exchange.setup()
    dsn, schema = pg_url.split("?schema=")
    blocker = psycopg.connect(dsn)  # a transaction holding the next order's client id
    try:
        first, second = f"{PREFIX}1", f"{PREFIX}2"
        stream.gw.submit([NewOrder(first, "SI", "buy", 1)])
        assert wait_for(lambda: exchange.new_requests()[0]), "the order never reached the store"
        blocker.execute(f'SET search_path TO "{schema}"')
        blocker.execute(
            "INSERT INTO rf_orders (robot, run_id, client_id, symbol, side, qty, type, price, ts)"
            " VALUES (%s, 'r1', %s, 'SI', 'buy', 1, 'market', 0, 1)",
            (ROBOT, second),
        )
        stream.gw.submit([NewOrder(second, "SI", "buy", 1)])  # waits for the blocker
        waiting = (
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE 'INSERT INTO rf_orders%%'"
        )
        assert wait_for(lambda: exchange.conn.execute(waiting).fetchone()[0]), (
            "the stream's insert never waited on the lock"
        )
        exchange.record_many([(ROBOT, Fill(first, 6, "SI", "buy", 1, 99, ""))])
        blocker.rollback()  # the insert goes ahead, the notification comes with its reply
        got = stream.events(1, timeout_ms=5000)
        assert [(type(e).__name__, e.client_id) for e in got] == [("Fill", first)]
    finally:
        blocker.close()
        stream.close()
        exchange.close()


def test_the_fast_path_takes_the_stores_notifications_of_what_its_socket_missed(pg_url):
    """A fill the exchange's socket never brought (the robot was away) reaches
    the loop from the store's notification, not at the next periodic read; and
    taking the notifications keeps the store's socket from staying readable."""
    from roboframe.core.events import Control
    from roboframe.testing.helpers import free_port

    address = f"tcp://127.0.0.1:{free_port()}"  # no exchange there: nothing comes that way
    stream = _stream("zmq", {"url": pg_url, "poll_ms": 600_000, "address": address})
    writer = open_store(pg_url)
    writer.setup()
    try:
        cid = f"{PREFIX}1"
        caught_up = (  # LISTEN, then the catch-up read: then the stream serves
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle' "
            "AND query LIKE 'SELECT id, client_id, kind%%'"
        )
        assert wait_for(lambda: writer.conn.execute(caught_up).fetchone()[0]), (
            "the stream never caught up"
        )
        writer.record_many(
            [(ROBOT, NewOrder(cid, "SI", "buy", 1)), (ROBOT, Fill(cid, 6, "SI", "buy", 1, 98, ""))]
        )
        got = stream.events(1, timeout_ms=5000)
        if got and type(got[0]) is Control:  # 2 s after its start: no exchange there
            assert got[0].args["status"] == "down", got
            got = stream.events(1, timeout_ms=5000)
        assert [(type(e).__name__, e.price) for e in got] == [("Fill", 98)]
    finally:
        stream.close()
        writer.close()


def test_a_replace_is_written_as_a_request_row_in_the_order_it_was_sent(pg_url):
    """The store gateway writes a Replace the way it writes a cancel: a request
    row for the exchange side, with the new qty and price, between the actions
    sent around it."""
    stream = _stream("postgres", {"url": pg_url, "poll_ms": 600_000})
    store = open_store(pg_url)
    store.setup()
    try:
        cid = f"{PREFIX}1"
        sent = [NewOrder(cid, "SI", "buy", 1, "limit", 99), Replace(cid, 2, 101), Cancel(cid)]
        stream.gw.submit(sent)
        assert wait_for(lambda: len(store.new_requests()[1]) == 2), "the requests never came"
        orders, requests = store.new_requests()
        assert [s.order for s in orders] + [action for _, _, action in requests] == sent
    finally:
        stream.close()
        store.close()


@pytest.fixture
def exchange_socket():
    """A ROUTER where the fast path's exchange would be: ``(socket, address,
    monitor of its links)``."""
    import zmq

    from roboframe.testing.helpers import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    linked = router.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    router.bind(address)
    yield router, address, linked
    linked.close(linger=0)
    router.close()
    ctx.term()


def test_an_answer_without_a_store_id_reaches_the_loop_from_the_exchange(pg_url, exchange_socket):
    """An exchange may answer without writing a row (an older roboframe's refusal
    of a replace did): the answer has no ref. The fast path's stream forwards
    it (it used to fail on int(''))."""

    from roboframe.core import codec
    from roboframe.testing.helpers import answer_robot

    router, address, linked = exchange_socket
    stream = _stream("zmq", {"url": pg_url, "poll_ms": 600_000, "address": address})
    try:
        both_linked(linked, stream.gw)  # or the order goes the store's way, not to the router
        stream.gw.submit([NewOrder(f"{PREFIX}1", "SI", "buy", 1)])  # so the router knows it
        assert router.poll(5000), "the order never came over ZeroMQ"
        sender, _ = router.recv_multipart()
        refused = OrderUpdate(f"{PREFIX}1", 7, "replace_rejected", "replace: not supported")
        answer_robot(router, sender, codec.encode(refused))
        got = stream.events(1, timeout_ms=5000)
        assert got == [refused]
        assert stream.thread.is_alive()
    finally:
        stream.close()


def test_the_fast_path_sends_orders_again_through_the_store_after_a_resume(pg_url, exchange_socket):
    """What a resumed robot sends again may have been filled by an exchange that
    has restarted since and forgotten it: over ZeroMQ it would be filled a second
    time. resubmit writes it to the store instead, where a held client id is a
    no-op, and a pending replace as a request row beside it; new orders and
    replaces still go straight to the exchange."""

    from roboframe.core import codec

    router, address, linked = exchange_socket
    stream = _stream("zmq", {"url": pg_url, "poll_ms": 600_000, "address": address})
    store = open_store(pg_url)
    store.setup()
    try:
        again, fresh = (
            NewOrder(f"{PREFIX}1", "SI", "buy", 1),
            NewOrder(f"{PREFIX}2", "SI", "buy", 1),
        )
        both_linked(linked, stream.gw)
        stream.gw.resubmit([again, Replace(again.client_id, 2, 101)])
        stream.gw.submit([fresh, Replace(fresh.client_id, 3, 99)])
        assert router.poll(5000), "the new order never came over ZeroMQ"
        _, raw = router.recv_multipart()
        assert codec.decode_actions(raw) == [fresh, Replace(fresh.client_id, 3, 99)]
        assert wait_for(lambda: store.new_requests()[1]), "the resent ones never reached the store"
        orders, requests = store.new_requests()
        assert [s.order for s in orders] == [again]
        assert [action for _, _, action in requests] == [Replace(again.client_id, 2, 101)]
        assert not router.poll(300)  # the resent ones never came this way
    finally:
        store.close()
        stream.close()


@pytest.fixture
def second_store_url(pg_url):
    """Another store (schema) in the same database as ``pg_url``'s."""
    import uuid

    import psycopg

    schema = f"rf_test_{uuid.uuid4().hex[:12]}"
    base, _ = pg_url.split("?schema=")
    yield f"{base}?schema={schema}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_two_stores_in_one_database_do_not_hear_each_other(pg_url, second_store_url):
    """Channels are the database's: a live and a paper store side by side (two
    schemas) must not wake each other's exchange, whose notifications carry
    whole orders it would take and fill, nor a robot of the same name."""
    here, there = open_store(pg_url), open_store(second_store_url)
    exchange, robot = open_store(pg_url), open_store(pg_url)
    try:
        for store in (here, there, exchange, robot):
            store.setup()
        exchange.listen_exchange()
        robot.listen_robot(ROBOT)
        for store in (exchange, robot):
            store.wait(0)
            store.pushed_changes(ROBOT, PREFIX)  # the first take after connecting
        order = NewOrder(f"{PREFIX}1", "Si-12.26", "buy", 1)
        there.insert_order(ROBOT, "r1", order, 1)
        there.record_many([(ROBOT, Fill(order.client_id, 2, "Si-12.26", "buy", 1, 100, "", "0"))])
        assert not take_notifications(exchange, 1.0)
        assert not take_notifications(robot, 1.0)
        here.insert_order(ROBOT, "r1", order, 1)  # its own store still wakes it
        assert take_notifications(exchange)
        assert [o.order.client_id for o in exchange.pushed_requests()[0]] == [order.client_id]
    finally:
        for store in (here, there, exchange, robot):
            store.close()
