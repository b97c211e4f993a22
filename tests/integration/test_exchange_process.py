"""The exchange process: its fast path at the socket (an order's answers come
back in one message, under the ids the store then holds; a burst larger than
its id reserve; a replace answered at once and stored behind), and what it
says when its store is missing."""

from __future__ import annotations

import threading
import time

import pytest

from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Fill, NewOrder, OrderUpdate, Replace
from roboframe.exchange import ExchangeProcess
from roboframe.store import open_store
from roboframe.testing.helpers import free_port, wait_for
from tests.integration.conftest import roboframe_cmd
from tests.integration.exchange import RunningExchange, order_row, stored


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


def test_an_orders_answers_come_in_one_message_under_the_stored_ids(url):
    running = RunningExchange(url)
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        running.dealer.send(codec.encode([NewOrder("alpha-r1-1", "Si", "buy", 2)]))
        assert running.dealer.poll(5000)
        msg = codec.decode(running.dealer.recv())
        assert type(msg) is Batch  # one message for the acknowledgement and the fill
        update, fill = msg.events
        assert type(update) is OrderUpdate and update.status == "accepted"
        assert type(fill) is Fill and (fill.qty, fill.price) == (2, 100)
        assert not running.dealer.poll(200)  # and nothing after it
        counts = {"orders": 1, "fills": 1, "cancels": 0, "replaces": 0, "malformed": 0}
        counts["malformed_market"] = counts["market_ahead"] = 0
        assert running.exchange.counts == counts
        fills, updates = stored(url, 1, 1)
        assert fills == [(int(fill.trade_id), fill)]
        assert updates == [(int(update.ref), update)]
    finally:
        running.close()


def test_a_burst_of_fills_in_one_turn_gets_its_ids_and_all_of_it_arrives(pg_url):
    """One bar fills more resting orders at once than the exchange keeps ids
    reserved for: it reserves what the burst needs, and every fill arrives once.
    (On PostgreSQL only: the id handling is the exchange's, and SecantusDB takes
    half a minute to store the burst.)"""
    n, url = 400, pg_url
    running = RunningExchange(url)
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        orders = [NewOrder(f"alpha-r1-{i}", "Si", "buy", 1, "limit", 90) for i in range(n)]
        running.dealer.send(codec.encode(orders))
        acks = running.answers(n)
        assert [a.status for a in acks] == ["accepted"] * n
        running.price(Bar("Si", 2, 95, 95, 85, 88))  # every limit at 90 fills on this bar
        fills = running.answers(n)
        assert sorted(f.client_id for f in fills) == sorted(o.client_id for o in orders)
        assert len({f.trade_id for f in fills}) == n
        stored_fills, _ = stored(url, n, n)
        assert sorted(int(f.trade_id) for f in fills) == [ref for ref, _ in stored_fills]
    finally:
        running.close()


def test_an_order_notified_while_the_exchange_writes_is_taken_at_once(pg_url):
    """The exchange's write of a fill waits on a lock; an order a robot inserts
    meanwhile is notified with the write's reply, so the exchange's store
    socket never shows it. It is taken at once all the same, not at the next
    periodic read of the store (ten minutes away here)."""
    import psycopg

    running = RunningExchange(pg_url, fast=False, poll_s=600)  # it writes on its connection
    robot = open_store(pg_url)
    dsn, schema = pg_url.split("?schema=")
    blocker = psycopg.connect(dsn)
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        blocker.execute(f'SET search_path TO "{schema}"')
        blocker.execute("LOCK TABLE rf_trades IN SHARE MODE")  # fills wait for it
        robot.insert_order("alpha", "r1", NewOrder("alpha-r1-1", "Si", "buy", 1), 1)
        assert wait_for(lambda: robot.conn.execute(waiting).fetchone()[0]), (
            "the exchange never wrote the first fill"
        )
        robot.insert_order("alpha", "r1", NewOrder("alpha-r1-2", "Si", "buy", 1), 2)
        blocker.rollback()  # the write goes ahead; the order's notification comes with it
        assert wait_for(lambda: len(robot.changes_after("alpha", "alpha-r1-", 0, 0)[0]) == 2, 5), (
            "the second order was left waiting"
        )
        assert not running.failure, running.failure
    finally:
        blocker.close()
        robot.close()
        running.close()


