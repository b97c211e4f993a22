"""Small builders for specs and events, and a thread-free kernel driver."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from roboframe.core.events import Bar, Control, Fill, Tick

MINUTE_NS = 60_000_000_000
T0 = 1_795_000_000_000_000_000  # 2026-11-18T..., a fixed origin for hand-made events

BASE_ROBOT: dict[str, Any] = {
    "name": "test-robot",
    "symbols": {
        "Si-12.26": {"tick_size": 1, "lot": 1, "point_value": 1, "currency": "RUB"},
        "RTS-12.26": {"tick_size": 10, "lot": 1, "point_value": 1.3, "currency": "RUB"},
    },
    "feed": {
        "plugin": "synthetic",
        "params": {"seed": 1, "bars": 10, "prices": {"Si-12.26": 92000}},
    },
    "strategy": {"plugin": "sma-crossover", "params": {"fast": 2, "slow": 3, "qty": 1}},
    "gateway": {"plugin": "paper", "params": {}},
}


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "params":
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def make_spec(registry=None, **sections: Any):
    """A validated RobotSpec: ``BASE_ROBOT`` with ``sections`` merged over it."""
    from roboframe.config import spec_from_dict

    return spec_from_dict(_merge(BASE_ROBOT, sections), registry=registry)


def bar(
    symbol: str,
    minute: int,
    close: int,
    *,
    open: int | None = None,
    high: int | None = None,
    low: int | None = None,
    volume: int = 0,
) -> Bar:
    o = close if open is None else open
    return Bar(
        symbol,
        T0 + minute * MINUTE_NS,
        o,
        max(o, close) if high is None else high,
        min(o, close) if low is None else low,
        close,
        volume,
    )


def tick(symbol: str, second: int, price: int, qty: int = 1) -> Tick:
    return Tick(symbol, T0 + second * 1_000_000_000, price, qty)


def fill(
    order, price: int, *, qty: int | None = None, trade_id: str = "T1", ts: int = 0, fee: str = "0"
) -> Fill:
    return Fill(
        order.client_id,
        ts or T0,
        order.symbol,
        order.side,
        order.qty if qty is None else qty,
        price,
        trade_id,
        fee,
    )


def run_events(spec, events, *, run_id: str = "r1", strategy=None, start: bool = True):
    """Drive a fresh kernel with ``events``; return it and ``[(event, actions, rejected)]``."""
    from roboframe.core.kernel import Kernel
    from roboframe.core.robot import make_strategy

    if strategy is None:
        strategy, _, _ = make_strategy(spec)
    kernel = Kernel(spec, run_id, strategy)
    outputs = []
    if start:
        events = [Control("start", T0), *events]
    for event in events:
        actions = kernel.handle(event)
        outputs.append((event, list(actions), kernel.take_rejected()))
    return kernel, outputs


class NullJournal:
    """A loop's journal that keeps nothing: for driving a :class:`RoboLoop` in tests."""

    def append_message(self, *args: Any) -> None:
        pass

    def append_actions(self, *args: Any) -> None:
        pass

    def flush(self) -> None:
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 free right now (a test binds it soon after)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def answer_robot(router: Any, sender: bytes, raw: bytes, timeout: float = 5.0) -> None:
    """Send ``raw`` from ``router`` as the exchange answers: to the trade stream of
    the robot whose loop sent an order (``NAME\\0orders`` -> ``NAME``), once that
    stream's socket is connected (a ROUTER drops what it cannot route)."""
    import zmq

    router.setsockopt(zmq.ROUTER_MANDATORY, 1)
    robot = sender.partition(b"\x00")[0]
    deadline = time.monotonic() + timeout
    while True:
        try:
            router.send_multipart([robot, raw])
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EHOSTUNREACH or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass; its last answer."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def both_linked(linked: Any, gateway: Any, timeout: float = 5.0) -> None:
    """Wait for a fast-path robot's two links to a stand-in exchange's ROUTER --
    ``linked``, a monitor of its handshakes: the loop's and the trade stream's --
    and for the loop's side of its own (``gateway.linked``): an order sent before
    then goes the trade stream's way, not straight to the ROUTER."""
    for _ in range(2):
        assert linked.poll(int(timeout * 1000)), "the robot's links were never made"
        linked.recv_multipart()
    assert wait_for(gateway.linked, timeout), "the link was never made on the robot's side"


