"""The loop over real ZeroMQ sockets and a real journal file."""

from __future__ import annotations

import threading
from contextlib import contextmanager

import pytest
import zmq

from roboframe.core import codec
from roboframe.core.events import Control, Fill, NewOrder, OrderUpdate, Tick
from roboframe.core.kernel import Kernel
from roboframe.core.loop import RoboLoop
from roboframe.core.strategy import Strategy
from roboframe.journal import JournalReader, JournalWriter
from roboframe.journal.format import ACTIONS, MESSAGE
from roboframe.testing.helpers import T0, make_spec

SI = "Si-12.26"
RECV_TIMEOUT_MS = 5000


class BuyEveryTenth(Strategy):
    def __init__(self):
        super().__init__({})
        self.n = 0

    at_first = None  # called as the first tick comes

    def on_tick(self, tick, ctx):
        if self.n == 0 and self.at_first is not None:
            self.at_first()
        self.n += 1
        if self.n % 10 == 0:
            return [ctx.buy(tick.symbol, 1)]
        return None


class RecordingGateway:
    def __init__(self):
        self.sent: list = []

    def submit(self, actions):
        self.sent.extend(actions)


def ticks(n: int) -> list[bytes]:
    return [codec.encode(Tick(SI, T0 + i, 92000 + i % 7, 1)) for i in range(n)]


def make_loop(tmp_path, name="run"):
    spec = make_spec()
    kernel = Kernel(spec, "r1", BuyEveryTenth())
    journal = JournalWriter(tmp_path / f"{name}.journal", {"robot": "test-robot"})
    gateway = RecordingGateway()
    return RoboLoop(kernel, journal, gateway, clock=lambda: 7), kernel, journal, gateway


def push_all(ctx, address, frames):
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDTIMEO, RECV_TIMEOUT_MS)
    sock.connect(address)
    for frame in frames:
        sock.send(frame)
    sock.close(linger=RECV_TIMEOUT_MS)


def serve(tmp_path, address, frames):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    if address.endswith(":*"):
        port = pull.bind_to_random_port(address[:-2])
        address = f"{address[:-2]}:{port}"
    else:
        pull.bind(address)
    loop, kernel, journal, gateway = make_loop(tmp_path)
    loop.start()
    stop = codec.encode(Control("stop", T0 + 10**9, {"reason": "test"}))
    producer = threading.Thread(target=push_all, args=(ctx, address, [*frames, stop]))
    producer.start()
    done = threading.Event()
    watchdog = threading.Timer(20, lambda: done.is_set() or loop.request_stop("watchdog"))
    watchdog.start()
    loop.run(pull, drain_ms=0)
    done.set()
    watchdog.cancel()
    producer.join(5)
    journal.close()
    pull.close()
    ctx.term()
    return loop, kernel, journal, gateway


@pytest.mark.parametrize("address", ["inproc://robo-test", "tcp://127.0.0.1:*"])
def test_loop_sequences_journals_and_sends(tmp_path, address):
    frames = ticks(200)
    loop, kernel, journal, gateway = serve(tmp_path, address, frames)
    assert loop.seq == 202  # start + 200 ticks + stop
    assert kernel.risk.state == "STOPPED"
    assert len(gateway.sent) == 20
    assert all(isinstance(a, NewOrder) for a in gateway.sent)
    reader = JournalReader(journal.path)
    records = list(reader.records())
    messages = [r for r in records if r.kind == MESSAGE]
    assert [r.seq for r in messages] == list(range(1, 203))
    assert [r.payload for r in messages[1:-1]] == frames
    assert all(r.recv_ns == 7 for r in messages)
    actions = [r for r in records if r.kind == ACTIONS]
    assert [r.seq for r in actions] == [1 + i for i in range(10, 201, 10)]
    first = codec.decode_outputs(actions[0].payload)
    assert first[0] == [gateway.sent[0]] and first[1] == []


def test_batches_get_one_sequence_number_per_event(tmp_path):
    frames = ticks(25)
    batch = codec.encode_batch(frames)
    loop, _kernel, journal, gateway = serve(tmp_path, "inproc://robo-batch", [batch])
    assert loop.seq == 27
    assert loop.messages == 3
    assert len(gateway.sent) == 2
    records = list(JournalReader(journal.path).records())
    actions = [r.seq for r in records if r.kind == ACTIONS]
    assert actions == [2 + 9, 2 + 19]  # the 10th and 20th tick of the batch starting at seq 2


