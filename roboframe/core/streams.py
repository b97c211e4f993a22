"""The feeder threads: data, control and trade streams.

Each stream runs in its own thread, owns its own sockets (ZeroMQ sockets are
not thread-safe) and forwards what it hears to the loop through a PUSH
socket connected to the loop's address. Sends use a short timeout and retry
until the run stops, so a stream never drops an event and never hangs
shutdown when the loop has stopped reading.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import zmq

from roboframe.core import codec
from roboframe.core.events import Control
from roboframe.core.gateway import Gateway, Runtime
from roboframe.core.strategy import merged_params
from roboframe.errors import RoboframeError, described

log = logging.getLogger(__name__)

_SEND_TIMEOUT_MS = 100
CONTROL_MAX_BYTES = 1 << 20
"""Largest control request read (``zmq.MAXMSGSIZE`` on the REP socket). ZeroMQ drops a
larger one unread and disconnects the client, which gets no answer; others are served."""


def connect_sender(runtime: Runtime) -> zmq.Socket:
    """A PUSH socket to the loop, with a send timeout and no linger."""
    sock = runtime.context.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDTIMEO, _SEND_TIMEOUT_MS)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(runtime.loop_address)
    return sock


def send(sock: zmq.Socket, raw: bytes, stop: threading.Event) -> bool:
    """Send, waiting out a full queue; False only when the run is stopping."""
    while True:
        try:
            sock.send(raw)
            return True
        except zmq.Again:
            if stop.is_set():
                return False


FEED_FAILED = "feed failed"  # how a stop reason starts when the feed broke the run
GATEWAY_FAILED = "gateway failed"  # ... and when the order gateway's trade stream did
FAIL = "fail"  # never a command a trader sends (CONTROL_COMMANDS)
"""The command a stream sends the loop when its feed or gateway broke: not
journaled, not handled -- the run ends as a crash does, resumable (see
:class:`roboframe.errors.RunFailed`). A stop would end it for good: the next
start a new, flat run beside the position it left."""


def fail(runtime: Runtime, what: str, reason: str) -> bytes:
    """Say on ``runtime`` that ``what`` (``feed``, ``gateway``) broke the run; the
    message that wakes the loop to look (see :data:`FAIL`)."""
    if runtime.failure is None:
        runtime.failure = (what, reason)
    return _FAIL_MESSAGE


_FAIL_MESSAGE = codec.encode(Control(FAIL, 0))  # the why is on the runtime, not the wire


def broke(runtime: Runtime, what: str, failed: str, culprit: str, exc: Exception) -> bytes:
    """A stream's ``what`` (``feed``, ``gateway``) raised ``exc``: logged under
    ``failed``, with ``culprit`` named when the error is not one of roboframe's own
    messages, and said on ``runtime`` (see :func:`fail`)."""
    text = described(exc)
    if not isinstance(exc, RoboframeError):
        text = f"{culprit} raised {text}"
    log.error("%s: %s", failed, text)
    return fail(runtime, what, f"{failed}: {text}")


def data_stream(feed: Any, runtime: Runtime, tap: bool) -> None:
    """Forward the feed's messages to the loop; say ``stop`` when the feed ends.

    With ``tap`` every message is first published on
    ``runtime.market_data_address`` for a gateway that fills against it.
    """
    stop = runtime.stop
    sender = connect_sender(runtime)
    pub = None
    if tap and runtime.market_data_address:
        pub = runtime.context.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 0)
        pub.bind(runtime.market_data_address)
    end = None
    try:
        for raw in feed.messages(stop):
            if pub is not None:
                pub.send(raw)
            if not send(sender, raw, stop):
                return
        end = codec.encode(Control("stop", getattr(feed, "last_ts", 0), {"reason": "feed ended"}))
    except Exception as exc:  # a broken feed ends the run, it does not hang it
        end = broke(runtime, "feed", FEED_FAILED, type(feed).__name__, exc)
    finally:
        try:
            feed.close()
        except Exception as exc:
            log.warning("feed close failed: %s", exc)
    try:
        if not stop.is_set() and end is not None:
            send(sender, end, stop)
    finally:
        sender.close()
        if pub is not None:
            pub.close()


def trade_stream(gateway: Gateway, runtime: Runtime) -> None:
    """Run the gateway's update feed; everything it sends goes to the loop."""
    sender = connect_sender(runtime)
    try:
        gateway.trade_stream(runtime, sender)
    except Exception as exc:
        culprit = f"{type(gateway).__name__}.trade_stream"
        send(sender, broke(runtime, "gateway", GATEWAY_FAILED, culprit, exc), runtime.stop)
    finally:
        runtime.ready.set()  # failed: a run waiting to start learns it now
        sender.close()


CONTROL_COMMANDS = ("pause", "resume", "reduce", "stop", "flatten", "cancel-all", "set")


