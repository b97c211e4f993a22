"""Hostile frames on the sockets a robot listens on: the loop's PULL and the control REP.

One real loop serves a real tcp PULL socket for a whole hypothesis run; each case
pushes garbage interleaved with valid events and waits until the loop has taken them.
Afterwards the journal must hold exactly the valid messages, replay must verify, and
the kernel must equal a clean kernel fed only the valid events. The control endpoint
of a running LiveRobot gets random bytes, wrong JSON, unknown commands and huge
requests over raw REQ sockets: each gets ``{"ok": false}``, nothing is journaled, and
``status`` still answers.
"""

from __future__ import annotations

import json
import threading

import msgspec
import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roboframe.control import send_command
from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Control, Fill, OrderUpdate, Tick, Timer
from roboframe.core.kernel import Kernel
from roboframe.core.loop import MAX_MESSAGE_BYTES, RoboLoop, malformed_kind
from roboframe.core.robot import LiveRobot, RunOptions, journal_header, make_strategy
from roboframe.core.streams import CONTROL_MAX_BYTES
from roboframe.journal import JournalReader, JournalWriter
from roboframe.journal.format import MESSAGE
from roboframe.replay import verify
from roboframe.testing.helpers import T0, make_spec, wait_for

from .test_fuzz_codec import mutated

SI = "Si-12.26"
TIMEOUT_MS = 5000
SETTINGS = {
    "fast": settings(
        max_examples=60,
        derandomize=True,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    ),
    "long": settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck)),
}


class Gateway:
    def __init__(self):
        self.sent: list = []

    def submit(self, actions):
        self.sent.extend(actions)


# -- valid events: out of order in time, repeated fills ------------------------------

TS = st.integers(T0 - 10**12, T0 + 10**12)
PRICE = st.integers(91_000, 93_000)
BARS = st.builds(
    lambda ts, c, sym: Bar(sym, ts, c, c + 5, c - 5, c, 10), TS, PRICE, st.sampled_from([SI, "XX"])
)
TICKS = st.builds(lambda ts, p: Tick(SI, ts, p, 1), TS, PRICE)
FILLS = st.builds(
    lambda cid, ts, side, qty, p, tid: Fill(f"test-robot-r1-{cid}", ts, SI, side, qty, p, tid),
    st.integers(1, 4),
    TS,
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 3),
    PRICE,
    st.sampled_from(["T1", "T2", "T3"]),  # few trade ids: repeats are duplicates
)
UPDATES = st.builds(
    lambda cid, ts, status: OrderUpdate(f"test-robot-r1-{cid}", ts, status),
    st.integers(1, 6),
    TS,
    st.sampled_from(["accepted", "rejected", "cancelled", "cancel_rejected"]),
)
TIMERS = st.builds(Timer, st.sampled_from(["a", "b"]), TS)
VALID = st.one_of(BARS, TICKS, FILLS, UPDATES, TIMERS)
VALID_FRAME = VALID.map(codec.encode) | st.lists(VALID, min_size=1, max_size=5).map(
    lambda events: codec.encode(Batch(events))
)

# -- garbage: bytes, empty, wrong shapes, unknown kinds, garbage in batches ----------

GARBAGE = st.one_of(
    st.binary(max_size=200),
    st.just(b""),
    mutated(),
    st.builds(lambda k, rest: codec.encode([k, *rest]), st.integers(107, 150), st.lists(st.none())),
    st.builds(lambda junk: codec.encode_batch([codec.encode(Tick(SI, T0, 1)), junk]), st.binary()),
    st.just(codec.encode_batch([])),
    st.just(b"\x94\x69\xa1x\x01\x81\xa1a" + b"\x91" * 5000 + b"\xc0"),  # args nested too deep
    st.just(codec.encode([104, "x", 1, SI, "hold", 1, 1, "t"])),  # a bad side
)


_OUTER = msgspec.msgpack.Decoder(tuple[int, list[msgspec.Raw]])  # a batch's frame


def classify(raw: bytes) -> tuple[bytes | None, list[str]] | None:
    """What the loop must make of ``raw``: the message it takes (None: nothing)
    and the malformed kinds it counts; None for a frame the test skips."""
    try:
        msg = codec.decode(raw)
    except codec.DECODE_ERRORS as exc:
        return _salvaged(raw, exc)
    if type(msg) is Batch and not msg.events:
        return None, ["empty batch"]
    events = msg.events if type(msg) is Batch else (msg,)
    if any(type(e) is Control for e in events):  # a mutated frame became a command: skip it
        return None
    return raw, []


def _salvaged(raw: bytes, exc: Exception) -> tuple[bytes | None, list[str]] | None:
    """A batch whose frame reads keeps its good events; anything else is dropped whole."""
    try:
        kind, parts = _OUTER.decode(raw)
    except codec.DECODE_ERRORS:
        return None, [malformed_kind(exc)]
    if kind != 100:
        return None, [malformed_kind(exc)]
    good, bad = [], []
    for part in map(bytes, parts):
        try:
            event = codec.decode(part)
        except codec.DECODE_ERRORS as inner:
            bad.append(malformed_kind(inner))
            continue
        if type(event) is Batch:
            bad.append("unknown event kind")  # a batch is no event of a batch
        elif type(event) is Control:
            return None
        else:
            good.append(part)
    assert bad, "a batch none of whose events is malformed decodes whole"
    return (codec.encode_batch(good) if good else None), bad