def test_ids_follow_the_answers_whichever_path_an_order_came(url):
    """With the fast path on, a store-path order's answers are written by the
    same writer under ids from the same reserve: a fill answered between two
    fast fills gets an id between theirs. (Written apart, it got a higher id
    than fast fills answered after it, and a robot reading "after id N" could
    step over those -- e.g. the fills of a fast robot's orders reloaded after
    a restart, which are answered the store's way.)"""
    running = RunningExchange(url)
    robot = open_store(url)
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))

        def fast(n: int) -> int:
            running.dealer.send(codec.encode([NewOrder(f"alpha-r1-{n}", "Si", "buy", 1)]))
            return next(int(e.trade_id) for e in running.answers(2) if type(e) is Fill)

        first = fast(1)
        robot.insert_order("beta", "r1", NewOrder("beta-r1-1", "Si", "sell", 1), 1)
        assert wait_for(lambda: robot.changes_after("beta", "beta-r1-", 0, 0)[0]), (
            "the store-path order was never filled"
        )
        ((between, _),) = robot.changes_after("beta", "beta-r1-", 0, 0)[0]
        last = fast(2)
        assert first < between < last
        stored_fills, _ = stored(url, 2, 2)
        assert [ref for ref, _ in stored_fills] == [first, last]
    finally:
        robot.close()
        running.close()


def test_a_long_running_exchange_forgets_finished_orders_not_open_ones(pg_url):
    """Its maps of order -> robot and socket are trimmed to the newest finished
    orders; a resting order is never forgotten (its fill still comes over
    ZeroMQ), and a forgotten order sent again is still not filled twice."""
    running = RunningExchange(pg_url, remember=8)
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        resting = [NewOrder(f"alpha-r1-L{i}", "Si", "buy", 1, "limit", 90) for i in range(3)]
        running.dealer.send(codec.encode(resting))
        assert len(running.answers(3)) == 3
        for i in range(30):  # filled at once, one message each: finished orders pile up
            running.dealer.send(codec.encode([NewOrder(f"alpha-r1-{i}", "Si", "buy", 1)]))
            assert [type(e) for e in running.answers(2)] == [OrderUpdate, Fill]
        exchange = running.exchange
        assert len(exchange.owner) <= 8 and len(exchange.fast) <= 8
        assert all(o.client_id in exchange.owner for o in resting)
        running.dealer.send(codec.encode([NewOrder("alpha-r1-0", "Si", "buy", 1)]))  # again
        assert running.answers(1, timeout=1.0) == []  # the first one stands
        running.price(Bar("Si", 2, 95, 95, 85, 88))
        fills = running.answers(3)
        assert sorted(f.client_id for f in fills) == sorted(o.client_id for o in resting)
        stored_fills, _ = stored(pg_url, 33, 33)
        assert len(stored_fills) == 33  # the resent order: no second fill
    finally:
        running.close()


def test_an_exchange_started_without_its_store_says_so_once(caplog):
    """It keeps retrying (the store may come later), but not silently, and not
    with a line per retry."""
    import logging

    from roboframe.testing.helpers import wait_for

    exchange = ExchangeProcess(
        f"postgresql://nobody@127.0.0.1:{free_port()}/x", "tcp://127.0.0.1:1"
    )
    stop = threading.Event()
    thread = threading.Thread(target=exchange.run, args=(stop,))
    with caplog.at_level(logging.WARNING, logger="roboframe.exchange"):
        thread.start()
        try:
            assert wait_for(lambda: "order store unavailable" in caplog.text, timeout=10)
            time.sleep(1.5)  # a few retries more (0.2, 0.4, 0.8 s)
        finally:
            stop.set()
            thread.join(15)
    said = [r.getMessage() for r in caplog.records if "order store unavailable" in r.getMessage()]
    assert len(said) == 1 and said[0].endswith("; retrying")


def test_a_replace_sent_straight_to_the_exchange_is_answered_at_once_and_stored_behind(url):
    """Over ZeroMQ the answer comes back at once, under the id the store then
    holds; the store writer records the order's new qty and price behind it."""
    running = RunningExchange(url)
    cid = "alpha-r1-1"
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        running.dealer.send(codec.encode([NewOrder(cid, "Si", "buy", 2, "limit", 90)]))
        assert [u.status for u in running.answers(1)] == ["accepted"]
        running.dealer.send(codec.encode([Replace(cid, 3, 99)]))
        (replaced,) = running.answers(1)
        assert replaced.status == "replaced"
        resting = running.exchange.engine.open_orders[cid].order
        assert (resting.qty, resting.price) == (3, 99)
        assert order_row(url, cid, (3, 99, "accepted", 0)) == (3, 99, "accepted", 0)
        _, updates = stored(url, 0, 2)
        assert updates[-1] == (int(replaced.ref), replaced)
        assert running.exchange.counts["replaces"] == 1
    finally:
        running.close()


