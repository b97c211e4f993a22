"""``roboframe exchange``: a paper exchange process behind an order store.

It is what a real broker bridge replaces, and the worked example of one
(``docs/gateways.md``): it watches the store for new orders and cancel
requests, fills them against the market-data publisher every robot uses,
and writes acknowledgements and trades back to the store, whose change feed
carries them to each robot.

On start it reloads the orders still open in the store, so a restarted
exchange keeps serving them. While the store is unreachable it keeps
consuming market data, holds what it has to write, and writes it in order
once the store is back.
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal

import zmq

from roboframe.builtin.paper import PaperExchange
from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Cancel, Fill, Tick
from roboframe.store.base import OrderStore, StoreUnavailable, open_store

log = logging.getLogger(__name__)


class ExchangeProcess:
    def __init__(
        self,
        store_url: str,
        feed_address: str,
        *,
        commission: Decimal = Decimal(0),
        slippage_ticks: int = 0,
        fill_at: str = "next",
        poll_s: float = 1.0,
    ) -> None:
        self.store_url = store_url
        self.feed_address = feed_address
        self.engine = PaperExchange(
            None, commission=commission, slippage_ticks=slippage_ticks, fill_at=fill_at
        )
        self.owner: dict[str, str] = {}  # client id -> robot
        self.unwritten: list[tuple[str, object]] = []  # (robot, update or fill)
        self.handled: list[int] = []  # cancel requests answered, to mark in the store
        self.store: OrderStore | None = None
        self.poll_s = poll_s
        self.counts = {"orders": 0, "fills": 0, "cancels": 0}

    # -- store ----------------------------------------------------------------

    def _connect(self) -> None:
        if self.store is None:
            self.store = open_store(self.store_url)
        else:
            self.store.reconnect()
        self.store.setup()
        self.store.listen_exchange()

    def _reload(self) -> None:
        """Orders acknowledged before a restart rest again; new ones are read as new."""
        for stored in self.store.open_orders():
            if stored.status == "accepted":
                self._take(stored, acknowledge=False)
                resting = self.engine.open_orders.get(stored.order.client_id)
                if resting is not None:
                    resting.filled = stored.filled
        log.info("exchange: %d open orders reloaded", len(self.engine.open_orders))

    def _take(self, stored, acknowledge: bool = True) -> None:
        self.owner[stored.order.client_id] = stored.robot
        for answer in self.engine.submit(stored.order):
            if acknowledge or type(answer) is Fill:
                self.unwritten.append((stored.robot, answer))
        self.counts["orders"] += 1

    def _read_requests(self) -> None:
        orders, cancels = self.store.new_requests()
        for stored in orders:
            if stored.order.client_id not in self.owner:  # taken; acknowledgement not written
                self._take(stored)
        for ref, robot, client_id in cancels:
            if ref in self.handled:
                continue
            self.owner.setdefault(client_id, robot)
            self.unwritten.extend((robot, a) for a in self.engine.submit(Cancel(client_id)))
            self.handled.append(ref)
            self.counts["cancels"] += 1

    def _write(self) -> None:
        if self.unwritten:
            batch = list(self.unwritten)
            self.store.record_many(batch)  # one transaction: all of it, or none and retry
            del self.unwritten[: len(batch)]
            self.counts["fills"] += sum(1 for _, item in batch if type(item) is Fill)
        if self.handled:
            self.store.mark_handled(self.handled)
            self.handled = []

    # -- market data ----------------------------------------------------------

    def _on_market(self, sub: zmq.Socket) -> None:
        while True:
            try:
                frames = sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                msg = codec.decode(frames[-1])
            except codec.DecodeError:
                continue
            for event in msg.events if type(msg) is Batch else (msg,):
                if type(event) in (Tick, Bar):
                    for fill in self.engine.on_market(event):
                        self.unwritten.append((self.owner.get(fill.client_id, ""), fill))

    # -- the process ----------------------------------------------------------

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        ctx = zmq.Context.instance()
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(self.feed_address)
        backoff = 0.2
        connected = False
        try:
            while not stop.is_set():
                try:
                    if not connected:
                        self._connect()
                        if not self.owner:
                            self._reload()
                        connected = True
                        backoff = 0.2
                        log.info("exchange: serving orders from %s", self.store_url)
                        if ready is not None:
                            ready.set()
                    self._serve(sub, stop)
                except StoreUnavailable as exc:
                    if connected:
                        log.warning("exchange: order store unavailable: %s", exc)
                    connected = False
                    self._on_market(sub)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            sub.close()
            if self.store is not None:
                self.store.close()

    def _serve(self, sub: zmq.Socket, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        fd = self.store.fileno()
        if fd is not None:
            poller.register(fd, zmq.POLLIN)
        next_poll = 0.0
        timeout = 50 if fd is not None else 5  # change streams have no socket to poll
        while not stop.is_set():
            ready = dict(poller.poll(timeout))
            if sub in ready:
                self._on_market(sub)
            now = time.monotonic()
            woke = fd in ready if fd is not None else self.store.wait(0)
            if woke or now >= next_poll:
                if fd is not None:
                    self.store.wait(0)
                self._read_requests()
                next_poll = now + self.poll_s
            self._write()