class Served:
    """A loop on a real tcp PULL socket, run in a thread, and a PUSH socket to it."""

    def __init__(self, tmp_path):
        self.spec = make_spec()
        strategy, cls, _ = make_strategy(self.spec)
        self.kernel = Kernel(self.spec, "r1", strategy)
        header = journal_header(self.spec, "r1", cls, "live")
        self.journal = JournalWriter(tmp_path / "fuzz.journal", header)
        self.loop = RoboLoop(
            self.kernel, self.journal, Gateway(), clock=lambda: 7, wall_clock=False
        )
        self.ctx = zmq.Context()
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.setsockopt(zmq.LINGER, 0)
        self.pull.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)  # as LiveRobot.run sets it
        port = self.pull.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self.push = self.pusher()
        self.valid: list[bytes] = []  # every accepted frame, in order
        self.expected: dict[str, int] = {}
        self.loop.start()
        self.thread = threading.Thread(target=self.loop.run, args=(self.pull,), daemon=True)
        self.thread.start()

    def pusher(self) -> zmq.Socket:
        push = self.ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
        push.setsockopt(zmq.LINGER, 0)
        push.connect(self.address)
        return push

    def send(self, frames: list[bytes]) -> None:
        for raw in frames:
            outcome = classify(raw)
            if outcome is None:
                continue
            taken, kinds = outcome
            if taken is not None:
                self.valid.append(taken)
            for kind in kinds:
                self.expected[kind] = self.expected.get(kind, 0) + 1
            self.push.send(raw)
        self.settle()

    def settle(self) -> None:
        want = len(self.valid) + 1  # and the start
        bad = sum(self.expected.values())
        assert wait_for(
            lambda: self.loop.messages >= want and sum(self.loop.malformed.values()) >= bad
        ), (self.loop.messages, want, self.loop.malformed, self.expected)
        assert self.thread.is_alive() and self.loop.error is None

    def close(self) -> None:
        self.loop.request_stop("test over")
        self.thread.join(10)
        self.journal.close()
        self.push.close()
        self.pull.close()
        self.ctx.term()


def _hostile_loop_run(tmp_path, profile: str) -> int:
    served = Served(tmp_path)
    cases = 0
    try:

        @SETTINGS[profile]
        @given(st.lists(VALID_FRAME | GARBAGE, min_size=1, max_size=30))
        def case(frames):
            nonlocal cases
            cases += len(frames)
            served.send(frames)

        case()
        # a batch with one bad event keeps the others: the zmq feed's batches of a
        # publisher's events lost all of them for one
        tick, bar_ = codec.encode(Tick(SI, T0, 92000, 1)), codec.encode(Bar(SI, T0, 1, 2, 0, 1))
        served.send([codec.encode_batch([tick, b"\x01", bar_, codec.encode(Batch([]))])])
        assert served.valid[-1] == codec.encode_batch([tick, bar_])
        assert served.expected["not an event"] >= 1
        cases += 1
        # multipart: every part is one message to the loop, validated on its own
        tick = codec.encode(Tick(SI, T0, 92000, 1))
        served.push.send_multipart([tick, b"\xc1junk"])
        served.valid.append(tick)
        served.expected["not msgpack"] = served.expected.get("not msgpack", 0) + 1
        served.settle()
        # 10 MB of garbage is read, refused and counted ...
        served.send([b"\xc1" * (10 << 20)])
        # ... a frame past MAX_MESSAGE_BYTES is dropped by ZeroMQ unread (sender cut off)
        big = served.pusher()
        big.send(b"\x00" * (MAX_MESSAGE_BYTES + 1))
        big.close()
        served.send([codec.encode(Tick(SI, T0 + 1, 92001, 1))])  # and the loop goes on
        cases += 4
        assert served.loop.malformed == served.expected
    finally:
        served.close()
    assert served.loop.error is None

    # the journal holds exactly the valid messages, and replays to the same outputs
    records = [r for r in JournalReader(served.journal.path).records() if r.kind == MESSAGE]
    assert [r.payload for r in records[1:-1]] == served.valid
    assert verify(served.journal.path).ok
    # the kernel equals a clean one fed only the valid events
    strategy, _, _ = make_strategy(served.spec)
    clean = Kernel(served.spec, "r1", strategy)
    clean.handle(codec.decode(records[0].payload))  # the start
    for raw in served.valid:
        msg = codec.decode(raw)
        for event in msg.events if type(msg) is Batch else (msg,):
            clean.handle(event)
    clean.handle(codec.decode(records[-1].payload))  # the stop
    assert clean.snapshot() == served.kernel.snapshot()
    assert served.kernel.counters["duplicates"] == clean.counters["duplicates"]
    return cases


def test_loop_survives_hostile_frames(tmp_path):
    cases = _hostile_loop_run(tmp_path, "fast")
    print(f"loop socket: {cases} frames")


