"""Runs of one robot kept apart, and its order path kept honest, with a real
exchange or a stand-in ROUTER and PostgreSQL: a new run takes only its own
answers (the exchange answers a robot by its name), the link to the exchange
is watched, orders it took with it go the store's way, and a robot lock let
go late is waited for."""

from __future__ import annotations

import contextlib
import time

import pytest

from roboframe.builtin.zmqgw import FastGateway
from roboframe.core.events import Bar, NewOrder, OrderUpdate
from roboframe.testing.helpers import RunningTradeStream, both_linked, wait_for
from tests.integration.exchange import RunningExchange, stored

ROBOT = "runs-apart"  # a name of its own: notification channels span the schemas


def stream(url: str, running: RunningExchange, run_id: str) -> RunningTradeStream:
    params = {"url": url, "poll_ms": 200, "address": running.orders}
    return RunningTradeStream(FastGateway, params, ROBOT, run_id=run_id)


def test_a_new_run_takes_no_fill_of_an_order_an_earlier_run_left_working(pg_url):
    running = RunningExchange(pg_url, robot=f"{ROBOT}-dealer")
    first = stream(pg_url, running, "r1")
    second = None
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        first.gw.submit([NewOrder(f"{ROBOT}-r1-1", "Si", "buy", 1, "limit", 90)])
        (accepted,) = first.events(1)
        assert type(accepted) is OrderUpdate and accepted.status == "accepted"
        first.close()  # the run stops; its order stays working (open_orders_on_stop: leave)
        first = None
        second = stream(pg_url, running, "r2")
        second.gw.submit([NewOrder(f"{ROBOT}-r2-1", "Si", "buy", 1, "limit", 80)])
        (mine,) = second.events(1)
        assert (mine.client_id, mine.status) == (f"{ROBOT}-r2-1", "accepted")
        running.price(Bar("Si", 2, 89, 89, 85, 86))  # through the first run's limit only
        fills, _ = stored(pg_url, 1, 1, robot=ROBOT)  # it filled, and the store has it
        assert [f.client_id for _, f in fills] == [f"{ROBOT}-r1-1"]
        assert second.events(1, timeout_ms=1500) == []  # not the second run's fill
        assert not running.failure, running.failure
    finally:
        _close(running, first, second)


def test_orders_sent_while_the_exchange_is_down_reach_the_store_at_the_stop(pg_url):
    """The exchange is down: the fast path's orders wait in the socket's queue.
    A clean stop closed the socket and they were gone -- journaled as sent, in
    neither the exchange nor the store, "open" in the summary, and nothing would
    ever send them. At the stop they go to the store, where a restarted exchange
    takes them; an order the exchange did answer is not written twice."""
    from roboframe.store import open_store
    from roboframe.testing.helpers import free_port

    robot = f"{ROBOT}-down"
    params = {"url": pg_url, "poll_ms": 200, "address": f"tcp://127.0.0.1:{free_port()}"}
    end = RunningTradeStream(FastGateway, params, robot, run_id="r1")
    orders = [NewOrder(f"{robot}-r1-{n}", "Si", "buy", 1, "limit", 90) for n in (1, 2)]
    try:
        end.gw.submit(orders)
        assert end.events(1, timeout_ms=500) == []  # nobody answers
    finally:
        end.close()
    store = open_store(pg_url)
    try:
        waiting, _ = store.new_requests()
        mine = [o.order for o in waiting if o.robot == robot]
        assert mine == orders
    finally:
        store.close()


def test_the_order_path_is_down_while_the_exchange_is_unreachable(pg_url):
    """The fast path said "up" with the exchange gone, and orders queued unseen in
    the socket, to reach the exchange minutes late (or never). Its link is watched
    now: down when it is not made at the start or is lost, up when it is back --
    risk refuses new orders meanwhile, as for a store outage."""
    import zmq

    from roboframe.core.events import Control
    from roboframe.testing.helpers import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    params = {"url": pg_url, "poll_ms": 200, "address": address}
    end = RunningTradeStream(FastGateway, params, f"{ROBOT}-link", run_id="r1")
    router = None
    try:
        (down,) = end.events(1, timeout_ms=5000)
        why = f"the exchange at {address} is unreachable (link not made within 2s)"
        assert down == Control("gateway", 0, {"status": "down", "reason": why})
        router = end.ctx.socket(zmq.ROUTER)
        router.bind(address)
        assert end.events(1, timeout_ms=5000) == [Control("gateway", 0, {"status": "up"})]
        router.close(linger=0)
        router = None
        (lost,) = end.events(1, timeout_ms=5000)
        assert lost.args["status"] == "down" and lost.args["reason"].endswith("(link lost)")
    finally:
        if router is not None:
            router.close(linger=0)
        end.close()