def test_an_order_from_a_robots_loop_is_answered_to_its_trade_stream(url):
    """A robot's loop sends its orders on a socket of its own ("NAME\\0orders"):
    the answers go to the robot's trade stream ("NAME"), and the store has the
    robot's name, not the loop socket's."""
    import zmq

    from roboframe.core.events import Cancel

    running = RunningExchange(url)  # its dealer: the trade stream of robot "alpha"
    loop = running.ctx.socket(zmq.DEALER)
    loop.setsockopt(zmq.IDENTITY, b"alpha\x00orders")
    loop.setsockopt(zmq.LINGER, 0)
    loop.connect(running.orders)
    cid = "alpha-r1-1"
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        # the answers go to the trade stream's link, which the ROUTER must know by
        # then (it drops what it cannot route): it does once it has answered there
        running.dealer.send(codec.encode([Cancel("alpha-r1-0")]))
        assert [u.status for u in running.answers(1)] == ["cancel_rejected"]
        loop.send(codec.encode([NewOrder(cid, "Si", "buy", 1)]))
        answers = running.answers(2)
        assert [(type(a).__name__, a.client_id) for a in answers] == [
            ("OrderUpdate", cid),
            ("Fill", cid),
        ]
        assert not loop.poll(200)  # nothing to the loop's socket
        fills, _ = stored(url, 1, 1)
        assert [f.trade_id for _, f in fills] == [answers[1].trade_id]
    finally:
        loop.close()
        running.close()


def filled_by_an_exchange_gone_since(url: str, order: NewOrder) -> None:
    """``order`` sent over ZeroMQ, filled, and written to the store by an
    exchange that has stopped since."""
    first = RunningExchange(url)
    try:
        first.price(Bar("Si", 1, 100, 100, 100, 100))
        first.dealer.send(codec.encode([order]))
        assert [type(e) for e in first.answers(2)] == [OrderUpdate, Fill]
        stored(url, 1, 1)  # the writer has written the order, its answer and its fill
    finally:
        first.close()


def test_an_order_sent_again_through_the_store_after_a_restart_is_not_filled_twice(url):
    """A robot resumed after a crash sends again the orders it never heard back
    about. One the fast path filled before the exchange restarted is still in
    the store: sent again the store's way (what the fast gateway's resubmit
    does), it is a no-op, and the restarted exchange does not fill it again."""
    order = NewOrder("alpha-r1-1", "Si", "buy", 2)
    filled_by_an_exchange_gone_since(url, order)
    second = RunningExchange(url)
    store = open_store(url)
    try:
        second.price(Bar("Si", 2, 101, 101, 101, 101))
        assert store.insert_order("alpha", "r1", order, 3) is False  # already there
        time.sleep(1.0)  # time enough for a notification and a fill, if one came
        assert second.exchange.counts["orders"] == 0
        fills, _ = store.changes_after("alpha", "alpha-r1-", 0, 0)
        assert len(fills) == 1
    finally:
        store.close()
        second.close()


def test_an_order_sent_again_over_zeromq_after_a_restart_is_not_filled_twice(url):
    """A client that never heard back sends its order again over ZeroMQ to an
    exchange restarted since the fill: the exchange has taken the store's
    newest finished orders as finished, ignores it, and the store keeps one fill."""
    order = NewOrder("alpha-r1-1", "Si", "buy", 2)
    filled_by_an_exchange_gone_since(url, order)
    second = RunningExchange(url)
    try:
        second.price(Bar("Si", 2, 101, 101, 101, 101))
        second.dealer.send(codec.encode([order]))
        assert second.answers(1, timeout=1.0) == []  # the first one stands
        fresh = NewOrder("alpha-r1-2", "Si", "buy", 1)  # a new order still fills
        second.dealer.send(codec.encode([fresh]))
        assert [type(e) for e in second.answers(2)] == [OrderUpdate, Fill]
        assert second.exchange.counts["orders"] == 1
        fills, _ = stored(url, 2, 2)
        assert sorted(f.client_id for _, f in fills) == ["alpha-r1-1", "alpha-r1-2"]
    finally:
        second.close()


