"""The exchange's fast path at the socket: an order's answers come back in one
message, under the ids the store then holds (both backends)."""

from __future__ import annotations

import threading
import time

import pytest
import zmq

from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Fill, NewOrder, OrderUpdate
from roboframe.exchange import ExchangeProcess
from roboframe.store import open_store
from roboframe.testing.helpers import free_port


@pytest.fixture(params=["pg_url", "mongo_url"])
def url(request):
    return request.getfixturevalue(request.param)


def test_an_orders_answers_come_in_one_message_under_the_stored_ids(url):
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    feed_port = pub.bind_to_random_port("tcp://127.0.0.1")
    orders = f"tcp://127.0.0.1:{free_port()}"
    exchange = ExchangeProcess(url, f"tcp://127.0.0.1:{feed_port}", fill_at="close",
                               orders_address=orders)  # fmt: skip
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=exchange.run, args=(stop, ready))
    thread.start()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.IDENTITY, b"alpha")
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        assert ready.wait(15)
        dealer.connect(orders)
        deadline = time.monotonic() + 10
        while "Si" not in exchange.engine.last:  # the SUB joins late: publish until heard
            assert time.monotonic() < deadline, "the exchange never got a price"
            pub.send_multipart([b"Si", codec.encode(Bar("Si", 1, 100, 100, 100, 100))])
            time.sleep(0.05)
        dealer.send(codec.encode([NewOrder("alpha-r1-1", "Si", "buy", 2)]))
        assert dealer.poll(5000)
        msg = codec.decode(dealer.recv())
        assert type(msg) is Batch  # one message for the acknowledgement and the fill
        update, fill = msg.events
        assert type(update) is OrderUpdate and update.status == "accepted"
        assert type(fill) is Fill and (fill.qty, fill.price) == (2, 100)
        assert not dealer.poll(200)  # and nothing after it
        store = open_store(url)
        deadline = time.monotonic() + 10
        while True:  # written behind by the store writer
            fills, updates = store.changes_after("alpha", "alpha-r1-", 0, 0)
            if fills and updates:
                break
            assert time.monotonic() < deadline, "the writer never wrote the answers"
            time.sleep(0.05)
        store.close()
        assert fills == [(int(fill.trade_id), fill)]
        assert updates == [(int(update.ref), update)]
    finally:
        stop.set()
        thread.join(30)
        dealer.close()
        pub.close(0)
        ctx.term()