def test_orders_a_broken_link_took_with_it_go_through_the_store_when_it_is_back(pg_url):
    """An exchange that took an order over the socket and died (hung, then killed)
    before answering: the order was lost with its queue, and stayed "new" in the
    robot for the rest of the run, counted against max_position, until the stop
    wrote it to the store and it filled then, for a finished run. When the link
    is made again it goes the store's way at once, where the restarted exchange
    takes it (and an order it had taken already is a no-op)."""

    import zmq

    from roboframe.store import open_store
    from roboframe.testing.helpers import free_port

    robot = f"{ROBOT}-relink"
    address = f"tcp://127.0.0.1:{free_port()}"
    params = {"url": pg_url, "poll_ms": 200, "address": address}
    end = RunningTradeStream(FastGateway, params, robot, run_id="r1")
    store = open_store(pg_url)
    store.setup()  # the trade stream's work too, which may not be done yet
    exchange = end.ctx.socket(zmq.ROUTER)
    linked = exchange.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    exchange.bind(address)

    def stored() -> list:
        return [o.order for o in store.new_requests()[0] if o.robot == robot]

    try:
        assert linked.poll(5000), "the robot's link was never made"
        assert wait_for(end.gw.linked, 5), "the link was never made on the robot's side"
        order = NewOrder(f"{robot}-r1-1", "Si", "buy", 1, "limit", 90)
        end.gw.submit([order])
        assert exchange.poll(5000), f"not sent over the link; the store has {stored()}"
        exchange.recv_multipart()  # taken, never answered: the exchange hangs, then dies
        exchange.disable_monitor()
        exchange.close(linger=0)
        assert stored() == []  # nowhere but in the dead exchange's queue
        exchange = end.ctx.socket(zmq.ROUTER)  # the restarted exchange
        assert wait_for(lambda: _bound(exchange, address), 10)  # the port, let go
        assert wait_for(lambda: stored() == [order], 10), stored()
    finally:
        linked.close(linger=0)
        exchange.close(linger=0)
        end.close()
        store.close()


def test_a_robot_lock_let_go_a_moment_late_is_waited_for(pg_url):
    """The server lets a closed connection's robot lock go a moment after it closes:
    a robot restarted at once (the supervisor, a quick second run) failed its
    trade stream with "already runs against this order store"."""
    import threading

    from roboframe.plugins import get_registry
    from roboframe.store import open_store

    robot = f"{ROBOT}-lock"
    previous = open_store(pg_url)
    previous.setup()
    assert previous.take_robot_lock(robot, "r0")
    threading.Timer(0.5, previous.close).start()  # the previous run's process ends
    params = {"url": pg_url, "poll_ms": 200}
    end = RunningTradeStream(get_registry().gateways["postgres"].obj, params, robot, run_id="r1")
    other = open_store(pg_url)
    try:
        # past the wait (LOCK_WAIT_S): no "gateway failed" stop, and the lock is its own
        assert end.events(1, timeout_ms=4000) == []
        assert end.thread.is_alive()
        assert not other.take_robot_lock(robot, "r2")
    finally:
        end.close()
        other.close()


def _bound(sock, address: str) -> bool:
    """Bind ``sock`` to ``address``: False while a socket closed a moment ago still
    holds it (ZeroMQ closes in the background)."""
    import zmq

    try:
        sock.bind(address)
    except zmq.ZMQError:
        return False
    return True