MALFORMED = [
    (b"\xc1garbage", "not msgpack"),
    (b"", "not msgpack"),
    (codec.encode([999, "x", 1]), "unknown event kind"),
    (codec.encode({"kind": 101}), "not an event"),
    (codec.encode([101, SI, "not-a-time", 1]), "invalid field"),
    (codec.encode(NewOrder("x", SI, "buy", 1)), "unknown event kind"),
    (codec.encode_batch([]), "empty batch"),
    (b"\x92\x64\x91\xc1", "not msgpack"),
    # past 2262 (a time in the wrong unit): nothing downstream holds it -- the journal's
    # 64-bit readers, the stores, the analysis databases, timer arithmetic
    (codec.encode(Tick(SI, 2**63, 92000, 1)), "invalid field"),
    (codec.encode(Fill("x", T0, SI, "buy", 1, 2**64 - 1, "t")), "invalid field"),
]


def test_malformed_messages_are_counted_and_dropped(tmp_path, caplog):
    good = ticks(30)
    frames = []
    for i, frame in enumerate(good):
        frames.append(frame)
        if i < len(MALFORMED):
            frames.append(MALFORMED[i][0])
    frames.append(MALFORMED[0][0])  # a second one of a kind is counted, not logged again
    loop, _kernel, journal, _gateway = serve(tmp_path, "inproc://robo-bad", frames)
    expected: dict[str, int] = {}
    for _, kind in [*MALFORMED, MALFORMED[0]]:
        expected[kind] = expected.get(kind, 0) + 1
    assert loop.malformed == expected
    assert loop.seq == 32  # every good event, nothing else
    records = [r for r in JournalReader(journal.path).records() if r.kind == MESSAGE]
    assert [r.payload for r in records[1:-1]] == good
    logged = [r for r in caplog.records if "malformed message dropped" in r.getMessage()]
    assert len(logged) == len(expected)


def test_process_without_sockets_or_threads(tmp_path):
    loop, kernel, journal, gateway = make_loop(tmp_path, "direct")
    loop.start()
    for frame in ticks(10):
        loop.process(frame)
    (order,) = gateway.sent
    loop.process(codec.encode(OrderUpdate(order.client_id, T0, "accepted")))
    loop.process(codec.encode(Fill(order.client_id, T0, SI, "buy", 1, 92000, "t1")))
    assert kernel.ctx.position(SI) == 1
    assert loop.seq == 13
    journal.close()
    kinds = [r.kind for r in JournalReader(journal.path).records()]
    assert kinds == [MESSAGE] * 11 + [ACTIONS] + [MESSAGE] * 2


def test_actions_are_flushed_to_the_file_before_the_gateway_sees_them(tmp_path):
    loop, _kernel, journal, gateway = make_loop(tmp_path, "flush")
    seen_sizes = []
    gateway.submit = lambda actions: seen_sizes.append(journal.path.stat().st_size)
    loop.start()
    for frame in ticks(10):
        loop.process(frame)
    assert len(seen_sizes) == 1
    records = list(JournalReader(journal.path).records())  # readable while still open
    assert records[-1].kind == ACTIONS and records[-1].seq == 11
    journal.close()


def test_idle_loop_flushes_the_journal_every_flush_ms(tmp_path):
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.bind("inproc://robo-idle")
    loop, _kernel, journal, _gateway = make_loop(tmp_path, "idle")
    loop.start()  # buffered, not yet in the file
    size_before = journal.path.stat().st_size
    timer = threading.Timer(0.6, lambda: loop.request_stop("test"))
    timer.start()
    loop.run(pull, drain_ms=0, flush_ms=50)
    timer.join()
    assert size_before < journal.path.stat().st_size  # flushed while idle, before close
    records = list(JournalReader(journal.path).records())
    assert [r.seq for r in records if r.kind == MESSAGE] == [1, 2]
    journal.close()
    pull.close()
    ctx.term()


class TakeProfit(Strategy):
    """Once long, a sell limit for the whole position."""

    def __init__(self):
        super().__init__({})

    def on_fill(self, fill, ctx):
        return [ctx.sell(SI, ctx.position(SI), price=fill.price + 20)]