def test_a_second_exchange_on_a_store_waits_and_takes_over(url):
    """Two exchanges on one store would both take every new order and fill it
    twice. The second waits (reading market data), fills nothing, and takes
    over when the first is gone, with the orders still open in the store."""
    first = RunningExchange(url, fast=False)
    second = RunningExchange(url, fast=False, wait=False)
    store = open_store(url)
    try:
        for running in (first, second):  # the waiting one reads prices too
            running.price(Bar("Si", 1, 100, 100, 100, 100))
        assert not second.ready.is_set()
        store.insert_order("alpha", "r1", NewOrder("alpha-r1-1", "Si", "buy", 1), 1)
        store.insert_order("alpha", "r1", NewOrder("alpha-r1-2", "Si", "buy", 1, "limit", 90), 2)
        stored(url, 1, 2)  # the market order filled, both accepted
        time.sleep(1.0)  # time enough for a second fill, if the other exchange made one
        fills, _ = store.changes_after("alpha", "alpha-r1-", 0, 0)
        assert [f.client_id for _, f in fills] == ["alpha-r1-1"]
        first.close()
        assert second.ready.wait(20), "the waiting exchange never took over"
        second.price(Bar("Si", 2, 95, 95, 85, 88))  # reaches the resting order's limit
        fills, _ = stored(url, 2, 2)
        assert sorted(f.client_id for _, f in fills) == ["alpha-r1-1", "alpha-r1-2"]
    finally:
        store.close()
        second.close()
        if not first.stop.is_set():
            first.close()


def test_a_malformed_order_message_is_counted_and_the_exchange_goes_on(url):
    """Extra frames or bytes that are not an order list: dropped, counted and
    logged; the next good order from the same robot is served as usual."""
    running = RunningExchange(url)
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        running.dealer.send_multipart([b"one", b"two"])
        running.dealer.send(b"\xc1 not msgpack")
        running.dealer.send(codec.encode([NewOrder("alpha-r1-1", "Si", "buy", 1)]))
        assert [type(e) for e in running.answers(2)] == [OrderUpdate, Fill]
        assert running.exchange.counts["malformed"] == 2
        assert running.exchange.counts["orders"] == 1
    finally:
        running.close()


def test_a_bar_of_the_past_fills_nothing(pg_url):
    """A market-data publisher restarted from the start of its file sends old
    bars again: a resting limit must not fill at a price of the past."""
    running = RunningExchange(pg_url)
    try:
        running.price(Bar("Si", 10, 100, 100, 100, 100))
        running.dealer.send(codec.encode([NewOrder("alpha-r1-1", "Si", "buy", 1, "limit", 90)]))
        (ack,) = running.answers(1)
        assert ack.status == "accepted"
        old = Bar("Si", 5, 95, 95, 80, 85)  # through the limit, but before the last bar
        deadline = time.monotonic() + 10
        while running.exchange.engine.stale < 1:
            assert time.monotonic() < deadline, "the exchange never got the old bar"
            running.pub.send_multipart([b"Si", codec.encode(old)])
            time.sleep(0.05)
        assert running.answers(1, timeout=0.5) == []
        assert "alpha-r1-1" in running.exchange.engine.open_orders
        running.price(Bar("Si", 11, 95, 95, 80, 85))  # the same prices, now: it fills
        (fill,) = running.answers(1)
        assert (fill.client_id, fill.price) == ("alpha-r1-1", 90)
    finally:
        running.close()


def test_malformed_market_data_is_counted_and_logged_and_fills_go_on(pg_url, caplog):
    """A publisher sending garbage (a wrong program on the port, a torn frame):
    each bad message is counted and the first logged; the bars after it still fill."""
    running = RunningExchange(pg_url)
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))  # the SUB is connected from here on
        running.dealer.send(codec.encode([NewOrder("alpha-r1-1", "Si", "buy", 1, "limit", 90)]))
        (ack,) = running.answers(1)
        assert ack.status == "accepted"
        with caplog.at_level("WARNING", logger="roboframe.exchange"):
            running.pub.send_multipart([b"Si", b"\xc1 not msgpack"])
            running.pub.send_multipart([b"Si", codec.encode(Bar("Si", 2, 1, 2, 3, 4))[:-3]])
            running.price(Bar("Si", 3, 95, 95, 80, 85))  # after the garbage, in order
            (fill,) = running.answers(1)
        assert (fill.client_id, fill.price) == ("alpha-r1-1", 90)
        assert running.exchange.counts["malformed_market"] == 2
        warnings = [r.getMessage() for r in caplog.records if "market data" in r.getMessage()]
        assert len(warnings) == 1, warnings
        assert "malformed market data dropped" in warnings[0]
    finally:
        running.close()


