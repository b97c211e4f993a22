"""Market data from a ZeroMQ publisher, as in the original design. Live runs only.

The publisher (``roboframe feed publish`` or any program) sends two-frame
messages ``[symbol, event]`` on a PUB socket: ``symbol`` is the robot symbol
in UTF-8, ``event`` a :class:`~roboframe.core.events.Tick` or
:class:`~roboframe.core.events.Bar` encoded with
:func:`roboframe.core.codec.encode`. This feed SUBscribes to each robot
symbol's topic, keeps only messages whose topic is exactly one of them (a
ZeroMQ subscription is a prefix match), and forwards the event bytes to the
loop without decoding them; the loop validates them and counts malformed
ones. Messages that are already waiting when the feed looks are joined into
one :class:`~roboframe.core.events.Batch` of up to ``batch`` events, so a
robot that fell behind catches up at batch speed.

A malformed event in a batch is dropped (and counted) by the loop on its
own; the rest of the batch goes on. Bytes that are not one msgpack value
at all blur the boundary to the next event, and then the loop drops the
whole batch: with a publisher that sends such bytes, set ``batch: 1``. A SUB socket drops messages
past its high-water mark (``hwm``) when the robot cannot keep up: stale market
data is the one thing a robot may lose, never orders or fills.

Over ``tcp://`` the feed can be a CURVE client (see :mod:`roboframe.curve`):
``curve: {secret_key: keys/robot.key_secret, server_key: keys/publisher.key}``,
paths relative to the robot file; the publisher (``roboframe feed publish
--curve-secret-key ... --curve-clients DIR``) must list the robot's public key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

import zmq

from roboframe.core import codec
from roboframe.core.events import Bar, Tick
from roboframe.core.feed import PACING_SCHEMA, Feed
from roboframe.core.sockets import ADDRESS_PATTERN
from roboframe.core.timetext import span_text, utc_text
from roboframe.curve import client_schema, load_public, load_secret, make_client
from roboframe.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "tcp://127.0.0.1:5561"
POLL_MS = 100
_MARKET_TAGS = (Tick.__struct_config__.tag, Bar.__struct_config__.tag)
MAX_MESSAGE_BYTES = 1 << 20
"""Largest frame the SUB socket takes (``zmq.MAXMSGSIZE``); a tick or bar is under 100 bytes.
ZeroMQ drops a larger one unread and disconnects the publisher, which is reconnected."""


class ZmqFeed(Feed):
    """A SUB socket on a market-data publisher, subscribed per robot symbol."""

    live_only = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "address": {
                "type": "string",
                "pattern": ADDRESS_PATTERN,
                "default": DEFAULT_ADDRESS,
                "description": "publisher address to connect to",
            },
            "hwm": {
                "type": "integer",
                "minimum": 0,
                "default": 100000,
                "description": "SUB receive high-water mark, in messages (0: unlimited)",
            },
            "curve": client_schema(
                "CURVE client keys (paths relative to the robot file)", "publisher"
            ),
            "batch": {
                **PACING_SCHEMA["batch"],
                "default": 256,
                "description": "most waiting messages joined into one batch for the loop; "
                "1 forwards each on its own (bytes that are not one msgpack value lose "
                "their whole batch)",
            },
        },
    }

    context: zmq.Context | None = None
    """The runtime's context (``feed.context = ctx``); else ``zmq.Context.instance()``."""

    dropped: int = 0
    """Messages ignored: not two frames, or a topic that only starts with a symbol."""

    bad_frames: int = 0
    """Of :attr:`dropped`, those not of two frames."""
    not_market: int = 0
    """Messages on a robot's topic that are not a tick or a bar (a command, say)."""

    _sock: zmq.Socket | None = None
    _resumed_after: int | None = None  # a resumed run's last market time, until data comes

    def __init__(self, params, instruments, *, base_dir=None) -> None:
        super().__init__(params, instruments, base_dir=base_dir)
        self.curve = None
        curve = self.params.get("curve")
        if curve:
            secret_key = self.base_dir / curve["secret_key"]
            server_key = self.base_dir / curve["server_key"]
            load_secret(secret_key, "feed.params.curve.secret_key")  # fail at start, not later
            load_public(server_key, "feed.params.curve.server_key")
            self.curve = (secret_key, server_key)

    def events(self) -> Iterator:
        raise ConfigError(
            "the zmq feed is live only: it has no history to iterate; "
            "backtests need a file feed (csv) or --data FILE"
        )

    def resume_after(self, last_ts: int, at_last: dict[str, int]) -> None:
        """A resumed run: a publisher does not replay what it sent while the robot
        was down, so the first data that comes is compared with the last the run
        handled, and the gap is logged (see :meth:`_say_gap`)."""
        self._resumed_after = last_ts or None

    def _say_gap(self, payload: bytes) -> None:
        """Log how much market time the robot missed while it was down."""
        last, self._resumed_after = self._resumed_after, None
        try:
            first = codec.decode(payload)
        except codec.DECODE_ERRORS:
            return  # the loop counts and logs it
        ts = getattr(first, "ts", None)
        if type(ts) is not int or last is None:
            return
        gap = ts - last
        log.warning(
            "resumed: the first market data (%s at %s) comes %s after the last the run "
            "handled (%s); anything published in between is missed (a publisher does not "
            "replay), so the strategy's indicators may have a gap",
            getattr(first, "symbol", "?"),
            utc_text(ts),
            span_text(gap) if gap >= 0 else f"{span_text(-gap)} BEFORE it",
            utc_text(last),
        )

    def _connect(self) -> zmq.Socket:
        """The SUB socket, made in the calling thread (sockets are not thread-safe)."""
        ctx = self.context or zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, int(self.params.get("hwm", 100000)))
        sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
        for symbol in sorted(self.instruments):
            sock.setsockopt(zmq.SUBSCRIBE, symbol.encode())
        if self.curve is not None:
            make_client(sock, *self.curve, "feed.params.curve")
        sock.connect(self.params.get("address", DEFAULT_ADDRESS))
        self._sock = sock
        return sock

    def messages(self, stop: threading.Event) -> Iterator[bytes]:
        """Forward event bytes until ``stop``; several waiting ones as one batch."""
        sock = self._connect()
        limit = int(self.params.get("batch", 256))
        topics = frozenset(s.encode() for s in self.instruments)  # membership tests only
        try:
            while not stop.is_set():
                if not sock.poll(POLL_MS):
                    continue
                chunk = self._drain(sock, topics, limit)
                if chunk and self._resumed_after is not None:
                    self._say_gap(chunk[0])
                if len(chunk) == 1:
                    yield chunk[0]
                elif chunk:
                    yield codec.encode_batch(chunk)
        finally:
            self.close()

    def _drain(self, sock: zmq.Socket, topics: frozenset[bytes], limit: int) -> list[bytes]:
        """Up to ``limit`` waiting event payloads, without blocking."""
        chunk: list[bytes] = []
        recv = sock.recv_multipart
        while len(chunk) < limit:
            try:
                frames = recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            if len(frames) == 2 and frames[0] in topics:
                payload = frames[1]
                # a Tick or a Bar only (a msgpack fixarray led by its tag): a
                # publisher's command -- stop, flatten -- is no market data, and on
                # the market-data socket it would pass the control endpoint's keys
                if len(payload) > 1 and payload[0] >> 4 == 0x9 and payload[1] in _MARKET_TAGS:
                    chunk.append(payload)
                    continue
                self.not_market += 1
                if self.not_market == 1:
                    log.warning(
                        "zmq feed: ignoring a message on topic %r that is not a tick or a "
                        "bar (first bytes %r); further ones are counted",
                        frames[0][:64],
                        payload[:16],
                    )
                continue
            self.dropped += 1
            if len(frames) != 2:
                self.bad_frames += 1
            if self.dropped == 1:
                log.warning(
                    "zmq feed: ignoring a message that is not [symbol, event] for one of the "
                    "robot's symbols (topic %r, %d frames); further ones are counted",
                    frames[0][:64],
                    len(frames),
                )
        return chunk

    def malformed(self) -> dict[str, int]:
        """What :meth:`_drain` dropped, by kind: a trader must see in ``status`` that a
        publisher speaks another format or other symbols, not only one log line."""
        counts = {}
        if self.not_market:
            counts["not a tick or a bar"] = self.not_market
        if self.bad_frames:
            counts["not [symbol, event]"] = self.bad_frames
        if self.dropped > self.bad_frames:
            counts["topic not a robot symbol"] = self.dropped - self.bad_frames
        return counts

    def close(self) -> None:
        """Close the socket at once (linger 0). Safe to call more than once."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(linger=0)