def test_a_resumed_run_reads_a_fill_the_socket_went_past(pg_url):
    """The exchange answers over the socket at once and writes the store behind;
    an order that went the store's way (resubmitted, or sent while the link was
    down) is answered the store's way only. So fill 2 (over the socket) can be
    journaled before fill 1 is in the store. A robot killed then resumed its
    reads after id 2, and never heard of fill 1."""
    import threading
    from decimal import Decimal

    import zmq

    from roboframe.core import codec
    from roboframe.core.events import Fill
    from roboframe.core.gateway import Runtime
    from roboframe.core.instruments import Instrument
    from roboframe.core.streams import trade_stream
    from roboframe.store import open_store
    from roboframe.storewriter import write_items
    from roboframe.testing.helpers import answer_robot, free_port

    robot = f"{ROBOT}-gap"
    store = open_store(pg_url)
    store.setup()
    low, high = store.reserve_ids("trades", 2)  # the exchange's ids, in answer order
    via_store = Fill(f"{robot}-r1-1", 1, "Si", "buy", 1, 100, str(low), "0")
    via_socket = Fill(f"{robot}-r1-2", 2, "Si", "buy", 1, 100, str(high), "0")
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)  # the exchange's order socket, played here
    router.setsockopt(zmq.LINGER, 0)
    address = f"tcp://127.0.0.1:{free_port()}"
    router.bind(address)

    def run(seen, answer=None, quiet=1.0):
        """The fills the loop gets: until one comes (the stream forwards only once
        its store is set up), then for ``quiet`` seconds more (one twice, or more)."""
        # a context of its own, as a robot process has: the runs' gateways bind the
        # same inproc addresses, which a closed socket lets go only a moment later
        run_ctx = zmq.Context()
        rt = Runtime(robot, "r1", run_ctx, f"inproc://{robot}-loop", None, store_seen=seen)
        loop = run_ctx.socket(zmq.PULL)
        loop.bind(rt.loop_address)
        params = {"url": pg_url, "address": address, "poll_ms": 50}
        gw = FastGateway(params, {"Si": Instrument("Si", Decimal(1))}, robot=robot)
        gw.open(rt)
        thread = threading.Thread(target=trade_stream, args=(gw, rt), daemon=True)
        thread.start()
        got = []
        try:
            if answer is not None:
                sender = None
                while sender is None:  # an order over the link, to learn who sent it
                    gw.submit([NewOrder(f"{robot}-r1-9", "Si", "buy", 1)])
                    if router.poll(200):
                        sender = router.recv_multipart()[0]
                answer_robot(router, sender, codec.encode(answer))
            end = time.monotonic() + 10
            while time.monotonic() < end:
                if loop.poll(50):
                    msg = codec.decode(loop.recv())
                    got += [e for e in codec.events_in(msg) if type(e) is Fill]
                    if got:  # the first fill: the rest only for a while, if any came
                        end = min(end, time.monotonic() + quiet)
        finally:
            rt.stop.set()
            thread.join(10)
            gw.close()
            loop.close(0)
            run_ctx.destroy(linger=0)  # a stream that did not stop must not hang the suite
        assert not thread.is_alive(), "the trade stream did not stop"
        return got

    try:
        journaled = run((frozenset(), frozenset()), answer=via_socket, quiet=0.5)
        assert journaled == [via_socket]  # ... and the robot is killed here
        write_items(store, [(robot, via_store), (robot, via_socket)])  # the writer catches up
        seen = (frozenset(int(f.trade_id) for f in journaled), frozenset())
        assert run(seen) == [via_store]  # once, and not the journaled one again
    finally:
        router.close(0)
        ctx.destroy(linger=0)  # a stream that did not stop must not hang the suite
        store.close()


def test_the_loop_sends_its_orders_itself_and_answers_come_to_the_trade_stream(pg_url):
    """An order left the loop through the trade stream's thread: a hop between two
    threads (tens of microseconds here, on every order) before it went out. The
    loop sends it on a socket of its own now -- with no trade stream running it
    still reaches the exchange -- and the exchange answers the robot's trade
    stream, by the robot's name."""
    from roboframe.core import codec

    with _lone_gateway(pg_url, f"{ROBOT}-own") as end:
        end.router.bind(end.address)
        assert end.linked.poll(5000), "the loop's socket never linked"
        assert wait_for(end.gw.linked, 5), "the link was never made on the loop's side"
        order = NewOrder(f"{end.robot}-r1-1", "Si", "buy", 1, "limit", 90)
        end.gw.submit([order])
        assert end.router.poll(5000), "the order never left the loop"
        sender, raw = end.router.recv_multipart()
        assert sender == end.robot.encode() + b"\x00orders"
        assert codec.decode_actions(raw) == [order]
        assert list(end.gw.sent) == [(order,)]  # for the trade stream to watch over