def test_a_price_stamped_far_ahead_of_the_clock_is_dropped_and_fills_go_on(pg_url, caplog):
    """A bar from decades ahead would make every later bar of its symbol stale to
    the paper engine: an exchange where nothing fills. It is counted and dropped;
    the next real bar is taken and fills at its price."""
    running = RunningExchange(pg_url)
    try:
        now = time.time_ns()
        future = Bar("Si", now + 36 * 365 * 86400 * 10**9, 900, 900, 900, 900)
        deadline = time.monotonic() + 10
        while running.exchange.counts["market_ahead"] == 0:
            assert time.monotonic() < deadline, "the exchange never got the bar"
            running.pub.send_multipart([b"Si", codec.encode(future)])
            time.sleep(0.05)
        running.price(Bar("Si", now, 100, 100, 100, 100))  # not stale: taken
        running.dealer.send(codec.encode([NewOrder("alpha-r1-1", "Si", "buy", 1)]))
        assert running.dealer.poll(5000)
        _, fill = codec.decode(running.dealer.recv()).events
        assert (fill.qty, fill.price) == (1, 100)
    finally:
        running.close()
    said = [r.getMessage() for r in caplog.records if "from the future" in r.getMessage()]
    assert said and "Si at 2062-" in said[0] and "more than --max-ahead (1d)" in said[0], said


def test_a_bad_max_ahead_is_refused_with_the_forms_it_takes():
    out = roboframe_cmd("exchange", "--store", "postgresql://x", "--max-ahead", "a day")
    assert out.returncode == 2
    assert "--max-ahead 'a day': expected 5m, 1h, 24h, milliseconds or off" in out.stderr
    assert "Traceback" not in out.stderr


def test_an_exchange_taking_over_fills_only_what_is_left_of_a_partly_filled_order(pg_url):
    """A standby exchange (``--fill-at close``) that read prices while it waited
    reloaded the store's open orders by placing them anew: a market order 4 of
    10 filled filled 10 more at once."""
    from roboframe.storewriter import write_items

    robot = open_store(pg_url)
    robot.setup()
    cid = "takeover-r1-1"
    robot.insert_order("takeover", "r1", NewOrder(cid, "Si", "buy", 10), 1)
    first = open_store(pg_url)  # the first exchange: accepted, then 4 of 10
    write_items(
        first,
        [
            ("takeover", OrderUpdate(cid, 1, "accepted")),
            ("takeover", Fill(cid, 2, "Si", "buy", 4, 100, "", "0")),
        ],
    )
    ex = ExchangeProcess(pg_url, "tcp://127.0.0.1:1", fill_at="close")
    ex.store = open_store(pg_url)
    try:
        ex.engine.on_market(Bar("Si", 3, 100, 101, 99, 100, 0))
        ex._take_over()
        ex._reload()
        assert [e for _, e in ex.unwritten] == []  # rests again, answered nothing
        assert ex.engine.open_orders[cid].remaining == 6
        fills = ex.engine.on_market(Bar("Si", 4, 102, 103, 101, 102, 0))
        assert [(f.qty, f.price) for f in fills] == [(6, 102)]
    finally:
        for store in (robot, first, ex.store):
            store.close()


def test_a_replace_refused_for_an_order_not_yet_there_is_answered_when_retried(pg_url):
    """A replace over the socket can come before its order, which went the
    store's way: refused, "not open". The exchange remembered it as asked, and
    took the strategy's retry, once the order rested, for a repeat: no answer,
    and the robot's replace stayed pending for good."""
    ex = ExchangeProcess(pg_url, "tcp://127.0.0.1:1")
    cid = "late-r1-1"
    (refused,) = ex._replace("late", Replace(cid, 2, 105))
    assert (refused.status, refused.reason) == ("replace_rejected", "replace: order not open")
    assert ex._replace("late", Replace(cid, 2, 105)) == []  # written twice: answered once
    order = NewOrder(cid, "Si", "buy", 1, "limit", 100)
    ex._place("late", order)
    (answer,) = ex._replace("late", Replace(cid, 2, 105))
    assert answer.status == "replaced"
    assert ex._replace("late", Replace(cid, 2, 105)) == []  # a repeat of a replace that took