def long_two_then(tmp_path, strategy, first, later=(), drain_ms=2_000, **sections):
    """A loop on a real socket, its robot long 2 Si: ``first`` is sent, then after
    0.3 s ``later``, while the loop runs until it stops (drain_ms after a stop at
    most). The kernel and what the gateway was sent."""
    kernel = Kernel(make_spec(**sections), "r1", strategy)
    journal = JournalWriter(tmp_path / "run.journal", {"robot": "test-robot"})
    gateway = RecordingGateway()
    loop = RoboLoop(kernel, journal, gateway, clock=lambda: 7)
    kernel.orders.add(NewOrder("entry", SI, "buy", 2), T0)
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    address = f"inproc://robo-{tmp_path.name}"
    pull.bind(address)
    loop.start()
    sender = threading.Thread(
        target=lambda: (
            push_all(
                ctx,
                address,
                map(codec.encode, [Fill("entry", T0, SI, "buy", 2, 100, "t1"), *first]),
            ),
            threading.Event().wait(0.3),
            push_all(ctx, address, map(codec.encode, later)),
        )
    )
    sender.start()
    loop.run(pull, drain_ms=drain_ms)
    sender.join(5)
    journal.close()
    pull.close()
    ctx.term()
    return kernel, [a for a in gateway.sent if isinstance(a, NewOrder)]


TP = "test-robot-r1-1"  # the take-profit's client id


def test_a_stop_right_after_flatten_waits_for_the_closing_order(tmp_path):
    """``ctl flatten`` then ``ctl stop`` at once: the stop comes before the
    take-profit's cancel is answered. The loop drains until the flatten has
    sent its closing order, or the robot would stop still long."""
    first = [OrderUpdate(TP, T0, "accepted"), Control("flatten", T0), Control("stop", T0)]
    later = [OrderUpdate(TP, T0, "cancelled")]
    kernel, sent = long_two_then(tmp_path, TakeProfit(), first, later)
    assert [(a.side, a.qty) for a in sent if a.type == "market"] == [("sell", 2)]
    assert kernel.flattening == {}


def test_a_stop_that_cancels_open_orders_waits_for_the_answers(tmp_path):
    """``open_orders_on_stop: cancel``: the stop sends the take-profit's cancel and
    waits (up to drain_ms) for its answer, as for an order not yet acknowledged.
    It returned at once, so the robot never heard the cancel, or the fill that may
    come instead, and its summary called the cancelled order open."""
    first = [OrderUpdate(TP, T0, "accepted"), Control("stop", T0)]
    later = [OrderUpdate(TP, T0, "cancelled")]
    kernel, _ = long_two_then(
        tmp_path, TakeProfit(), first, later, loop={"open_orders_on_stop": "cancel"}
    )
    assert kernel.orders.orders[TP].status == "cancelled"
    assert not kernel.orders.open


def test_a_stop_that_cannot_wait_for_a_flatten_says_the_position_stays_open(tmp_path, caplog):
    """``ctl flatten`` and ``ctl stop`` at 19:00, and the exchange never answers the
    take-profit's cancel within ``drain_ms``: the robot stops still long. It used to
    end without a word about it; now the log names the flatten it could not finish."""
    first = [OrderUpdate(TP, T0, "accepted"), Control("flatten", T0), Control("stop", T0)]
    with caplog.at_level("WARNING", logger="roboframe.core.loop"):
        kernel, _ = long_two_then(tmp_path, TakeProfit(), first, drain_ms=300)
    assert kernel.flattening == {SI: [TP]}
    assert kernel.book.positions[SI].qty == 2
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("flatten" in m and SI in m and "position" in m for m in warned), warned


@pytest.mark.parametrize("comes_back", [True, False])
def test_flatten_and_stop_while_the_order_path_is_down(tmp_path, caplog, comes_back):
    """``ctl flatten; ctl stop`` during a store outage: the closing order waits for
    the order path, and the stop's drain waits for it too. Back up within
    ``drain_ms``, the position is closed; still down, the log says it stays open."""
    first = [
        Control("gateway", T0, {"status": "down", "reason": "store unreachable"}),
        Control("flatten", T0),
        Control("stop", T0),
    ]
    later = [Control("gateway", T0, {"status": "up"})] if comes_back else []
    with caplog.at_level("WARNING", logger="roboframe.core.loop"):
        kernel, sent = long_two_then(
            tmp_path, Strategy({}), first, later, drain_ms=1_500 if comes_back else 600
        )
    closing = [(a.side, a.qty) for a in sent]
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if comes_back:
        assert closing == [("sell", 2)]
        assert kernel.closing_owed == []
    else:
        assert closing == []
        assert kernel.closing_owed == [SI]
        assert any("order path stayed down" in m and f"{SI} +2" in m for m in warned), warned