def test_an_order_the_loop_sent_unanswered_at_the_stop_reaches_the_store(pg_url):
    """Sent by the loop itself, taken by an exchange that then hung: at the stop
    the trade stream writes it to the store, as for one it sent itself."""
    import zmq

    from roboframe.store import open_store
    from roboframe.testing.helpers import free_port

    robot = f"{ROBOT}-hung"
    address = f"tcp://127.0.0.1:{free_port()}"
    params = {"url": pg_url, "poll_ms": 200, "address": address}
    end = RunningTradeStream(FastGateway, params, robot, run_id="r1")
    exchange = end.ctx.socket(zmq.ROUTER)
    exchange.setsockopt(zmq.LINGER, 0)
    linked = exchange.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    exchange.bind(address)
    store = open_store(pg_url)
    order = NewOrder(f"{robot}-r1-1", "Si", "buy", 1, "limit", 90)
    try:
        both_linked(linked, end.gw)
        end.gw.submit([order])
        assert exchange.poll(5000), "not sent"
        sender, _ = exchange.recv_multipart()  # taken, never answered
        assert sender.endswith(b"\x00orders")
    finally:
        linked.close(linger=0)
        exchange.close(linger=0)
        end.close()
    try:
        assert [o.order for o in store.new_requests()[0] if o.robot == robot] == [order]
    finally:
        store.close()


def test_the_loop_notes_an_order_before_it_sends_it(pg_url):
    """The loop noted an order for its trade stream after sending it; the answer
    could come first, and was then kept for whatever came next of that order (a
    replace's answer, for the next replace). Noted first, an answer always finds
    its action; one that did not leave (no link made) has its note taken back
    and goes the trade stream's way."""
    from roboframe.core import codec
    from roboframe.core.events import Replace

    with _lone_gateway(pg_url, f"{ROBOT}-note") as end:
        gw, router, linked, address, robot = end.gw, end.router, end.linked, end.address, end.robot
        unsent = NewOrder(f"{robot}-r1-1", "Si", "buy", 1, "limit", 90)
        gw.submit([unsent])  # nothing bound there yet: no link
        assert list(gw.sent) == []
        assert gw._pull.poll(5000), "not sent the trade stream's way"
        assert codec.decode_actions(gw._pull.recv()) == [unsent]
        router.bind(address)
        assert linked.poll(5000), "the loop's socket never linked"
        assert wait_for(gw.linked, 5), "the link was never made on the loop's side"

        class Watched:  # the loop's socket, with what was noted when it sent
            def __init__(self, sock) -> None:
                self.sock, self.noted = sock, []

            def send(self, raw, flags) -> None:
                self.noted.append(list(gw.sent))
                self.sock.send(raw, flags)

        direct = gw._direct
        gw._direct = Watched(direct)
        replace = Replace(f"{robot}-r1-2", 2, 91)  # of an order sent straight
        gw.submit([replace])
        assert gw._direct.noted == [[(replace,)]]
        assert router.poll(5000), "the replace never left the loop"
        assert codec.decode_actions(router.recv_multipart()[1]) == [replace]
        gw._direct = direct