def test_an_exchange_without_a_fast_path_waits_for_an_earlier_writer_too(pg_url):
    """An earlier exchange's writer, finishing, holds fills of orders still open in
    the store: an exchange started without ``--orders`` reloaded those orders at
    once and could fill them again. It waits for the writer, as one with a fast
    path does."""
    writer = open_store(pg_url)  # plays the earlier exchange's writer, still writing
    writer.setup()
    assert writer.try_writer_lock(keep=True)
    running = RunningExchange(pg_url, fast=False, wait=False)
    try:
        assert not running.ready.wait(1.0)  # not serving while the writer writes
        writer.close()  # done: its lock goes with its connection
        assert running.ready.wait(10)
    finally:
        running.close()


def test_a_bar_that_came_with_an_order_is_taken_before_it(pg_url):
    """A robot decides on a bar the publisher sent the exchange too. When the
    exchange's poll woke for the order and the bar came in before it was
    handled, the order was placed first, at the previous bar's time, and that
    bar's open -- a price from before the decision -- filled it."""
    running = RunningExchange(pg_url)
    gate, armed = threading.Event(), threading.Event()
    keep = running.exchange.store.keep_exchange_lock

    def held_once():  # the exchange, between its poll and its work
        if armed.is_set():
            armed.clear()
            gate.wait(5)
        keep()

    running.exchange.store.keep_exchange_lock = held_once
    try:
        running.price(Bar("Si", 60, 100, 100, 100, 100))
        armed.set()
        order = NewOrder("alpha-r1-1", "Si", "buy", 1, "limit", 105)
        running.dealer.send(codec.encode([order]))  # the poll wakes for it ...
        assert wait_for(lambda: not armed.is_set(), 5), "the exchange never woke"
        running.pub.send_multipart([b"Si", codec.encode(Bar("Si", 120, 100, 101, 99, 100))])
        # ... and the decision's bar is in before the order is handled (the exchange's
        # thread waits at the gate: its market socket is the test's to look at)
        assert wait_for(lambda: running.exchange.sub.poll(0), 4), "the bar never came in"
        gate.set()
        (accepted,) = running.answers(1)
        assert (accepted.status, accepted.ts) == ("accepted", 120)
        running.price(Bar("Si", 180, 101, 102, 100, 101))
        (filled,) = running.answers(1)
        assert (filled.ts, filled.price) == (180, 101)  # the next bar's open
    finally:
        gate.set()
        running.close()


def test_a_standby_exchange_opens_its_orders_endpoint_only_when_it_serves(pg_url):
    """A standby bound its fast-path endpoint at once: robots linked to it, said
    the exchange was back, and sent it orders it took up only when it served
    (15 s later after a kill, on MongoDB), at later prices -- where unlinked
    their orders would have gone through the store. Now nothing answers there
    until it serves."""
    import socket

    from tests.integration.exchange import RunningExchange

    first = RunningExchange(pg_url)
    standby = RunningExchange(pg_url, wait=False)
    port = int(standby.orders.rsplit(":", 1)[1])

    def accepts() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    try:
        time.sleep(1.0)  # waiting for the first's lock
        assert not standby.ready.is_set() and not accepts()
        first.close()
        assert standby.ready.wait(15)
        assert accepts()
    finally:
        standby.close()
        if first.thread.is_alive():
            first.close()


def test_a_cancel_over_the_socket_finds_its_order_waiting_in_the_store(url):
    """A robot's order can go the store's way (its link to the exchange not made
    yet, or resent after a resume) and its cancel over the socket, overtaking it:
    the exchange refused the cancel ("not open"), then read the order from the
    store and took it -- left working, against the strategy's last word. An
    unknown order's cancel reads the store first."""
    from roboframe.core.events import Cancel

    running = RunningExchange(url)
    running.exchange._take_requests = lambda full: False  # notified, not read yet
    robot = open_store(url)
    cid = "alpha-r1-1"
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        assert robot.insert_order("alpha", "r1", NewOrder(cid, "Si", "buy", 1, "limit", 90), 1)
        running.dealer.send(codec.encode([Cancel(cid)]))
        answers = running.answers(2)
        assert [(a.client_id, a.status) for a in answers] == [
            (cid, "accepted"),
            (cid, "cancelled"),
        ], answers
        assert cid not in running.exchange.engine.open_orders
    finally:
        robot.close()
        running.close()
