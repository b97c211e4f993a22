"""Order sent -> fill visible to the robot, through the PostgreSQL order store.

Measured side by side in one run, on the same server, in alternating blocks of
50 orders so that drift in the machine (a busy disk slows every commit) falls
on both alike:

- raw: INSERT on one connection -> NOTIFY (by trigger) received on another,
  no roboframe code: the floor of any store-backed order path;
- roboframe: the robot's gateway writes the order into the store, the paper
  exchange process (a thread here, its own connection) is notified, fills it
  at the last bar's close and writes the trade, the robot's trade stream is
  notified, reads it and delivers the Fill to the loop's socket. The exchange runs
  in its own process, as it would in production.

A store round trip is two notifications (robot -> exchange -> robot), so the
fair comparison for "what roboframe adds" is against twice the raw figure.
Prints p50/p99 in milliseconds and orders/s. Usage:
python bench/order_latency.py [-n 2000] [--url postgresql://postgres@127.0.0.1:5432/test]
Then the same store path through an exchange that also serves the fast path
(``--orders``), whose store writer then writes the store path's answers too
(one writer, ids in answer order): one process hop more. Then the fast path:
orders straight to the exchange over ZeroMQ and back, the store written
behind, next to a raw DEALER/ROUTER round trip.

``--mongo`` adds the MongoDB store path (raw: insert -> change-stream event),
against ``--mongo-url`` or, without one, a SecantusDB server it starts when
installed (the test suite's MongoDB stand-in: its figures say little about a
real MongoDB replica set).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from roboframe.core import codec
from roboframe.core.events import Bar, Fill, NewOrder
from roboframe.core.gateway import Runtime
from roboframe.core.instruments import Instrument
from roboframe.core.streams import trade_stream
from roboframe.testing.helpers import free_port, start_secantus


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


class RawNotify:
    """INSERT on one connection -> NOTIFY (by trigger) on another, no roboframe code."""

    def __init__(self, url: str) -> None:
        from roboframe_postgres.store import PgStore

        self.writer, self.listener = PgStore(url), PgStore(url)
        self.writer.setup()
        self.listener.listen_robot("raw")
        self.n = 0

    def one(self) -> float:
        self.n += 1
        start = time.perf_counter()
        self.writer.conn.execute(
            "INSERT INTO rf_trades (robot, client_id, symbol, side, qty, price, ts) "
            "VALUES ('raw', %s, 'SI', 'buy', 1, 1, 0)",
            (f"raw-{self.n}",),
        )
        while not self.listener.wait(1.0):
            pass
        return time.perf_counter() - start

    def close(self) -> None:
        self.writer.close()
        self.listener.close()


class RawChangeStream:
    """insert_one on one client -> the change-stream event on another: MongoDB's floor."""

    def __init__(self, url: str) -> None:
        import pymongo

        self.writer, self.listener = pymongo.MongoClient(url), pymongo.MongoClient(url)
        self.coll = self.writer.get_default_database("roboframe").raw_trades
        watched = self.listener.get_default_database("roboframe").raw_trades
        pipeline = [{"$match": {"operationType": "insert", "fullDocument.name": "raw"}}]
        self.stream = watched.watch(pipeline, max_await_time_ms=20)
        self.n = 0

    def one(self) -> float:
        self.n += 1
        start = time.perf_counter()
        self.coll.insert_one({"name": "raw", "client_id": f"raw-{self.n}", "qty": 1})
        while self.stream.try_next() is None:
            pass
        return time.perf_counter() - start

    def close(self) -> None:
        self.stream.close()
        self.writer.close()
        self.listener.close()


def secantus_url():
    """A SecantusDB server on a free port, if installed: (url, process) or None."""
    try:
        port, proc = start_secantus()
    except (FileNotFoundError, ImportError, RuntimeError):
        return None
    return f"mongodb://127.0.0.1:{port}/rf_bench?directConnection=true", proc


