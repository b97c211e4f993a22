"""The ZeroMQ feed and the threaded paper gateway over real sockets."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
import zmq

from roboframe.builtin.feeds.zmqsub import ZmqFeed
from roboframe.builtin.paper import PaperGateway
from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Fill, NewOrder, OrderUpdate, Tick
from roboframe.core.gateway import Runtime
from roboframe.core.instruments import Instrument
from roboframe.core.streams import trade_stream

SI, RTS = "Si-12.26", "RTS-12.26"
INSTRUMENTS = {SI: Instrument(SI, Decimal(1)), RTS: Instrument(RTS, Decimal(10))}
TIMEOUT_MS = 5000


def recv_decoded(sock):
    assert sock.poll(TIMEOUT_MS), "nothing arrived in time"
    return codec.decode(sock.recv())


def subscribed(md) -> None:
    """Wait until the paper thread's SUB has subscribed at ``md`` (an XPUB, which
    hears it): what a PUB sends before, it drops."""
    assert md.poll(TIMEOUT_MS), "the paper thread never subscribed"
    assert md.recv() == b"\x01"  # to everything


@pytest.mark.parametrize("batch", [1, 64])
def test_zmq_feed_subscribes_per_symbol_and_forwards_bytes(batch):
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    feed = ZmqFeed({"address": f"tcp://127.0.0.1:{port}", "batch": batch}, {SI: INSTRUMENTS[SI]})
    feed.context = ctx
    stop = threading.Event()
    got: list[bytes] = []

    def consume():
        for raw in feed.messages(stop):
            got.append(raw)

    thread = threading.Thread(target=consume)
    thread.start()
    try:
        want = [Tick(SI, i, 92000 + i, 1) for i in range(50)]
        deadline = 0
        while not got and deadline < 100:  # until the subscription is live
            pub.send_multipart([SI.encode(), codec.encode(Tick(SI, -1, 1, 0))])
            threading.Event().wait(0.02)
            deadline += 1
        for tick in want:
            pub.send_multipart([SI.encode(), codec.encode(tick)])
            pub.send_multipart([RTS.encode(), codec.encode(Tick(RTS, 0, 1, 1))])  # not ours
            pub.send_multipart([b"Si-12.26X", codec.encode(Tick(SI, 0, 1, 1))])  # prefix only
        end = threading.Event()
        for _ in range(250):
            events = []
            for raw in list(got):
                msg = codec.decode(raw)
                events.extend(msg.events if isinstance(msg, Batch) else [msg])
            real = [e for e in events if e.ts >= 0]
            if len(real) >= len(want):
                break
            end.wait(0.02)
        assert real == want
    finally:
        stop.set()
        thread.join(5)
        pub.close(0)
        ctx.term()


def test_zmq_feed_is_live_only():
    from roboframe.errors import ConfigError

    with pytest.raises(ConfigError, match="live only"):
        ZmqFeed({}, INSTRUMENTS).events()


def test_paper_gateway_fills_through_the_trade_stream():
    ctx = zmq.Context()
    runtime = Runtime("paper-test", "r1", ctx, "inproc://paper-loop", "inproc://paper-md")
    loop = ctx.socket(zmq.PULL)
    loop.bind(runtime.loop_address)
    md = ctx.socket(zmq.XPUB)
    md.bind(runtime.market_data_address)
    gateway = PaperGateway({"commission": "1"}, INSTRUMENTS, robot="paper-test")
    gateway.open(runtime)
    thread = threading.Thread(target=trade_stream, args=(gateway, runtime))
    thread.start()
    try:
        subscribed(md)
        md.send(codec.encode(Bar(SI, 1, 100, 100, 100, 100)))
        gateway.submit([NewOrder("o1", SI, "buy", 2)])
        assert recv_decoded(loop) == OrderUpdate("o1", 1, "accepted")
        md.send(codec.encode_batch([codec.encode(Bar(SI, 2, 103, 104, 102, 103))]))
        assert recv_decoded(loop) == Fill("o1", 2, SI, "buy", 2, 103, "P1", "2")
    finally:
        runtime.stop.set()
        thread.join(5)
        gateway.close()
        loop.close(0)
        md.close(0)
        ctx.term()
    assert not thread.is_alive()


class InStep:
    """A paper gateway's trade stream kept in step with a hand-moved robot time:
    ``price(bar)`` publishes a bar and moves the robot there, as the data stream
    and the loop do, in that order."""

    def __init__(self, name: str, **runtime) -> None:
        self.ctx = zmq.Context()
        self.now = 0
        self.runtime = Runtime(name, "x", self.ctx, f"inproc://{name}-loop",
                               f"inproc://{name}-md", robot_time=lambda: self.now,
                               **runtime)  # fmt: skip
        self.loop = self.ctx.socket(zmq.PULL)
        self.loop.bind(self.runtime.loop_address)
        self.md = self.ctx.socket(zmq.XPUB)
        self.md.bind(self.runtime.market_data_address)
        self.gw = PaperGateway({}, INSTRUMENTS, robot=name)
        self.gw.open(self.runtime)
        self.thread = threading.Thread(target=trade_stream, args=(self.gw, self.runtime),
                                       name=f"{name}-paper")  # fmt: skip
        self.thread.start()
        subscribed(self.md)

    def price(self, bar) -> None:
        self.md.send(codec.encode(bar))
        self.now = max(self.now, bar.ts)

    def close(self) -> None:
        self.runtime.stop.set()
        self.thread.join(5)
        self.gw.close()
        self.loop.close(0)
        self.md.close(0)
        self.ctx.term()


def test_an_order_never_fills_at_the_bar_it_was_sent_on_whatever_the_threads_do(monkeypatch):
    """The paper thread read the market socket only when its poll said so, and
    orders always: a bar published, handled and ordered on between its poll and
    its read of orders reached it after the order, which filled at that bar's
    open -- a price from before the decision. Held here by a pause after each
    of its polls, as a thread switch under load would."""
    real_poll = zmq.Poller.poll

    def slow_poll(self, timeout=None):
        ready = real_poll(self, timeout)
        if threading.current_thread().name == "race-paper":
            threading.Event().wait(0.05)
        return ready

    monkeypatch.setattr(zmq.Poller, "poll", slow_poll)
    h = InStep("race")
    try:
        h.price(Bar(SI, 1, 100, 105, 95, 101))
        threading.Event().wait(0.01)  # the paper thread is inside its pause
        h.price(Bar(SI, 2, 200, 205, 195, 201))
        h.gw.submit([NewOrder("o1", SI, "buy", 1)])  # sent on bar 2
        assert recv_decoded(h.loop) == OrderUpdate("o1", 2, "accepted")
        h.price(Bar(SI, 3, 300, 305, 295, 301))
        assert recv_decoded(h.loop) == Fill("o1", 3, SI, "buy", 1, 300, "P1", "0")
    finally:
        h.close()


def test_a_price_the_loop_drops_as_too_far_ahead_holds_nothing_back():
    """A price stamped past loop.max_ahead (a wrong unit at the publisher) is
    dropped by the loop: the robot never reaches it. The paper exchange, holding
    prices until the robot reaches them, would hold every later price behind it
    and fill nothing more; it drops it too."""
    import time

    day = 86_400 * 10**9
    t0 = time.time_ns()
    h = InStep("ahead", max_ahead_ns=day)
    try:
        h.price(Bar(SI, t0, 100, 100, 100, 100))
        h.md.send(codec.encode(Bar(RTS, t0 + 2 * day, 5, 5, 5, 5)))  # the loop drops it
        h.price(Bar(SI, t0 + 60 * 10**9, 101, 101, 101, 101))
        h.gw.submit([NewOrder("o1", SI, "buy", 1)])
        assert recv_decoded(h.loop).status == "accepted"
        h.price(Bar(SI, t0 + 120 * 10**9, 102, 102, 102, 102))
        fill = recv_decoded(h.loop)
        assert (type(fill), fill.price) == (Fill, 102)
    finally:
        h.close()