@pytest.mark.parametrize("echo", ["before", "after"])
def test_a_replace_the_exchange_took_unanswered_reaches_the_store_at_the_stop(pg_url, echo):
    """Each answer comes twice on the fast path: over the socket, then from the
    store, which the exchange writes behind. The store's copy of a replace's
    answer was taken for the answer of the robot's next replace of that order
    (read before that replace was sent, it was kept as an answer come early;
    read after, it answered it outright): that replace, taken by an exchange
    that then hung, was watched over by nobody -- not sent again through the
    store, not even at the stop, and the order kept its old price for good."""
    import zmq

    from roboframe.core import codec
    from roboframe.core.events import Replace
    from roboframe.store import open_store
    from roboframe.storewriter import write_items
    from roboframe.testing.helpers import answer_robot, free_port

    robot = f"{ROBOT}-echo-{echo}"
    address = f"tcp://127.0.0.1:{free_port()}"
    params = {"url": pg_url, "poll_ms": 200, "address": address}
    end = RunningTradeStream(FastGateway, params, robot, run_id="r1")
    exchange = end.ctx.socket(zmq.ROUTER)  # the exchange, played: it writes the store too
    exchange.setsockopt(zmq.LINGER, 0)
    linked = exchange.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    exchange.bind(address)
    store = open_store(pg_url)
    store.setup()
    cid = f"{robot}-r1-1"

    def taken(action) -> bytes:
        assert exchange.poll(5000), f"{action} never came"
        sender, raw = exchange.recv_multipart()
        assert codec.decode_actions(raw) == [action]
        return sender

    def answered(status: str, of: str = cid) -> OrderUpdate:
        ref = str(store.reserve_ids("order_events", 1)[0])
        return OrderUpdate(of, time.time_ns(), status, "", ref)

    def in_the_store(items: list) -> None:
        """``items`` written as the exchange's writer writes them, then a marker
        the loop gets once the trade stream has read them (read together)."""
        marker = NewOrder(f"{robot}-r1-2", "Si", "buy", 1, "limit", 80)
        news = [(robot, marker), (robot, answered("accepted", marker.client_id))]
        write_items(store, [*items, *news])
        got = end.events(1, timeout_ms=5000)
        assert [e.client_id for e in got] == [marker.client_id], got  # new to the stream

    try:
        both_linked(linked, end.gw)
        order = NewOrder(cid, "Si", "buy", 1, "limit", 90)
        end.gw.submit([order])
        sender = taken(order)
        accepted = answered("accepted")
        answer_robot(exchange, sender, codec.encode(accepted))
        assert end.events(1) == [accepted]
        write_items(store, [(robot, order), (robot, accepted)])
        first, second = Replace(cid, 2, 91), Replace(cid, 3, 92)
        end.gw.submit([first])
        taken(first)
        replaced = answered("replaced")
        answer_robot(exchange, sender, codec.encode(replaced))
        assert end.events(1) == [replaced]
        if echo == "before":  # the store's copy read before the next replace is sent
            in_the_store([(robot, first), (robot, replaced)])
        end.gw.submit([second])
        taken(second)  # and never answered: the exchange hangs
        if echo == "after":
            in_the_store([(robot, first), (robot, replaced)])
    finally:
        linked.close(linger=0)
        exchange.close(linger=0)
        end.close()
    try:
        requests = [action for _, who, action in store.new_requests()[1] if who == robot]
        assert requests == [second]
    finally:
        store.close()


def test_orders_the_loops_own_link_took_with_it_go_through_the_store_when_it_is_back(pg_url):
    """The loop's socket has a link of its own to the exchange, which can break
    alone (a NAT or a firewall dropping one flow; heartbeats timed out on one
    link and not on the other). Only the trade stream's link was watched: an
    order the loop's link took with it stayed "new" for the rest of the run and
    went through the store at the stop, to fill for a finished run. It goes the
    store's way when that link is made again, as for the trade stream's."""
    with _robot_beside_an_exchange(pg_url, f"{ROBOT}-own-link", proxied=True) as end:
        end.gw.open(end.runtime)  # the loop's link first: the proxy's first connection
        end.gw.link()  # the trade stream's call, once the robot's lock is the run's
        assert end.linked.poll(5000), "the loop's link was never made"
        end.linked.recv_multipart()
        assert end.proxy.connections() == 1
        end.start_stream()
        assert end.linked.poll(5000), "the trade stream's link was never made"
        end.linked.recv_multipart()
        assert wait_for(end.gw.linked, 5), "the link was never made on the loop's side"
        order = NewOrder(f"{end.robot}-r1-1", "Si", "buy", 1, "limit", 90)
        end.gw.submit([order])
        assert end.exchange.poll(5000), "not sent over the loop's link"
        sender, _ = end.exchange.recv_multipart()  # taken, never answered; the link breaks
        assert sender.endswith(b"\x00orders")
        end.proxy.drop(0)
        assert end.linked.poll(5000), "the loop's link was never made again"
        assert wait_for(lambda: end.stored() == [order], 10), end.stored()
        assert not end.loop.poll(0)  # the trade stream's link stood: the order path stayed up