@pytest.mark.long
def test_loop_survives_hostile_frames_long(tmp_path):
    cases = _hostile_loop_run(tmp_path, "long")
    print(f"loop socket (long): {cases} frames")


def test_a_repeated_fill_is_a_duplicate(tmp_path):
    served = Served(tmp_path)
    try:
        served.send([codec.encode(Bar(SI, T0, 92000, 92000, 92000, 92000))])
        fill = codec.encode(Fill("test-robot-r1-1", T0, SI, "buy", 1, 92000, "T9"))
        served.send([fill, b"\xc1", fill, fill])
        assert served.kernel.counters["fills"] == 1
        assert served.kernel.counters["duplicates"] == 2
        assert served.kernel.book.positions[SI].qty == 1
    finally:
        served.close()


# -- the control endpoint ---------------------------------------------------------------


def request(address: str, frames: list[bytes], timeout_ms: int = 3000) -> dict | None:
    """One raw REQ round trip; None when no answer comes."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, timeout_ms)
    sock.setsockopt(zmq.SNDTIMEO, timeout_ms)
    try:
        sock.connect(address)
        sock.send_multipart(frames)
        return json.loads(sock.recv())
    except zmq.Again:
        return None
    finally:
        sock.close()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)
VALID_COMMANDS = {"status", "pause", "resume", "reduce", "stop", "flatten", "cancel-all", "set"}
BAD_REQUESTS = st.one_of(
    st.binary(max_size=300),
    JSON.map(lambda v: json.dumps(v).encode()),
    st.builds(
        lambda c, a: json.dumps({"command": c, "args": a}).encode(),
        JSON.filter(lambda c: not (isinstance(c, str) and c in VALID_COMMANDS)),
        JSON,
    ),
    st.builds(  # a known command with args that are not an object
        lambda c, a: json.dumps({"command": c, "args": a}).encode(),
        st.sampled_from(sorted(VALID_COMMANDS - {"status"})),
        st.lists(st.integers(), min_size=1) | st.text(min_size=1) | st.integers(1),
    ),
)
HAND_MADE = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b"[1, 2]",
    b'"pause"',
    b"null",
    b'{"command": 5}',
    b'{"args": {}}',
    b'{"command": "explode"}',
    b'{"command": "pause", "args": {"x": 100000000000000000000000000000}}',  # past 64 bits
    b'{"command": "set", "args": {"fast": "soon"}}',
    b'{"command": "set", "args": {"nope": 1}}',
    b'{"command": "pause", "args": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    b'{"command": "pause", "args": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    json.dumps({"command": "x" * (CONTROL_MAX_BYTES - 100)}).encode(),  # big, under the cap
]


def _control_run(tmp_path, profile: str) -> int:
    spec = make_spec(
        feed={
            "plugin": "synthetic",
            "params": {"seed": 1, "bars": 0, "rate": 200, "prices": {SI: 92000}},
        },
        journal={"dir": str(tmp_path / "runs")},
    )
    robot = LiveRobot(spec, RunOptions(journal_dir=tmp_path / "runs", duration_s=120))
    thread = threading.Thread(target=robot.run, daemon=True)
    thread.start()
    address = robot.control_address
    cases = 0
    try:
        assert wait_for(lambda: robot.status.get("seq", 0) > 1)
        params = dict(robot.kernel.strategy.params)

        def refused(frames: list[bytes]) -> None:
            nonlocal cases
            cases += 1
            reply = request(address, frames)
            assert reply is not None and reply["ok"] is False, (frames[0][:80], reply)

        for raw in HAND_MADE:
            refused([raw])
        refused([b'{"command": "pause"}', b"a second frame"])

        @SETTINGS[profile]
        @given(BAD_REQUESTS)
        def case(raw):
            refused([raw])

        case()
        # past CONTROL_MAX_BYTES: ZeroMQ drops it unread, the client hears nothing ...
        assert request(address, [b"x" * (CONTROL_MAX_BYTES + 1)], timeout_ms=500) is None
        cases += 1
        # ... and the endpoint serves the next client
        status = send_command(address, "status")
        assert status["ok"] and status["status"]["robot"] == "test-robot"
        assert robot.kernel.risk.state == "ACTIVE"
        assert robot.kernel.strategy.params == params
    finally:
        send_command(address, "stop")
        thread.join(30)
    assert not thread.is_alive()
    commands = []
    for record in JournalReader(robot.journal_path).records():
        if record.kind == MESSAGE:
            msg = codec.decode(record.payload)
            for event in msg.events if type(msg) is Batch else (msg,):
                if type(event) is Control:
                    commands.append(event.command)
    assert commands == ["start", "stop"]  # nothing of the hostile requests was journaled
    assert verify(robot.journal_path).ok
    return cases


def test_control_endpoint_refuses_hostile_requests(tmp_path):
    cases = _control_run(tmp_path, "fast")
    print(f"control socket: {cases} requests")


@pytest.mark.long
def test_control_endpoint_refuses_hostile_requests_long(tmp_path):
    cases = _control_run(tmp_path, "long")
    print(f"control socket (long): {cases} requests")
