"""Market data from a ZeroMQ publisher, as in the original design.

The publisher (``roboframe feed publish`` or any program) sends two-frame
messages ``[symbol, event]`` on a PUB socket, ``event`` encoded with
:mod:`roboframe.core.codec`. This feed SUBscribes to each robot symbol's
topic and forwards the event bytes to the loop without decoding them (with
``batch`` > 1, messages that arrive together are joined into one batch).
Live runs only.

Note that a SUB socket drops messages past its high-water mark when the
robot cannot keep up: stale market data is the one thing a robot may lose.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import zmq

from roboframe.core import codec
from roboframe.core.feed import PACING_SCHEMA, Feed
from roboframe.errors import ConfigError


class ZmqFeed(Feed):
    live_only = True
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "address": {
                "type": "string",
                "pattern": "^(inproc|ipc|tcp)://.+$",
                "default": "tcp://127.0.0.1:5561",
                "description": "publisher address to connect to",
            },
            "hwm": {
                "type": "integer",
                "minimum": 0,
                "default": 100000,
                "description": "SUB receive high-water mark (messages)",
            },
            "batch": {
                **PACING_SCHEMA["batch"],
                "default": 1,
                "description": "most messages joined into one batch for the loop; "
                "a batch with one malformed event is dropped whole, so the default 1 "
                "forwards each message on its own",
            },
        },
    }

    context: zmq.Context | None = None

    def events(self):
        raise ConfigError("the zmq feed is live only: backtests need a file feed (csv)")

    def messages(self, stop: threading.Event) -> Iterator[bytes]:
        ctx = self.context or zmq.Context.instance()
        sock = ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, int(self.params.get("hwm", 100000)))
        for symbol in sorted(self.instruments):
            sock.setsockopt(zmq.SUBSCRIBE, symbol.encode())
        sock.connect(self.params.get("address", "tcp://127.0.0.1:5561"))
        self._sock = sock
        limit = int(self.params.get("batch", 1))
        recv = sock.recv_multipart
        topics = {s.encode() for s in self.instruments}
        try:
            while not stop.is_set():
                if not sock.poll(100):
                    continue
                chunk: list[bytes] = []
                while len(chunk) < limit:
                    try:
                        frames = recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    # a prefix subscription also matches longer topics: keep exact ones
                    if len(frames) == 2 and frames[0] in topics:
                        chunk.append(frames[1])
                if len(chunk) == 1:
                    yield chunk[0]
                elif chunk:
                    yield codec.encode_batch(chunk)
        finally:
            sock.close()
            self._sock = None