@contextlib.contextmanager
def _robot_beside_an_exchange(pg_url: str, robot: str, proxied: bool = False):
    """A stand-in exchange's ROUTER (``linked``: its links made), a fast-path
    gateway of ``robot`` for it (not opened), the loop's socket and the order
    store; ``start_stream()`` runs the trade stream on a thread. With
    ``proxied``, the robot reaches the exchange through ``proxy``."""
    import threading
    from decimal import Decimal
    from types import SimpleNamespace

    import zmq

    from roboframe.core.gateway import Runtime
    from roboframe.core.instruments import Instrument
    from roboframe.core.streams import trade_stream
    from roboframe.store import open_store
    from roboframe.testing.helpers import free_port
    from roboframe.testing.tcpproxy import TcpProxy

    ctx = zmq.Context()
    exchange = ctx.socket(zmq.ROUTER)
    exchange.setsockopt(zmq.LINGER, 0)
    linked = exchange.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    port = free_port()
    exchange.bind(f"tcp://127.0.0.1:{port}")
    proxy = TcpProxy("127.0.0.1", port) if proxied else None
    runtime = Runtime(robot, "r1", ctx, f"inproc://{robot}-loop", None)
    loop = ctx.socket(zmq.PULL)
    loop.bind(runtime.loop_address)
    address = f"tcp://127.0.0.1:{proxy.port if proxy else port}"
    params = {"url": pg_url, "poll_ms": 200, "address": address}
    gw = FastGateway(params, {"Si": Instrument("Si", Decimal(1))}, robot=robot)
    store = open_store(pg_url)
    store.setup()  # the trade stream's work too, which may not be done when it is read
    threads = []

    def start_stream() -> None:
        thread = threading.Thread(target=trade_stream, args=(gw, runtime), daemon=True)
        thread.start()
        threads.append(thread)

    def stored() -> list:
        return [o.order for o in store.new_requests()[0] if o.robot == robot]

    try:
        yield SimpleNamespace(
            robot=robot, exchange=exchange, linked=linked, proxy=proxy, runtime=runtime,
            loop=loop, gw=gw, store=store, start_stream=start_stream, stored=stored,
        )  # fmt: skip
    finally:
        runtime.stop.set()
        for thread in threads:
            thread.join(10)
        gw.close()
        loop.close(linger=0)
        linked.close(linger=0)
        exchange.close(linger=0)
        if proxy is not None:
            proxy.close()
        store.close()
        ctx.destroy(linger=0)


def test_orders_the_loop_sent_before_the_trade_stream_linked_stay_on_the_socket(pg_url):
    """The loop's link can be made before the trade stream's (the loop's socket
    connects first, in the robot's start). The stream took its first link for a
    link made again: the loop's orders already out on its own link went the
    store's way as well, "sent before the link broke", when nothing broke."""
    import logging

    warned = []
    handler = logging.Handler()
    handler.emit = lambda record: warned.append(record.getMessage())
    logging.getLogger("roboframe").addHandler(handler)
    try:
        with _robot_beside_an_exchange(pg_url, f"{ROBOT}-first-link") as end:
            end.gw.open(end.runtime)
            end.gw.link()  # the trade stream's call, once the robot's lock is the run's
            assert end.linked.poll(5000), "the loop's link was never made"
            end.linked.recv_multipart()
            assert wait_for(end.gw.linked, 5), "the link was never made on the loop's side"
            end.gw.submit([NewOrder(f"{end.robot}-r1-1", "Si", "buy", 1, "limit", 90)])
            assert end.exchange.poll(5000), "not sent over the loop's link"
            end.exchange.recv_multipart()  # taken; its answer is the exchange's to give
            end.start_stream()
            assert end.linked.poll(5000), "the trade stream's link was never made"
            # the stream takes its link up once it serves, after its store's connect
            # (slow under load): the window below counts from there, or watches nothing
            assert end.runtime.ready.wait(10), "the trade stream never connected to its store"
            assert not wait_for(end.stored, 1.5), end.stored()  # the exchange has it
            assert not [m for m in warned if "through the store" in m], warned
    finally:
        logging.getLogger("roboframe").removeHandler(handler)