class RawZmq:
    """DEALER -> ROUTER -> DEALER over tcp loopback, the echo in another process."""

    def __init__(self) -> None:
        port = free_port()
        code = (
            "import zmq; c=zmq.Context(); r=c.socket(zmq.ROUTER); "
            f"r.bind('tcp://127.0.0.1:{port}')\n"
            "while True:\n"
            "    m = r.recv_multipart()\n"
            "    if m[1] == b'end': break\n"
            "    r.send_multipart(m)"
        )
        self.echo = subprocess.Popen([sys.executable, "-c", code])
        self.ctx = zmq.Context()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.connect(f"tcp://127.0.0.1:{port}")
        self.dealer.send(b"warm-up")
        self.dealer.recv()

    def one(self) -> float:
        start = time.perf_counter()
        self.dealer.send(b"x" * 40)
        self.dealer.recv()
        return time.perf_counter() - start

    def close(self) -> None:
        self.dealer.send(b"end")
        self.echo.wait(10)
        self.dealer.close(0)
        self.ctx.term()


class RoboframePath:
    """The robot's gateway -> the exchange process -> the robot's trade stream."""

    def __init__(self, url: str, fast: bool = False, mixed: bool = False) -> None:
        """``fast``: the robot uses the fast path; ``mixed``: the robot uses the
        store, but the exchange serves the fast path too (its store writer then
        writes the store path's answers)."""
        self.fast = fast
        self.tag = "f" if fast else ("m" if mixed else "s")  # client ids apart per path
        self.ctx = ctx = zmq.Context()
        self.pub = ctx.socket(zmq.PUB)
        port = self.pub.bind_to_random_port("tcp://127.0.0.1")
        orders_port = free_port()
        self.exchange = subprocess.Popen(  # its own process, as in production: no shared GIL
            [
                sys.executable,
                "-m",
                "roboframe.cli",
                "-q",
                "exchange",
                "--store",
                url,
                "--feed",
                f"tcp://127.0.0.1:{port}",
                "--fill-at",
                "close",
                *(["--orders", f"tcp://127.0.0.1:{orders_port}"] if fast or mixed else []),
            ],
        )
        time.sleep(2.5)
        self.pub.send_multipart([b"SI", codec.encode(Bar("SI", 1, 100, 100, 100, 100))])
        time.sleep(0.3)
        from roboframe.builtin.zmqgw import FastGateway
        from roboframe.plugins import get_registry

        gateways = {name: entry.obj for name, entry in get_registry().gateways.items()}
        gateways["zmq"] = FastGateway
        self.runtime = Runtime("bench", "b1", ctx, "inproc://bench-loop", None)
        self.loop = ctx.socket(zmq.PULL)
        self.loop.bind(self.runtime.loop_address)
        params = {"url": url, "poll_ms": 1000}
        if fast:
            params["address"] = f"tcp://127.0.0.1:{orders_port}"
        backend = "mongo" if url.startswith("mongodb") else "postgres"
        self.gw = gateways["zmq" if fast else backend](
            params, {"SI": Instrument("SI", Decimal(1))}, robot="bench"
        )
        self.gw.open(self.runtime)
        self.stream = threading.Thread(
            target=trade_stream, args=(self.gw, self.runtime), daemon=True
        )
        self.stream.start()
        time.sleep(0.5)
        self.n = 0

    def one(self) -> float:
        self.n += 1
        cid = f"bench-b1-{self.tag}{self.n}"
        start = time.perf_counter()
        self.gw.submit([NewOrder(cid, "SI", "buy", 1)])
        while True:
            if not self.loop.poll(5000):
                raise SystemExit(f"no fill for {cid} within 5 s")
            for event in codec.events_in(codec.decode(self.loop.recv())):
                if type(event) is Fill and event.client_id == cid:
                    return time.perf_counter() - start

    def close(self) -> None:
        self.runtime.stop.set()
        self.exchange.terminate()
        self.exchange.wait(10)
        self.stream.join(5)
        self.gw.close()
        self.loop.close(0)
        self.pub.close(0)
        self.ctx.term()


