"""The ZeroMQ feed against a real PUB socket, over tcp and inproc.

The feed's :meth:`messages` is a generator: it receives only while the test
asks for the next item, so the test can let messages pile up on the SUB
socket and see them forwarded as one batch. Every wait is bounded: a
watchdog sets ``stop`` and the generator ends within one poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from decimal import Decimal

import pytest
import zmq

from roboframe.builtin.feeds.zmqsub import ZmqFeed
from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Tick
from roboframe.core.instruments import Instrument
from roboframe.errors import ConfigError

SI, RTS = "Si-12.26", "RTS-12.26"
INSTRUMENTS = {SI: Instrument(SI, Decimal(1)), RTS: Instrument(RTS, Decimal(10))}
TIMEOUT_S = 10


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


@pytest.fixture(params=["tcp", "inproc"])
def publisher(request, ctx):
    """A bound PUB socket and the address a feed connects to."""
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 0)
    if request.param == "tcp":
        address = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
    else:
        address = f"inproc://md-{id(pub)}"
        pub.bind(address)
    yield pub, address
    pub.close(linger=0)


def events_of(raw: bytes) -> list:
    msg = codec.decode(raw)
    return list(msg.events) if type(msg) is Batch else [msg]


class Running:
    """A feed's message generator, driven by the test, with a watchdog on ``stop``."""

    def __init__(self, feed: ZmqFeed) -> None:
        self.feed = feed
        self.stop = threading.Event()
        self.watchdog = threading.Timer(TIMEOUT_S, self.stop.set)
        self.watchdog.start()
        self.gen: Iterator[bytes] = feed.messages(self.stop)

    def next(self) -> bytes:
        raw = next(self.gen, None)
        assert raw is not None, "the feed gave nothing before the watchdog fired"
        return raw

    def until_live(self, pub: zmq.Socket) -> None:
        """Publish a marker until the subscription is up and the marker comes through."""
        marker = [SI.encode(), codec.encode(Tick(SI, -1, 1, 0))]
        sending = threading.Event()
        sending.set()

        def keep_sending() -> None:
            while sending.is_set() and not self.stop.is_set():
                pub.send_multipart(marker)
                time.sleep(0.01)

        thread = threading.Thread(target=keep_sending)
        thread.start()
        try:
            self.next()
        finally:
            sending.clear()
            thread.join(TIMEOUT_S)

    def collect(self, count: int) -> list[bytes]:
        """Messages until ``count`` real (ts >= 0) events arrived."""
        out: list[bytes] = []
        while sum(1 for e in events_of_all(out) if e.ts >= 0) < count:
            out.append(self.next())
        return out

    def close(self) -> None:
        self.stop.set()
        self.gen.close()
        self.watchdog.cancel()
        self.feed.close()


def events_of_all(messages: list[bytes]) -> list:
    return [e for raw in messages for e in events_of(raw)]


def make_feed(ctx, address, **params) -> ZmqFeed:
    feed = ZmqFeed({"address": address, **params}, INSTRUMENTS)
    feed.context = ctx
    return feed


def test_forwards_exact_bytes_of_subscribed_symbols_only(ctx, publisher):
    pub, address = publisher
    run = Running(make_feed(ctx, address, batch=1))
    try:
        run.until_live(pub)
        want = [Tick(SI, i, 92000 + i, 1) for i in range(20)]
        want += [Bar(RTS, 100 + i, 11000, 11001, 10999, 11000, 3) for i in range(5)]
        for event in want:
            pub.send_multipart([event.symbol.encode(), codec.encode(event)])
            pub.send_multipart([b"Si-12.26X", codec.encode(Tick(SI, 0, 1, 1))])  # prefix only
            pub.send_multipart([b"GAZP", codec.encode(Tick("GAZP", 0, 1, 1))])  # not ours
            pub.send_multipart([SI.encode()])  # one frame
        got = run.collect(len(want))
        real = [raw for raw in got if codec.decode(raw).ts >= 0]
        assert real == [codec.encode(e) for e in want]  # byte for byte, one event each
        assert run.feed.dropped >= 1
    finally:
        run.close()