def start_secantus(log_path: str | None = None, timeout: float = 20.0):
    """A SecantusDB server (MongoDB wire protocol, one-node replica set with
    change streams, in memory) on a free port: ``(port, process)``.

    Raises ``FileNotFoundError`` when it is not installed and ``RuntimeError``
    when it does not answer within ``timeout`` (the reason includes its log).
    The caller terminates the process.
    """
    import shutil
    import subprocess

    import pymongo

    exe = shutil.which("secantusd-py")
    if exe is None:
        raise FileNotFoundError("secantusd-py not found: pip install SecantusDB==0.7.0b3")
    port = free_port()
    args = [exe, "--host", "127.0.0.1", "--port", str(port), "--storage-path", ":memory:"]
    out = open(log_path, "w") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            [*args, "--log-level", "WARNING"], stdout=out, stderr=subprocess.STDOUT
        )
    finally:
        if log_path:
            out.close()
    client = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=500
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                client.admin.command("ping")
                return port, proc
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.terminate()
                    log = Path(log_path).read_text() if log_path else ""
                    raise RuntimeError(f"server did not start: {log}") from None
                time.sleep(0.1)
    finally:
        client.close()


def take_notifications(store: Any, seconds: float = 2.0) -> bool:
    """Wait up to ``seconds`` for an order store's first change notification (polled
    as gateways do), then take every one that is there. True when one came."""
    for _ in range(int(seconds / 0.05)):
        if store.wait(0.05):
            break
    else:
        return False
    while store.wait(0.05):
        pass
    return True


class RunningTradeStream:
    """A robot's gateway (one symbol) with its trade stream on a
    thread, and the loop's socket to read what the stream forwards: a gateway's
    robot side under test, with real sockets. ``messages`` counts the messages
    the loop got (answers that came together come as one). ``store_seen``: a
    resumed run's, the store ids its journal holds (trades, updates);
    ``store_anchor``: its highest trade id and that trade's client id."""

    def __init__(
        self,
        gateway: type,
        params: dict,
        robot: str,
        symbol: str = "Si",
        run_id: str = "r1",
        store_seen: tuple[frozenset[int], frozenset[int]] | None = None,
        store_anchor: tuple[int, str] = (0, ""),
    ) -> None:
        import threading
        from decimal import Decimal

        import zmq

        from roboframe.core.gateway import Runtime
        from roboframe.core.instruments import Instrument
        from roboframe.core.streams import trade_stream

        self.ctx = zmq.Context()
        self.runtime = Runtime(
            robot,
            run_id,
            self.ctx,
            f"inproc://{robot}-{run_id}-loop",
            None,
            store_seen=store_seen,
            store_anchor=store_anchor,
        )
        self.loop = self.ctx.socket(zmq.PULL)
        self.loop.bind(self.runtime.loop_address)
        self.gw = gateway(params, {symbol: Instrument(symbol, Decimal(1))}, robot=robot)
        self.gw.open(self.runtime)
        self.messages = 0
        self.thread = threading.Thread(target=trade_stream, args=(self.gw, self.runtime))
        self.thread.daemon = True
        self.thread.start()

    def events(self, n: int, timeout_ms: int = 10_000) -> list:
        """The next ``n`` events the loop gets (fewer after ``timeout_ms`` of silence)."""
        from roboframe.core import codec

        got = []
        while len(got) < n and self.loop.poll(timeout_ms):
            got.extend(codec.events_in(codec.decode(self.loop.recv())))
            self.messages += 1
        return got

    def close(self) -> None:
        self.runtime.stop.set()
        self.thread.join(10)
        self.gw.close()
        self.loop.close(0)
        self.ctx.term()
