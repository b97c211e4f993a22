"""An exchange process on a thread, and a robot's trade stream on another: the
two ends of the order path, with real sockets and a real order store, for the
tests of the fast path and of order-store gateways."""

from __future__ import annotations

import threading
import time

import zmq

from roboframe.core import codec
from roboframe.core.events import Bar
from roboframe.exchange import ExchangeProcess
from roboframe.store import open_store
from roboframe.testing.helpers import free_port


class RunningExchange:
    """An exchange on a thread with the fast path on (unless ``fast=False``: then
    it writes the store itself, with no writer process), a feed to publish on,
    and a robot's DEALER (identity: the robot's name, ``robot``)."""

    def __init__(
        self, url: str, fast: bool = True, robot: str = "alpha", wait: bool = True, **options
    ) -> None:
        self.ctx = zmq.Context()
        self.pub = self.ctx.socket(zmq.PUB)
        feed_port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        self.orders = f"tcp://127.0.0.1:{free_port()}" if fast else None
        self.exchange = ExchangeProcess(url, f"tcp://127.0.0.1:{feed_port}", fill_at="close",
                                        orders_address=self.orders, **options)  # fmt: skip
        self.stop, self.ready = threading.Event(), threading.Event()
        ready = self.ready
        self.failure: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(ready,))
        self.thread.start()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.IDENTITY, robot.encode())
        self.dealer.setsockopt(zmq.LINGER, 0)
        assert not wait or ready.wait(15)  # not: an exchange waiting for another's lock
        if self.orders is not None:
            self.dealer.connect(self.orders)

    def _run(self, ready) -> None:
        try:
            self.exchange.run(self.stop, ready)
        except BaseException as exc:  # the test reports it
            self.failure.append(exc)

    def price(self, bar: Bar) -> None:
        """Publish ``bar`` until the exchange has it (its SUB joins late)."""
        deadline = time.monotonic() + 10
        while self.exchange.engine.last.get(bar.symbol) != bar:
            assert time.monotonic() < deadline, "the exchange never got the price"
            assert not self.failure, self.failure
            self.pub.send_multipart([bar.symbol.encode(), codec.encode(bar)])
            time.sleep(0.05)

    def answers(self, n: int, timeout: float = 10.0) -> list:
        got = []
        deadline = time.monotonic() + timeout
        while len(got) < n and time.monotonic() < deadline:
            if self.dealer.poll(100):
                got.extend(codec.events_in(codec.decode(self.dealer.recv())))
            assert not self.failure, self.failure
        return got

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)
        self.dealer.close()
        self.pub.close(0)
        self.ctx.term()


def stored(url: str, n_fills: int, n_updates: int, robot: str = "alpha") -> tuple[list, list]:
    """The robot's fills and updates once the writer has written them all."""
    store = open_store(url)
    try:
        deadline = time.monotonic() + 30
        while True:  # written behind by the store writer
            fills, updates = store.changes_after(robot, f"{robot}-r1-", 0, 0)
            if len(fills) >= n_fills and len(updates) >= n_updates:
                return fills, updates
            assert time.monotonic() < deadline, f"stored {len(fills)} fills, {len(updates)} updates"
            time.sleep(0.1)
    finally:
        store.close()


def order_row(url: str, client_id: str, want: tuple | None = None) -> tuple:
    """``(qty, price, status, filled)`` of an order as the store holds it; with
    ``want``, once it holds that (the fast path writes behind)."""
    store = open_store(url)
    try:
        deadline = time.monotonic() + 15
        while True:
            if hasattr(store, "db"):  # MongoDB
                d = store.db.orders.find_one({"client_id": client_id})
                row = None if d is None else (d["qty"], d["price"], d["status"], d["filled"])
            else:
                row = store.conn.execute(
                    "SELECT qty, price, status, filled FROM rf_orders WHERE client_id = %s",
                    (client_id,),
                ).fetchone()
            if want is None or row == want or time.monotonic() > deadline:
                return row
            time.sleep(0.05)
    finally:
        store.close()