def test_a_command_on_the_market_data_socket_is_not_forwarded(ctx, publisher):
    """A publisher's (or anyone's on its port) stop, flatten or fail went to the
    loop as if from the robot's own control endpoint, past its CURVE keys."""
    from roboframe.core.events import Control

    pub, address = publisher
    run = Running(make_feed(ctx, address, batch=1))
    try:
        run.until_live(pub)
        want = [Tick(SI, i, 92000 + i, 1) for i in range(5)]
        for event in want:
            for command in ("flatten", "stop", "fail"):
                pub.send_multipart([SI.encode(), codec.encode(Control(command, 0, {}))])
            pub.send_multipart([SI.encode(), b"\x92\x01\x02"])  # an array, not an event
            pub.send_multipart([event.symbol.encode(), codec.encode(event)])
        got = run.collect(len(want))
        assert [e for e in events_of_all(got) if e.ts >= 0] == want
        assert run.feed.malformed()["not a tick or a bar"] >= 16
    finally:
        run.close()


def test_waiting_messages_are_joined_into_batches(ctx, publisher):
    pub, address = publisher
    run = Running(make_feed(ctx, address, batch=8))
    try:
        run.until_live(pub)
        want = [Tick(SI, i, 92000 + i, 1) for i in range(30)]
        for tick in want:
            pub.send_multipart([SI.encode(), codec.encode(tick)])
        time.sleep(0.3)  # let them all reach the SUB queue while nobody reads
        got = run.collect(len(want))
        assert [e for e in events_of_all(got) if e.ts >= 0] == want
        sizes = [len(events_of(raw)) for raw in got]
        assert max(sizes) == 8 and len(got) < len(want)
        assert all(type(codec.decode(raw)) is Batch for raw in got if len(events_of(raw)) > 1)
    finally:
        run.close()


def test_stop_ends_the_feed_within_a_poll(ctx, publisher):
    _, address = publisher
    feed = make_feed(ctx, address)
    stop = threading.Event()
    out: list[bytes] = []
    thread = threading.Thread(target=lambda: out.extend(feed.messages(stop)))
    thread.start()
    time.sleep(0.2)
    started = time.monotonic()
    stop.set()
    thread.join(TIMEOUT_S)
    assert not thread.is_alive() and out == []
    assert time.monotonic() - started < 2
    assert feed._sock is None  # closed on the way out
    feed.close()  # and closing again is harmless


def test_is_live_only():
    assert ZmqFeed.live_only
    with pytest.raises(ConfigError, match="live only"):
        ZmqFeed({}, INSTRUMENTS).events()


def test_params_schema():
    import jsonschema

    schema = ZmqFeed.params_schema
    assert schema["additionalProperties"] is False
    assert schema["properties"]["batch"]["default"] == 256
    assert all(p.get("description") for p in schema["properties"].values())
    jsonschema.validate({"address": "tcp://10.0.0.1:5561", "batch": 1, "hwm": 0}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"address": "10.0.0.1:5561"}, schema)


def test_a_resumed_run_hears_how_much_market_time_it_missed(ctx, publisher, caplog):
    """A publisher does not replay what it sent while the robot was down: the
    first data after a resume is compared with the last the run handled."""
    pub, address = publisher
    run = Running(make_feed(ctx, address, batch=1))
    minute = 60 * 10**9
    last = 1_796_000_000 * 10**9  # a whole minute
    try:
        run.until_live(pub)
        run.feed.resume_after(last, {SI: 1})  # as the robot does before the loop starts
        later = Bar(RTS, last + 87 * minute + 5 * 10**9, 11000, 11001, 10999, 11000, 3)
        with caplog.at_level("WARNING", logger="roboframe.builtin.feeds.zmqsub"):
            pub.send_multipart([RTS.encode(), codec.encode(later)])
            pub.send_multipart([RTS.encode(), codec.encode(later)])
            got = run.collect(2)
    finally:
        run.close()
    assert [e for e in events_of_all(got) if e.ts >= 0] == [later, later]  # forwarded as ever
    (said,) = [r.getMessage() for r in caplog.records if "resumed" in r.getMessage()]
    assert f"{RTS} at 2026-11-30 02:20:25 UTC" in said and "comes 1h 27m 5s after" in said, said