class SetCheck:
    """``set`` checked before it is journaled: the args merged over the params, validated.

    Follows the params the kernel will have: it starts from the strategy's
    current ones and applies each ``set`` it lets through, in the order the
    loop receives them (this thread is the only sender of ``set``).
    """

    def __init__(self, strategy_cls: type, params: dict) -> None:
        self.strategy_cls = strategy_cls
        self.params = dict(params)

    def __call__(self, args: dict) -> str | None:
        """None when ``args`` may be applied (and now are, here); else what is wrong."""
        from roboframe.config.checks import check_strategy_params
        from roboframe.config.yamlload import render_path

        if not args:  # journaled, it would call on_params for nothing
            return "set needs at least one param: set key=value [key=value ...]"
        merged = merged_params(self.params, args)
        problems = check_strategy_params(self.strategy_cls, merged)
        if problems:
            parts = []
            for path, message, hint in problems:
                field = render_path(path[2:]) if path[:2] == ("strategy", "params") else ""
                text = f"{field}: {message}" if field else message
                parts.append(f"{text} (hint: {hint})" if hint else text)
            return "; ".join(parts)
        self.params = merged
        return None


def control_stream(
    rep: zmq.Socket,
    runtime: Runtime,
    status: Callable[[], dict],
    clock=time.time_ns,
    check_set: Callable[[dict], str | None] | None = None,
) -> None:
    """Answer commands on ``rep``, a bound REP socket handed to this thread.

    A request is JSON ``{"command": "pause", "args": {...}}``; the reply is
    JSON. ``status`` is answered from the loop's latest snapshot and is not
    journaled; every other command becomes a :class:`Control` event. ``set``
    goes to the loop only when ``check_set`` finds nothing wrong; else the
    reply is ``{"ok": false, "error": "<field>: <message>"}``.
    """
    stop = runtime.stop
    sender = connect_sender(runtime)
    try:
        while not stop.is_set():
            if not rep.poll(100):
                continue
            frames = rep.recv_multipart()  # all of it: REP must read a whole request
            if len(frames) != 1:
                reply = {"ok": False, "error": f"bad request: {len(frames)} frames, expected 1"}
            else:
                try:
                    reply = _control_reply(frames[0], sender, status, stop, clock, check_set)
                except Exception as exc:  # REP must answer, or the endpoint is stuck
                    log.exception("control request %r failed", frames[0][:64])
                    reply = {"ok": False, "error": f"internal error: {type(exc).__name__}"}
            rep.send(json.dumps(reply, default=str).encode())
    finally:
        rep.close()
        sender.close()


_BAD_WARN_EVERY_S = 60.0
_bad = {"next": 0.0, "quiet": 0}  # one control thread per robot process writes it


def _warn_bad(raw: bytes, exc: Exception) -> None:
    """Log a refused request -- at most once a minute, with how many were not logged,
    so a hostile client cannot flood the log."""
    now = time.monotonic()
    if now < _bad["next"]:
        _bad["quiet"] += 1
        return
    quiet, _bad["quiet"], _bad["next"] = _bad["quiet"], 0, now + _BAD_WARN_EVERY_S
    more = f" ({quiet} more refused since the last warning)" if quiet else ""
    log.warning("bad control request %r: %s%s", raw[:64], exc, more)


def _control_reply(raw: bytes, sender, status, stop, clock, check_set=None) -> dict:
    try:
        request = json.loads(raw)
        command = request["command"]
        args = request.get("args") or {}
        if not isinstance(command, str) or not isinstance(args, dict):
            raise TypeError("command must be a string and args an object")
    except (ValueError, KeyError, TypeError, RecursionError) as exc:  # Recursion: deep nesting
        _warn_bad(raw, exc)
        return {"ok": False, "error": f"bad request: {exc}"}
    if command == "status":
        return {"ok": True, "status": status()}
    if command not in CONTROL_COMMANDS:
        known = ", ".join(("status", *CONTROL_COMMANDS))
        return {"ok": False, "error": f"unknown command {command!r}; known: {known}"}
    if command == "stop" and "reason" not in args:  # the summary says why it stopped
        args = {**args, "reason": "ctl stop"}
    try:  # before the set check, which applies what it lets through
        raw_event = codec.encode(Control(command, clock(), args))
    except (OverflowError, TypeError, ValueError) as exc:  # an int past 64 bits, say
        _warn_bad(raw, exc)
        return {"ok": False, "error": f"bad request: args: {exc}"}
    if command == "set" and check_set is not None:
        error = check_set(args)
        if error:
            log.warning("control: set %s refused: %s", json.dumps(args, default=str), error)
            return {"ok": False, "error": error}
    send(sender, raw_event, stop)
    return {"ok": True, "queued": command}


def start_thread(name: str, target: Callable, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread
