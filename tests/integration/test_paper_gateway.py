"""The threaded paper gateway over real sockets, inproc and tcp.

The test plays the runtime: it binds a PULL socket as the loop, binds a PUB
at ``runtime.market_data_address`` as the data stream's tap, and runs the
real trade-stream thread. To know the exchange has seen a price before it
goes on, it sends a probe cancel: the exchange answers every cancel of an
unknown order with a rejection stamped with the last market ts it saw.
"""

from __future__ import annotations

import itertools
import threading
import time
from decimal import Decimal

import jsonschema
import pytest
import zmq

from roboframe.builtin.paper import PaperGateway
from roboframe.core import codec
from roboframe.core.events import Bar, Cancel, Fill, NewOrder, OrderUpdate, Replace, Tick
from roboframe.core.gateway import Runtime
from roboframe.core.instruments import Instrument
from roboframe.core.streams import trade_stream
from roboframe.errors import ConfigError

SI, RTS = "Si-12.26", "RTS-12.26"
INSTRUMENTS = {SI: Instrument(SI, Decimal(1)), RTS: Instrument(RTS, Decimal(10))}
TIMEOUT_MS = 5000


class Harness:
    """A runtime, the loop's PULL, the market-data PUB and a running paper gateway."""

    def __init__(self, transport: str, params: dict, resumed: tuple | None = None) -> None:
        self.ctx = zmq.Context()
        self.loop = self.ctx.socket(zmq.PULL)
        self.md = self.ctx.socket(zmq.PUB)
        for sock in (self.loop, self.md):
            sock.setsockopt(zmq.LINGER, 0)
        if transport == "tcp":
            loop_address = bind_random(self.loop)
            md_address = bind_random(self.md)
        else:
            loop_address, md_address = "inproc://test-loop", "inproc://test-md"
            self.loop.bind(loop_address)
            self.md.bind(md_address)
        self.runtime = Runtime("paper-test", "r1", self.ctx, loop_address, md_address)
        if resumed is not None:  # (the journal's last seq, lots filled by open order)
            self.runtime.resumed_seq, self.runtime.resumed_filled = resumed
        self.gateway = PaperGateway(params, INSTRUMENTS, robot="paper-test")
        self.gateway.open(self.runtime)
        self.thread = threading.Thread(target=trade_stream, args=(self.gateway, self.runtime))
        self.thread.start()
        self.probes = itertools.count()

    def recv(self):
        assert self.loop.poll(TIMEOUT_MS), "the gateway sent nothing in time"
        return codec.decode(self.loop.recv())

    def quiet(self, ms: int = 200) -> bool:
        return not self.loop.poll(ms)

    def publish(self, *events) -> None:
        raw = [codec.encode(e) for e in events]
        self.md.send(raw[0] if len(raw) == 1 else codec.encode_batch(raw))

    def seen(self) -> int:
        """The last market ts the exchange has seen, asked with a probe cancel."""
        probe = f"probe-{next(self.probes)}"
        self.gateway.submit([Cancel(probe)])
        answer = self.recv()
        assert answer.client_id == probe and answer.status == "cancel_rejected"
        return answer.ts

    def wait_seen(self, ts: int) -> None:
        """Probe until the exchange has seen market data up to ``ts``."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while self.seen() != ts:
            assert time.monotonic() < deadline, f"the exchange never saw ts {ts}"
            time.sleep(0.01)

    def sync(self, *events) -> None:
        """Publish until the exchange has seen the last of ``events`` (PUB may drop early ones)."""
        deadline = time.monotonic() + TIMEOUT_MS / 1000
        while self.seen() != events[-1].ts:
            assert time.monotonic() < deadline, "the exchange never saw the market data"
            self.publish(*events)
            time.sleep(0.01)

    def close(self) -> None:
        self.runtime.stop.set()
        self.thread.join(TIMEOUT_MS / 1000)
        alive = self.thread.is_alive()
        self.gateway.close()
        self.loop.close(linger=0)
        self.md.close(linger=0)
        self.ctx.term()
        assert not alive, "the trade stream did not stop"


def bind_random(sock: zmq.Socket) -> str:
    return f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"


@pytest.fixture(params=["inproc", "tcp"])
def transport(request):
    return request.param


def harness(transport, **params):
    return Harness(transport, params)


def test_orders_fill_against_published_market_data(transport):
    h = harness(transport, commission="1.5", slippage_ticks=1)
    try:
        h.sync(Bar(SI, 100, 100, 100, 100, 100))
        h.gateway.submit(
            [NewOrder("o1", SI, "buy", 2), NewOrder("o2", SI, "sell", 1, "limit", 105)]
        )
        assert h.recv() == OrderUpdate("o1", 100, "accepted")
        assert h.recv() == OrderUpdate("o2", 100, "accepted")
        assert h.seen() == 100  # both orders are in before the next price
        # a batch, as the data stream sends when unpaced; o2's 105 is touched, not crossed
        h.publish(Bar(RTS, 160, 11000, 11000, 11000, 11000), Bar(SI, 160, 103, 105, 102, 104))
        assert h.recv() == Fill("o1", 160, SI, "buy", 2, 104, "P1", "3.0")
        assert h.quiet()
        h.publish(Tick(SI, 200, 106, 1))
        assert h.recv() == Fill("o2", 200, SI, "sell", 1, 105, "P2", "1.5")
        h.gateway.submit([Cancel("o1")])
        assert h.recv() == OrderUpdate("o1", 200, "cancel_rejected", "cancel: order not open")
        assert h.quiet()
    finally:
        h.close()


@pytest.mark.parametrize("pending", [True, False])
def test_a_resumed_run_gets_fills_of_new_ids_and_no_lots_twice(transport, pending):
    """After ``run --resume`` the paper engine starts empty: its trade ids began
    at P1 again, so the kernel, which remembers the journal's, dropped real fills
    as duplicates; and an open order placed anew for the lots it had left
    counted a replace's total (pending at the crash, or sent after it) from none
    filled: an overfill."""
    h = Harness(transport, {}, resumed=(42, {"b": 4}))
    try:
        h.sync(Bar(SI, 100, 100, 100, 100, 100))
        # b: buy 10 @ 90, 4 filled before the crash; then a replace to 8 @ 101
        resent = [NewOrder("b", SI, "buy", 6, "limit", 90)]
        if pending:  # sent before the crash, unanswered: sent again with the order
            h.gateway.resubmit([*resent, Replace("b", 8, 101)])
        else:  # sent by the resumed run
            h.gateway.resubmit(resent)
            h.gateway.submit([Replace("b", 8, 101)])
        assert h.recv() == OrderUpdate("b", 100, "replaced")  # rested again: no second ack
        h.publish(Bar(SI, 160, 100, 100, 99, 100))
        assert h.recv() == Fill("b", 160, SI, "buy", 4, 100, "P42.1", "0")  # 4 + 4 = 8
        h.publish(Bar(SI, 220, 99, 99, 95, 96))
        h.wait_seen(220)
        assert h.quiet()
    finally:
        h.close()


def test_partial_fill_cancel_and_reject(transport):
    h = harness(transport)
    try:
        h.sync(Tick(SI, 10, 100, 1))
        h.gateway.submit([NewOrder("b", SI, "buy", 5, "limit", 100)])
        h.gateway.submit([NewOrder("x", "GAZP", "buy", 1)])
        assert h.recv() == OrderUpdate("b", 10, "accepted")
        assert h.recv() == OrderUpdate("x", 10, "rejected", "unknown symbol GAZP")
        assert h.seen() == 10
        h.publish(Tick(SI, 20, 99, 2))
        assert h.recv() == Fill("b", 20, SI, "buy", 2, 100, "P1", "0")
        assert h.seen() == 20
        h.gateway.submit([Cancel("b")])
        assert h.recv() == OrderUpdate("b", 20, "cancelled")
        h.publish(Tick(SI, 30, 90, 0))
        h.wait_seen(30)
        assert h.quiet()
    finally:
        h.close()


def test_malformed_market_data_is_skipped(transport):
    h = harness(transport)
    try:
        h.sync(Bar(SI, 5, 100, 100, 100, 100))
        h.gateway.submit([NewOrder("m", SI, "sell", 1)])
        assert h.recv() == OrderUpdate("m", 5, "accepted")
        assert h.seen() == 5
        h.md.send(b"\x93not an event")
        h.publish(Bar(SI, 6, 101, 101, 101, 101))
        assert h.recv() == Fill("m", 6, SI, "sell", 1, 101, "P1", "0")
    finally:
        h.close()


def test_fill_at_close(transport):
    h = harness(transport, fill_at="close")
    try:
        h.sync(Bar(SI, 100, 100, 103, 99, 102))
        h.gateway.submit([NewOrder("c", SI, "buy", 1)])
        assert h.recv() == OrderUpdate("c", 100, "accepted")
        assert h.recv() == Fill("c", 100, SI, "buy", 1, 102, "P1", "0")
    finally:
        h.close()


def test_stops_promptly_without_any_traffic(transport):
    h = harness(transport)
    time.sleep(0.2)
    started = time.monotonic()
    h.close()
    assert time.monotonic() - started < 2


def test_submit_never_blocks_before_the_trade_stream_runs():
    ctx = zmq.Context()
    runtime = Runtime("paper-test", "r2", ctx, "inproc://nobody", "inproc://no-md")
    gateway = PaperGateway({}, INSTRUMENTS, robot="paper-test")
    gateway.open(runtime)
    try:
        started = time.monotonic()
        for i in range(1000):
            gateway.submit([NewOrder(f"o{i}", SI, "buy", 1)])
        assert time.monotonic() - started < 2
    finally:
        gateway.close()  # both ends of the order pipe: the term below would wait for one left
        ctx.term()


def test_bad_params_fail_at_open():
    ctx = zmq.Context()
    runtime = Runtime("paper-test", "r3", ctx, "inproc://x", "inproc://y")
    try:
        with pytest.raises(ConfigError, match="commission"):
            PaperGateway({"commission": "two"}, INSTRUMENTS, robot="t").open(runtime)
    finally:
        ctx.term()


@pytest.mark.parametrize(
    ("params", "valid"),
    [
        ({}, True),
        ({"commission": 2.0, "slippage_ticks": 1, "fill_at": "close"}, True),
        ({"commission": "0.25"}, True),
        ({"commission": "two"}, False),
        ({"commission": -1}, False),
        ({"slippage_ticks": -1}, False),
        ({"slippage_ticks": 1.5}, False),
        ({"fill_at": "open"}, False),
        ({"latency_ms": 5}, False),
    ],
)
def test_params_schema(params, valid):
    schema = PaperGateway.params_schema
    assert schema["additionalProperties"] is False
    assert all(p.get("description") for p in schema["properties"].values())
    if valid:
        jsonschema.validate(params, schema)
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(params, schema)
