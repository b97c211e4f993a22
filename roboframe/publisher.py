"""``roboframe feed publish``: one market-data publisher for many robots.

Publishes every event of a feed (a robot file's own feed, or a CSV file) on
a ZeroMQ PUB socket as two frames ``[symbol, encoded event]``, so each robot
and the exchange process subscribe to the symbols they need, as in the
original design. ``speed`` paces by the events' own times (``10`` plays ten
times faster than real time); ``None`` sends as fast as possible.

With ``curve`` (:class:`roboframe.curve.ServerKeys`) the PUB socket is a CURVE
server and only subscribers whose public keys are listed get anything.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable

import zmq

from roboframe.core import codec
from roboframe.core.events import Bar, Tick
from roboframe.curve import ServerKeys, make_server, start_authenticator
from roboframe.errors import RoboframeError

DRAIN_S = 30.0
"""How long a publisher at the end of its events waits for slow subscribers to take
what is queued for them (a subscriber that reads nothing holds it up that long)."""


def publish(
    events: Iterable[Tick | Bar],
    bind: str,
    *,
    speed: float | None = None,
    wait_s: float = 1.0,
    stop: threading.Event | None = None,
    on_bound=None,
    curve: ServerKeys | None = None,
    drain_s: float = DRAIN_S,
) -> int:
    """Publish ``events``; return how many were sent.

    At the end of ``events`` it waits up to ``drain_s`` for the subscribers to
    take what is still queued for them: a robot slower than a ``max``-speed file
    would otherwise lose the end of it when the process exits. Stopped (or
    failing), it closes at once."""
    stop = stop or threading.Event()
    # a context of its own, terminated here: that is what waits for the queue to drain
    # (and, with CURVE, the ZAP handler serves every socket of one)
    ctx = zmq.Context()
    auth = None
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.setsockopt(zmq.SNDHWM, 1_000_000)
    sent = 0
    finished = False
    try:
        if curve is not None:
            auth = start_authenticator(ctx, curve, f"feed publish {bind}")
            make_server(pub, curve)
        bind = _bind(pub, bind)
        if on_bound is not None:
            on_bound(bind)
        if stop.wait(wait_s):  # let subscribers connect: PUB drops what nobody hears
            return 0
        first_ts = None
        started = time.monotonic()
        for event in events:
            if speed:
                if first_ts is None:
                    first_ts = event.ts
                due = started + (event.ts - first_ts) / 1e9 / speed
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    break
            if stop.is_set():
                break
            pub.send_multipart([event.symbol.encode(), codec.encode(event)])
            sent += 1
        finished = not stop.is_set()
    finally:
        pub.close(linger=round(drain_s * 1000) if finished else 0)
        if auth is not None:
            auth.stop()
        ctx.term()  # returns once the subscribers took the rest, or drain_s passed
    return sent


def _bind(pub: zmq.Socket, bind: str) -> str:
    """Bind ``pub``; the address bound (``:0`` takes a free port). A port still held --
    by a publisher not yet gone when a new one starts -- or a malformed address is
    a :class:`RoboframeError` saying which, not a traceback."""
    try:
        if bind.endswith(":0"):
            port = pub.bind_to_random_port(bind[:-2])
            return f"{bind[:-2]}:{port}"
        pub.bind(bind)
        return bind
    except zmq.ZMQError as exc:
        hint = (
            "; is another publisher (or an old one, still stopping) running on it?"
            if exc.errno == zmq.EADDRINUSE
            else "; expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
        )
        raise RoboframeError(f"cannot bind the publisher to {bind}: {exc}{hint}") from None


def parse_speed(text: str) -> float | None:
    """``10x``, ``0.5x``, ``10`` or ``max``. ``nan`` and ``inf`` are refused: they
    would publish unpaced while looking like a pace."""
    if text in ("max", "0", "0x"):
        return None
    value = float(text.rstrip("xX"))
    if not math.isfinite(value) or value <= 0:
        raise ValueError("speed must be a positive number")
    return value