def test_an_orders_later_actions_go_the_way_it_went(pg_url):
    """An order the loop could not send itself (its link not made yet, or resent
    after a resume) goes the trade stream's way, to its socket or the store; a
    cancel of it sent straight once the link was made could overtake it, and the
    exchange refused it ("not open") and took the order after. Its later actions
    go the same way, in order; other orders' go straight."""
    from roboframe.core import codec
    from roboframe.core.events import Cancel

    with _lone_gateway(pg_url, f"{ROBOT}-in-order") as end:
        gw, router, address, robot = end.gw, end.router, end.address, end.robot
        early = NewOrder(f"{robot}-r1-1", "Si", "buy", 1, "limit", 90)
        gw.submit([early])  # nothing bound there yet: no link
        assert gw._pull.poll(5000) and codec.decode_actions(gw._pull.recv()) == [early]
        resent = NewOrder(f"{robot}-r0-7", "Si", "buy", 1, "limit", 91)
        gw.resubmit([resent])  # a resumed run's: through the store
        assert gw._pull.poll(5000), "not resent the trade stream's way"
        gw._pull.recv_multipart()
        router.bind(address)
        assert wait_for(gw.linked, 5), "the link was never made on the loop's side"
        for order in (early, resent):
            gw.submit([Cancel(order.client_id)])
            assert gw._pull.poll(5000), f"the cancel of {order.client_id} went straight"
            assert codec.decode_actions(gw._pull.recv()) == [Cancel(order.client_id)]
        later = NewOrder(f"{robot}-r1-2", "Si", "buy", 1, "limit", 89)
        gw.submit([later])
        assert router.poll(5000), "a new order did not leave the loop itself"
        assert codec.decode_actions(router.recv_multipart()[1]) == [later]
        assert not router.poll(100) and not gw._pull.poll(0)  # each one way only


def test_a_robot_restarted_at_once_is_heard_while_its_old_links_linger(pg_url):
    """A robot restarted at once (the supervisor, a quick second run; a killed
    host whose old connections the exchange has not seen end) links with the
    same identities as before: the exchange's ROUTER ignored the new links for
    good while the old ones stood, and the new run's orders sat in them, neither
    taken nor refused. The newest link takes the identity over."""
    import zmq

    running = RunningExchange(pg_url, robot=f"{ROBOT}-stale-dealer")
    stale = []
    for identity in (ROBOT.encode() + b"\x00orders", ROBOT.encode()):  # the old run's links
        sock = running.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity)
        sock.setsockopt(zmq.LINGER, 0)
        monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        sock.connect(running.orders)
        assert monitor.poll(5000), "the old run's link was never made"
        sock.disable_monitor()
        monitor.close(linger=0)
        stale.append(sock)
    second = None
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        second = stream(pg_url, running, "r2")
        # over the new link: with none made yet the order goes the store's way, which
        # the exchange answers whoever holds the identity (and the test tests nothing)
        assert wait_for(second.gw.linked, 5), "the link was never made on the robot's side"
        second.gw.submit([NewOrder(f"{ROBOT}-r2-1", "Si", "buy", 1, "limit", 80)])
        answers = second.events(1)
        assert [(a.client_id, a.status) for a in answers] == [(f"{ROBOT}-r2-1", "accepted")]
        assert running.exchange.counts["orders"] == 1
    finally:
        if second is not None:
            second.close()
        for sock in stale:
            sock.close(linger=0)
        running.close()


def test_a_cancel_made_while_the_link_is_down_does_not_overtake_its_lost_order(pg_url):
    """An order sent straight, taken by an exchange that then died unanswered, waits
    in the trade stream for the link to be made again, to go the store's way. Its
    cancel, made while the link was down, went to the store at once -- ahead of
    the order: the exchange refused it ("not open"), then took the order when the
    link was back, left working against the strategy's last word. The order goes
    to the store first, then its cancel."""
    import zmq

    from roboframe.core.events import Cancel
    from roboframe.store import open_store
    from roboframe.testing.helpers import free_port
    from tests.integration.exchange import order_row

    robot = f"{ROBOT}-cancel-behind"
    address = f"tcp://127.0.0.1:{free_port()}"
    params = {"url": pg_url, "poll_ms": 200, "address": address}
    end = RunningTradeStream(FastGateway, params, robot, run_id="r1")
    exchange = end.ctx.socket(zmq.ROUTER)  # the exchange, played: it takes, then dies
    exchange.setsockopt(zmq.LINGER, 0)
    linked = exchange.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    exchange.bind(address)
    store = open_store(pg_url)
    store.setup()
    running = back = None
    order = NewOrder(f"{robot}-r1-1", "Si", "buy", 1, "limit", 90)
    try:
        both_linked(linked, end.gw)
        end.gw.submit([order])
        assert exchange.poll(5000), "not sent over the link"
        exchange.recv_multipart()  # taken, never answered: the exchange hangs, then dies
        exchange.disable_monitor()
        exchange.close(linger=0)
        (down,) = end.events(1, timeout_ms=5000)
        assert down.args["status"] == "down", down
        assert wait_for(lambda: not end.gw.linked(), 5), "the loop's link stood"
        end.gw.submit([Cancel(order.client_id)])  # cancels go while the path is down

        def requested() -> list:
            return [a for _, who, a in store.new_requests()[1] if who == robot]

        assert wait_for(requested, 5), "the cancel never reached the store"
        running = RunningExchange(pg_url, fast=False, robot=f"{robot}-dealer")
        back = end.ctx.socket(zmq.ROUTER)  # the exchange's order socket, back
        back.setsockopt(zmq.LINGER, 0)
        assert wait_for(lambda: _bound(back, address), 10)
        row = order_row(pg_url, order.client_id, (1, 90, "cancelled", 0))
        assert row == (1, 90, "cancelled", 0), row
        assert not running.failure, running.failure
    finally:
        linked.close(linger=0)
        exchange.close(linger=0)
        if back is not None:
            back.close(linger=0)
        end.close()
        if running is not None:
            running.close()
        store.close()