def side_by_side(raw, ours, n: int, block: int = 50) -> tuple[list, list, float]:
    """Both measured in alternating blocks of ``block``, so drift in the machine
    (a busy disk makes every commit slower) falls on both alike. Returns both
    latency lists and roboframe's orders/s over its own blocks."""
    raw_lat, our_lat, busy = [], [], 0.0
    try:
        for _ in range(5):  # warm both up: connections, prepared statements
            raw.one()
            ours.one()
        while len(our_lat) < n:
            k = min(block, n - len(our_lat))
            raw_lat.extend(raw.one() for _ in range(k))
            started = time.perf_counter()
            our_lat.extend(ours.one() for _ in range(k))
            busy += time.perf_counter() - started
    finally:
        raw.close()
        ours.close()
    return raw_lat, our_lat, n / busy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument(
        "--path",
        choices=("all", "store", "fast", "mixed"),
        default="all",
        help="which paths to measure (mixed: the store path through an exchange that "
        "also serves the fast path, whose writer then writes the store path's answers)",
    )
    ap.add_argument("--mongo", action="store_true", help="also the MongoDB store path")
    ap.add_argument("--mongo-url", help="a MongoDB replica set (default: a SecantusDB)")
    args = ap.parse_args()
    import psycopg

    schema = f"rf_bench_{uuid.uuid4().hex[:8]}"
    url = f"{args.url}{'&' if '?' in args.url else '?'}schema={schema}"
    try:
        if args.path in ("all", "store"):
            raw, ours, rate = side_by_side(RawNotify(url), RoboframePath(url), args.n)
            report_store(args.n, raw, ours, rate)
        if args.path in ("all", "mixed"):
            raw, ours, rate = side_by_side(RawNotify(url), RoboframePath(url, mixed=True), args.n)
            report_store(args.n, raw, ours, rate, "PostgreSQL order path, exchange with --orders")
        if args.path in ("all", "fast"):
            raw, ours, rate = side_by_side(RawZmq(), RoboframePath(url, fast=True), args.n)
            report_fast(args.n, raw, ours, rate)
        if args.mongo:
            bench_mongo(args.mongo_url, args.n)
    finally:
        with psycopg.connect(args.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def bench_mongo(url: str | None, n: int) -> None:
    server = None
    if url is None:
        server = secantus_url()
        if server is None:
            print("MongoDB: skipped (no --mongo-url and no SecantusDB installed)")
            return
        url = server[0]
    try:
        raw, ours, rate = side_by_side(RawChangeStream(url), RoboframePath(url), n)
        what = "SecantusDB" if server else "MongoDB"
        report_store(n, raw, ours, rate, f"{what} order path", "insert -> change event")
    finally:
        if server is not None:
            server[1].terminate()
            server[1].wait(10)


def report_store(
    n: int,
    raw: list[float],
    ours: list[float],
    rate: float,
    title: str = "PostgreSQL order path",
    raw_name: str = "INSERT -> NOTIFY",
) -> None:
    r50, r99 = pct(raw, 0.5) * 1e3, pct(raw, 0.99) * 1e3
    o50, o99 = pct(ours, 0.5) * 1e3, pct(ours, 0.99) * 1e3
    print(f"{title}, {n:,} orders, one at a time")
    print(f"{'':<44}{'p50 ms':>9}{'p99 ms':>9}")
    print(f"{'raw ' + raw_name + ' (one hop)':<44}{r50:>9.3f}{r99:>9.3f}")
    print(f"{'raw, two hops (robot->exchange->robot)':<44}{2 * r50:>9.3f}{2 * r99:>9.3f}")
    print(f"{'roboframe order -> fill at the robot':<44}{o50:>9.3f}{o99:>9.3f}")
    print(
        f"roboframe adds {o50 - 2 * r50:+.3f} ms at p50 over two raw hops; "
        f"{rate:,.0f} orders/s sequentially (mean {statistics.mean(ours) * 1e3:.3f} ms)"
    )
    print()


def report_fast(n: int, raw_zmq: list[float], fast: list[float], fast_rate: float) -> None:
    z50, z99 = pct(raw_zmq, 0.5) * 1e3, pct(raw_zmq, 0.99) * 1e3
    f50, f99 = pct(fast, 0.5) * 1e3, pct(fast, 0.99) * 1e3
    print(f"ZeroMQ fast path over tcp loopback, {n:,} orders, one at a time")
    print(f"{'raw DEALER/ROUTER round trip':<44}{z50:>9.3f}{z99:>9.3f}")
    print(f"{'roboframe order -> fill at the robot (zmq)':<44}{f50:>9.3f}{f99:>9.3f}")
    print(
        f"the fast path adds {f50 - z50:+.3f} ms at p50 over the raw round trip; "
        f"{fast_rate:,.0f} orders/s sequentially; the store is written behind it"
    )


if __name__ == "__main__":
    main()