HOUR = 3600 * 10**9
YEARS_36 = 36 * 365 * 86400 * 10**9


def live_loop(tmp_path, name, wall_clock=True):
    """A loop whose host clock reads ``T0``, dropping live data an hour past it."""
    kernel = Kernel(make_spec(), "r1", BuyEveryTenth())
    journal = JournalWriter(tmp_path / f"{name}.journal", {"robot": "test-robot"})
    loop = RoboLoop(
        kernel, journal, RecordingGateway(), clock=lambda: T0, wall_clock=wall_clock,
        max_ahead_ns=HOUR,
    )  # fmt: skip
    return loop, kernel, journal


def test_market_data_from_the_future_is_dropped_before_the_journal(tmp_path, caplog):
    """One tick stamped decades ahead (a wrong time unit, a two-digit year, a broken
    clock at the publisher) would move the robot's time there and leave it deaf to
    every later tick, also after every resume. It is dropped from its batch, counted
    and logged; the ticks around it, one of them from a clock skewed by 30 min, are
    handled and journaled as a batch of their own."""
    loop, kernel, journal = live_loop(tmp_path, "future")
    before, garbage, skewed = (Tick(SI, T0 + d, 92000, 1) for d in (-60, YEARS_36, HOUR // 2))
    with caplog.at_level("ERROR", logger="roboframe.core.loop"):
        loop.process(codec.encode_batch([codec.encode(e) for e in (before, garbage, skewed)]))
        loop.process(codec.encode(garbage))  # alone: nothing is left to journal
    assert loop.malformed == {"time too far ahead": 2}
    assert (loop.seq, kernel.now) == (2, skewed.ts)
    journal.close()
    (record,) = [r for r in JournalReader(journal.path).records() if r.kind == MESSAGE]
    assert list(codec.decode(record.payload).events) == [before, skewed]
    (said,) = [r.getMessage() for r in caplog.records]  # the first is logged, not each
    assert f"{SI} at 2062-11-09 11:06:40 UTC is 13140d ahead" in said, said
    assert "(loop.max_ahead 1h)" in said, said


def test_fills_from_the_future_and_recorded_feeds_pass(tmp_path):
    """Only live market data is checked: a fill is never dropped, and a recorded feed
    (no wall clock: a backtest, a file replayed by ``run``) has its own times."""
    loop, kernel, _journal = live_loop(tmp_path, "fills")
    loop.process(codec.encode(Fill("x-1", T0 + YEARS_36, SI, "buy", 1, 92000, "t1")))
    assert loop.seq == 1 and loop.malformed == {}
    recorded, kernel, _journal = live_loop(tmp_path, "recorded", wall_clock=False)
    recorded.process(codec.encode(Tick(SI, T0 + YEARS_36, 92000, 1)))
    assert recorded.seq == 1 and kernel.now == T0 + YEARS_36


class Idle(Strategy):
    def __init__(self):
        super().__init__({})


@pytest.mark.parametrize("fills", [True, False])
def test_a_stop_right_after_flatten_waits_for_the_closing_order_to_fill(tmp_path, caplog, fills):
    """``ctl flatten; ctl stop``: the closing order was accepted, not yet filled,
    and the loop returned at once: the journal kept the position open while the
    exchange filled the order a moment later (the store flat), without a word.
    The stop's drain waits for the fill, and says so when it does not come."""
    close = "test-robot-r1-1"  # the flatten's closing order
    first = [Control("flatten", T0), OrderUpdate(close, T0, "accepted"), Control("stop", T0)]
    later = [Fill(close, T0, SI, "sell", 2, 99, "t2")] if fills else []
    with caplog.at_level("WARNING", logger="roboframe.core.loop"):
        kernel, sent = long_two_then(tmp_path, Idle(), first, later, drain_ms=1_500)
    assert [(a.client_id, a.side, a.qty) for a in sent] == [(close, "sell", 2)]
    assert kernel.book.positions[SI].qty == (0 if fills else 2)
    warned = [r.getMessage() for r in caplog.records if "closing orders" in r.getMessage()]
    assert bool(warned) is not fills


@contextmanager
def burst(tmp_path, name: str, n: int):
    """A started loop on an inproc socket, ``n`` ticks pushed at it at once; its
    socket, the loop, its kernel and its gateway. Closed after."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind(f"inproc://robo-{name}")
    loop, kernel, journal, gateway = make_loop(tmp_path, name)
    producer = threading.Thread(target=push_all, args=(ctx, f"inproc://robo-{name}", ticks(n)))
    producer.start()
    loop.start()
    try:
        yield pull, loop, kernel, gateway
    finally:
        producer.join(5)
        journal.close()
        pull.close()
        ctx.term()


def test_a_stop_asked_under_load_comes_within_sixteen_messages_and_ends_the_data(tmp_path):
    """A signal's or --duration's stop was looked at every 256 messages: at 200 a
    second, over a second late. And after on_stop the strategy saw the data the
    drain took (and its orders were refused): 223 bars after a stop. (A stop
    asked before the loop runs comes before any message: see the next test.)"""
    with burst(tmp_path, "busy", 500) as (pull, loop, kernel, _gateway):
        strategy = kernel.strategy
        strategy.at_first = lambda: loop.request_stop("interrupted")  # a signal mid-burst
        loop.run(pull, drain_ms=0)
        assert 1 <= strategy.n <= 16
        assert kernel.stop_reason == "interrupted"


def test_a_stop_asked_before_the_loop_runs_comes_before_any_message(tmp_path):
    """``run --finish`` asks its stop as the robot starts: served first, a burst of
    market data reached the strategy, whose orders went out, before the stop."""
    with burst(tmp_path, "first", 100) as (pull, loop, kernel, gateway):
        loop.request_stop("finished")
        loop.run(pull, drain_ms=0)
        assert kernel.strategy.n == 0 and gateway.sent == []
        assert kernel.stop_reason == "finished"


def serve_frames(tmp_path, frames, failure=None, drain_ms=5000, name="frames"):
    """``frames`` into a loop whose streams say ``failure`` (or nothing); the loop
    served to its end, and how long that took."""
    import time

    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind("inproc://robo-frames")
    loop, kernel, journal, _ = make_loop(tmp_path, name)
    loop.failed_by = lambda: failure
    loop.start()
    producer = threading.Thread(target=push_all, args=(ctx, "inproc://robo-frames", frames))
    producer.start()
    started = time.monotonic()
    loop.run(pull, drain_ms=drain_ms)
    took = time.monotonic() - started
    producer.join(5)
    journal.close()
    pull.close()
    ctx.term()
    return loop, kernel, journal, took


FAIL = codec.encode(Control("fail", 0))


def test_a_fail_no_stream_said_is_malformed_and_the_run_goes_on(tmp_path):
    """A publisher sending the streams' fail command ended the run, exit 0, its
    position unmanaged. Only a stream that set the runtime's failure ends it."""
    stop = codec.encode(Control("stop", T0 + 10**9, {"reason": "test"}))
    data = ticks(10)
    loop, kernel, _, _ = serve_frames(tmp_path, [*data[:5], FAIL, *data[5:], stop], drain_ms=0)
    assert loop.failure is None and kernel.stop_reason == "test"
    assert loop.malformed == {"forged fail": 1}
    assert kernel.strategy.n == 10


def test_a_failure_ends_the_run_unfinished_and_after_the_stop_only_a_gateways_ends_the_drain(
    tmp_path,
):
    """Before the stop a failure ends the run unfinished. After it the stop stands:
    a dead feed is nothing to the drain, which waits for the unanswered order (it
    was cut short, the run reported FAILED, and a supervisor restarted a robot the
    trader had stopped); a dead gateway answers nothing more: the drain ends."""
    from roboframe.journal.format import CLOSED, NOTE, decode_note

    loop, kernel, _, _ = serve_frames(tmp_path, [*ticks(10), FAIL], ("feed", "feed failed: x"))
    assert loop.failure == "feed failed: x" and kernel.risk.state == "ACTIVE"
    stop = codec.encode(Control("stop", 0, {"reason": "ctl"}))
    for what, waited in (("feed", True), ("gateway", False)):
        loop, kernel, journal, took = serve_frames(
            tmp_path, [*ticks(10), stop, FAIL], (what, f"{what} failed: x"), 1500, what
        )
        assert loop.failure is None and kernel.stop_reason == "ctl"
        assert kernel.orders.unanswered() == 1  # the buy of tick 10
        assert (took >= 1.4) is waited, what
        notes = [decode_note(r.payload) for r in JournalReader(journal.path).records()
                 if r.kind == NOTE]  # fmt: skip
        assert [n["note"] for n in notes] == [CLOSED]