def test_a_second_process_of_a_running_robot_leaves_its_links_alone(pg_url):
    """A second process of a running robot (another host, another supervisor) is
    refused by the robot's lock in the store; its sockets linked to the exchange
    before that, under the running robot's identities, which the exchange's
    ROUTER hands over to the newest link. The running robot's links were left
    standing without a peer, up to both ends' heartbeats: its next order sat in
    the exchange's side of its link until its heartbeats ran out, and the
    answers the exchange sent it went nowhere, for the rest of the run (the
    store brought them, written behind). The fast path's sockets link once
    the robot's lock is the run's."""
    import os
    import signal

    robot = f"{ROBOT}-twice"
    running = RunningExchange(pg_url, robot=f"{robot}-dealer")
    params = {"url": pg_url, "poll_ms": 200, "address": running.orders}
    first = RunningTradeStream(FastGateway, params, robot, run_id="r1")
    second = None
    writer = running.exchange.writer.proc
    try:
        running.price(Bar("Si", 1, 100, 100, 100, 100))
        assert wait_for(first.gw.linked, 5), "the link was never made on the robot's side"
        first.gw.submit([NewOrder(f"{robot}-r1-1", "Si", "buy", 1, "limit", 90)])
        assert [e.status for e in first.events(1)] == ["accepted"]
        second = RunningTradeStream(FastGateway, params, robot, run_id="r2")
        assert second.events(1, timeout_ms=10_000), "the second process was not stopped"
        assert "already runs" in second.runtime.failure[1], second.runtime.failure
        second.close()
        second = None
        os.kill(writer.pid, signal.SIGSTOP)  # the store behind: answers come over the links
        try:
            order = NewOrder(f"{robot}-r1-2", "Si", "buy", 1, "limit", 89)
            first.gw.submit([order])
            got = first.events(1, timeout_ms=5000)
        finally:
            os.kill(writer.pid, signal.SIGCONT)
        assert [(e.client_id, e.status) for e in got] == [(order.client_id, "accepted")], got
        assert not running.failure, running.failure
    finally:
        _close(running, first, second)


def _close(running, *ends) -> None:
    """The trade streams still open (None: closed already), then the exchange."""
    for end in ends:
        if end is not None:
            end.close()
    running.close()


@contextlib.contextmanager
def _lone_gateway(pg_url: str, robot: str):
    """A fast-path gateway of ``robot``, opened and linked as its trade stream
    would link it, with no trade stream running; the exchange's ROUTER, played
    here, not bound yet (``address``; ``linked``: its links made)."""
    from decimal import Decimal
    from types import SimpleNamespace

    import zmq

    from roboframe.core.gateway import Runtime
    from roboframe.core.instruments import Instrument
    from roboframe.testing.helpers import free_port

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    linked = router.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    address = f"tcp://127.0.0.1:{free_port()}"
    gw = FastGateway({"url": pg_url, "address": address},
                     {"Si": Instrument("Si", Decimal(1))}, robot=robot)  # fmt: skip
    try:
        gw.open(Runtime(robot, "r1", ctx, f"inproc://{robot}-loop", None))
        gw.link()  # the trade stream's call, once the robot's lock is the run's
        yield SimpleNamespace(robot=robot, gw=gw, router=router, linked=linked, address=address)
    finally:
        gw.close()
        linked.close(linger=0)
        router.close(linger=0)
        ctx.term()
