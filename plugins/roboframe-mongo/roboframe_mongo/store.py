"""The MongoDB order store: collections, counters and change streams.

Collections (in the URL's database, default ``roboframe``)::

    orders        {id, name, run_id, client_id (unique), symbol, side, qty, type, price,
                   ts, status, filled, trade_ids; taken: written behind by the fast path}
    order_events  {id, name, client_id, kind, reason, ts; a request: handled;
                   a replace request: qty, price}
    trades        {id, name, client_id, symbol, side, qty, price, fee, ts}
    counters      {_id: collection, seq}   -- increasing ids, one $inc each
    locks         {_id: "writer" | "exchange" | "robot:<name>", owner, until (ms,
                   the server's clock)} -- the store writer's, the exchange's and each
                   running robot's leases

``name`` is the robot's name, as in the original design. A robot's trade
stream watches inserts into ``trades`` and ``order_events`` whose
``fullDocument.name`` is its name (requests left out); the exchange side
watches inserts into ``orders`` and requests (cancels, replaces). As with
PostgreSQL, each change carries its whole document, so a reader acts on it
without a query; on every (re)opened stream and every poll it reads
"everything after id N" (robots) or orders and requests by state (the
exchange) instead, so an event missed while a stream was down is read on the
next catch-up.

Change streams need a replica set: a single-node replica set is enough.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import threading
import time
import uuid
from collections import deque

import pymongo
from pymongo.errors import DuplicateKeyError, PyMongoError

from roboframe.core.events import Fill, NewOrder, OrderUpdate, Replace
from roboframe.errors import ConfigError
from roboframe.store.base import (
    MOVES_FROM,
    REQUEST_KINDS,
    OrderStore,
    StoredOrder,
    StoreUnavailable,
    fill_from,
    id_clash,
    request_from,
    update_from,
)

AFTER = pymongo.ReturnDocument.AFTER


def _reserved(text: str) -> int | None:
    """An id the writer reserved (digits), or None to take the next one."""
    return int(text) if text.isdigit() else None


def _plain(doc: dict) -> dict:
    """A document with BSON Int64 turned into plain ints (the codec takes only ints)."""
    return {
        k: int(v) if type(v) is not int and isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in doc.items()
    }


def _plain_all(cursor) -> list[dict]:
    return [_plain(doc) for doc in cursor]


AWAIT_MS = 500  # how long one getMore of the watcher waits on the server
# The writer, exchange and robot locks are leases (MongoDB has no lock that ends
# with a connection): renewed every RENEW_S, free when not renewed for LEASE_S -- a
# writer or exchange killed outright holds a restarted exchange back that long. A
# lease's end is set and judged by the server's clock ($$NOW), never a host's: a
# host whose clock runs ahead must not see another's live lease as run out.
LEASE_S = 15.0
RENEW_S = 1.0
_NOW_MS = {"$toLong": "$$NOW"}  # the server's time in ms (compared as numbers: every
# MongoDB compares those alike)
_LIVE = {"$expr": {"$gte": ["$until", _NOW_MS]}}  # a lease not yet run out


def _lease_end() -> dict:
    """A lease's end in ms, LEASE_S after now by the server's clock (LEASE_S read
    at call time, so a test may shorten it)."""
    return {"$add": [_NOW_MS, int(LEASE_S * 1000)]}


class _Watcher(threading.Thread):
    """Blocks on one change stream in a thread of its own and signals each change
    through a pipe, so the store has a file descriptor to poll like PostgreSQL's
    socket: gateways wake the moment a change comes, instead of asking the server
    every few milliseconds. The stream is open when :meth:`start_watching`
    returns, so a read of the store after it misses nothing."""

    def __init__(self, db, pipeline: list) -> None:
        super().__init__(name="mongo-watch", daemon=True)
        self.db = db
        self.pipeline = pipeline
        self.changes: deque = deque()
        self.error: Exception | None = None
        self.rfd, self._wfd = os.pipe()
        os.set_blocking(self.rfd, False)
        os.set_blocking(self._wfd, False)  # a full pipe must never stall the watcher
        self._opened = threading.Event()
        self._stop = threading.Event()

    def start_watching(self, timeout: float = 10.0) -> None:
        self.start()
        if not self._opened.wait(timeout) and self.error is None:
            self.error = TimeoutError(f"change stream not open after {timeout:g} s")
        if self.error is not None:
            self.stop()
            raise self.error

    def run(self) -> None:
        try:
            with self.db.watch(self.pipeline, max_await_time_ms=AWAIT_MS) as stream:
                self._opened.set()
                while not self._stop.is_set():
                    change = stream.try_next()
                    if change is not None:
                        self.changes.append(change)
                        self._signal()
        except Exception as exc:  # any failure is handed to the owner's thread
            self.error = exc
            self._signal()
        finally:
            self._opened.set()
            os.close(self._wfd)

    def _signal(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe is already a wake-up
            os.write(self._wfd, b"x")

    def stop(self) -> None:
        """Ask it to end (within one getMore) and forget it; it closes its own end."""
        self._stop.set()
        with contextlib.suppress(OSError):
            os.close(self.rfd)


class MongoStore(OrderStore):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.client = pymongo.MongoClient(url, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)
        self.db = self.client.get_default_database("roboframe")
        self.watcher: _Watcher | None = None
        self._watch: list | None = None
        self._lease_owner = uuid.uuid4().hex
        self._leases: dict[str, float] = {}  # lock held -> monotonic time of its renewal
        self._lease_owners: dict[str, str] = {}  # lock held -> the owner it is held as
        self._robot_lease: str | None = None  # the robot lock this trade stream asked for
        try:
            self.client.admin.command("ping")
        except PyMongoError as exc:
            raise StoreUnavailable(str(exc).splitlines()[0]) from exc

    def _guard(self, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DuplicateKeyError:
            raise
        except PyMongoError as exc:
            self._close_stream()
            raise StoreUnavailable(str(exc).splitlines()[0] or "unavailable") from exc

    # -- connection -----------------------------------------------------------

    def setup(self) -> None:
        self._guard(self.db.orders.create_index, "client_id", unique=True)
        self._guard(self.db.orders.create_index, "id")
        for coll in ("orders", "order_events", "trades"):
            self._guard(self.db[coll].create_index, [("name", 1), ("id", 1)])
        for coll in ("order_events", "trades"):
            self._unique_ids(coll)

    def _unique_ids(self, coll: str) -> None:
        """A unique index on ``id``: a write retried after a failure halfway (these
        writes are not one transaction) inserts nothing twice. A store made by an
        older roboframe has a plain one, replaced here."""
        index = self._guard(self.db[coll].index_information).get("id_1")
        if index is not None and index.get("unique"):
            return
        if index is not None:
            self._guard(self.db[coll].drop_index, "id_1")
        try:
            self._guard(self.db[coll].create_index, "id", unique=True)
        except DuplicateKeyError:
            self._guard(self.db[coll].create_index, "id")  # left as it was
            raise ConfigError(
                f"order store: the {coll} collection holds rows with the same id (written "
                "twice by an older roboframe); remove the repeats, then start again"
            ) from None

    def reconnect(self) -> None:
        self._close_stream()
        self._guard(self.client.admin.command, "ping")
        if self._watch is not None:
            self._open_stream()

    def close(self) -> None:
        self._close_stream()
        for name in self._leases:  # a clean exit frees its leases at once
            with contextlib.suppress(PyMongoError):
                self.db.locks.delete_one({"_id": name, "owner": self._lease_owners[name]})
        self._leases = {}
        self.client.close()

    def _close_stream(self) -> None:
        self._missed()  # what comes until a new stream is open is unknown
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None

    def _open_stream(self) -> None:
        self._close_stream()
        watcher = _Watcher(self.db, self._watch)
        try:
            watcher.start_watching()
        except (PyMongoError, TimeoutError) as exc:
            raise StoreUnavailable(str(exc).splitlines()[0] or "unavailable") from exc
        self.watcher = watcher

    def fileno(self) -> int | None:
        return self.watcher.rfd if self.watcher is not None else None

    def wait(self, timeout: float) -> bool:
        watcher = self.watcher
        if watcher is None:
            if self._watch is None:
                raise StoreUnavailable("not watching")
            self._open_stream()
            watcher = self.watcher
        if not watcher.changes and timeout > 0:
            select.select([watcher.rfd], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            os.read(watcher.rfd, 4096)  # the wake-ups; the changes are in the queue
        if watcher.error is not None:
            error = watcher.error
            self._close_stream()
            raise StoreUnavailable(str(error).splitlines()[0] or "change stream ended")
        came = bool(watcher.changes)
        changes = watcher.changes
        self._hold(changes.popleft() for _ in range(len(changes)))
        return came

    @staticmethod
    def _documents(changes: list[dict]):
        return ((c["ns"]["coll"], _plain(c["fullDocument"])) for c in changes)

    def _changes_in(self, notes: list[dict], robot: str, prefix: str) -> list | None:
        out = []
        for coll, d in self._documents(notes):
            if d["name"] != robot or not d["client_id"].startswith(prefix):
                continue
            if coll == "trades":
                out.append(fill_from(d))
            elif coll == "order_events" and d["kind"] not in REQUEST_KINDS:
                out.append(update_from(d))
            else:
                return None
        return out

    def _requests_in(self, notes: list[dict]) -> tuple[list, list] | None:
        orders, requests = [], []
        for coll, d in self._documents(notes):
            if coll == "orders":
                orders.extend(self._stored([d]))
            elif coll == "order_events":
                requests.append(request_from(d, d["name"]))
            else:
                return None
        return orders, requests

    def _new_ids(self, kind: str, n: int) -> list[int]:
        top = self._bump(kind, n)
        return list(range(top - n + 1, top + 1))

    def _bump(self, counter: str, n: int) -> int:
        """Add ``n`` to a counter; its new value. Two connections making the same
        counter at once (a robot's first request while the exchange takes its
        first block of ids) race on the upsert: the loser gets a duplicate key
        (MongoDB) or no document (SecantusDB). The counter is there by then:
        asked again, it answers."""
        for _ in range(3):
            try:
                doc = self._guard(
                    self.db.counters.find_one_and_update,
                    {"_id": counter},
                    {"$inc": {"seq": n}},
                    upsert=True,
                    return_document=AFTER,
                )
            except DuplicateKeyError:
                continue
            if doc is not None:
                return int(doc["seq"])
        raise StoreUnavailable(f"the {counter} id counter gave no value")

    def try_writer_lock(self, keep: bool) -> bool:
        if keep:
            return self._take_lease("writer")
        held = {"_id": "writer", "owner": {"$ne": self._lease_owner}, **_LIVE}
        return self._guard(self.db.locks.find_one, held) is None

    def keep_writer_lock(self) -> None:
        self._renew_lease("writer", "the store writer's")

    def take_robot_lock(self, robot: str, run_id: str) -> bool:
        # held by the run, not the connection: a run resumed after a crash takes
        # its lease over at once instead of waiting for it to run out
        self._robot_lease = f"robot:{robot}"
        return self._take_lease(self._robot_lease, f"{robot}:{run_id}")

    def keep_robot_lock(self) -> None:
        if self._robot_lease is not None:
            self._renew_lease(self._robot_lease, f"robot {self._robot_lease[6:]}'s")

    def take_exchange_lock(self) -> bool:
        return self._take_lease("exchange")

    def keep_exchange_lock(self) -> None:
        self._renew_lease("exchange", "the exchange's")

    def _take_lease(self, name: str, owner: str | None = None) -> bool:
        owner = owner or self._lease_owner
        ours_or_over = {"$or": [{"$eq": ["$owner", owner]}, {"$lt": ["$until", _NOW_MS]}]}
        try:  # free (no document), run out, or ours: take it; held: the _id is taken
            self._guard(
                self.db.locks.find_one_and_update,
                {"_id": name, "$expr": ours_or_over},
                [{"$set": {"owner": owner, "until": _lease_end()}}],
                upsert=True,
            )
        except DuplicateKeyError:
            return False
        self._leases[name] = time.monotonic()
        self._lease_owners[name] = owner
        return True

    def _renew_lease(self, name: str, whose: str) -> None:
        renewed_at = self._leases.get(name)
        if renewed_at is None or time.monotonic() - renewed_at < RENEW_S:
            return
        renewed = self._guard(
            self.db.locks.update_one,
            {"_id": name, "owner": self._lease_owners[name]},
            [{"$set": {"until": _lease_end()}}],
        )
        if renewed.matched_count != 1:
            del self._leases[name]
            raise StoreUnavailable(
                f"{whose} lease ran out (not renewed for {LEASE_S:g} s) and may be another's now"
            )
        self._leases[name] = time.monotonic()

    def _next_id(self, coll: str) -> int:
        return self._bump(coll, 1)

    # -- robot side -----------------------------------------------------------

    def insert_order(self, robot: str, run_id: str, order: NewOrder, ts: int) -> bool:
        return self._insert_order(robot, run_id, order, ts, {})

    def insert_taken_order(self, robot: str, run_id: str, order: NewOrder) -> bool:
        stamped = time.time_ns()  # when written, as a robot's own are
        return self._insert_order(robot, run_id, order, stamped, {"taken": True})  # not watched

    def _insert_order(self, robot: str, run_id: str, order: NewOrder, ts: int, extra: dict) -> bool:
        # the unique index on client_id refuses a second one (an id may go unused)
        doc = {
            "id": self._next_id("orders"),
            "name": robot,
            "run_id": run_id,
            "client_id": order.client_id,
            "symbol": order.symbol,
            "side": order.side,
            "qty": order.qty,
            "type": order.type,
            "price": order.price,
            "ts": ts,
            "status": "new",
            "filled": 0,
            **extra,
        }
        try:
            self._guard(self.db.orders.insert_one, doc)
        except DuplicateKeyError:
            return False  # inserted by a concurrent retry: still exactly one order
        return True

    def request_cancel(self, robot: str, client_id: str, ts: int) -> None:
        self._request(robot, client_id, "cancel_request", ts, {})

    def request_replace(self, robot: str, client_id: str, qty: int, price: int, ts: int) -> None:
        self._request(robot, client_id, "replace_request", ts, {"qty": qty, "price": price})

    def _request(self, robot: str, client_id: str, kind: str, ts: int, extra: dict) -> None:
        self._guard(
            self.db.order_events.insert_one,
            {
                "id": self._next_id("order_events"),
                "name": robot,
                "client_id": client_id,
                "kind": kind,
                "reason": "",
                "ts": ts,
                **extra,
            },
        )

    def listen_robot(self, robot: str) -> None:
        # the original design's pipeline, widened to the order events collection
        self._watch = [
            {
                "$match": {
                    "operationType": "insert",
                    "fullDocument.name": robot,
                    "ns.coll": {"$in": ["trades", "order_events"]},
                    "fullDocument.kind": {"$nin": list(REQUEST_KINDS)},
                }
            }
        ]
        self._open_stream()

    def changes_after(self, robot: str, prefix: str, trade_id: int, event_id: int):
        self._read_covers_held()
        mine = {"name": robot, "client_id": {"$regex": "^" + re.escape(prefix)}}
        trades = self._guard(
            lambda: _plain_all(self.db.trades.find({**mine, "id": {"$gt": trade_id}}).sort("id", 1))
        )
        events = self._guard(
            lambda: _plain_all(
                self.db.order_events.find(
                    {**mine, "id": {"$gt": event_id}, "kind": {"$nin": list(REQUEST_KINDS)}}
                ).sort("id", 1)
            )
        )
        return [fill_from(d) for d in trades], [update_from(d) for d in events]

    def highest_ids(self, robot: str) -> tuple[int, int]:
        def highest(coll: str) -> int:  # a backward step on the (name, id) index
            doc = self.db[coll].find_one({"name": robot}, {"id": 1, "_id": 0}, sort=[("id", -1)])
            return int(doc["id"]) if doc is not None else 0

        return self._guard(highest, "trades"), self._guard(highest, "order_events")

    def trade_client(self, robot: str, trade_id: int) -> str:
        doc = self._guard(
            self.db.trades.find_one, {"name": robot, "id": trade_id}, {"client_id": 1, "_id": 0}
        )
        return doc["client_id"] if doc is not None else ""

    # -- exchange side --------------------------------------------------------

    def listen_exchange(self) -> None:
        self._watch = [
            {
                "$match": {
                    "operationType": "insert",
                    "$or": [
                        {"ns.coll": "orders", "fullDocument.taken": {"$ne": True}},
                        {
                            "ns.coll": "order_events",
                            "fullDocument.kind": {"$in": list(REQUEST_KINDS)},
                        },
                    ],
                }
            }
        ]
        self._open_stream()

    @staticmethod
    def _stored(docs) -> list[StoredOrder]:
        return [
            StoredOrder(
                d["id"],
                d["name"],
                NewOrder(d["client_id"], d["symbol"], d["side"], d["qty"], d["type"], d["price"]),
                d["ts"],
                d["status"],
                d["filled"],
            )
            for d in docs
        ]

    def open_orders(self) -> list[StoredOrder]:
        return self._stored(self._guard(self._open_docs))

    def _open_docs(self) -> list[dict]:
        return _plain_all(
            self.db.orders.find({"status": {"$in": ["new", "accepted"]}}).sort("id", 1)
        )

    def repair_open_orders(self) -> None:
        """Bring the open order rows up to their trades and final updates: here a
        trade (or an update) and its order row are two writes, and an exchange that
        died between them left the row behind -- reloaded from it, a cancelled
        order rested again and filled lots filled again."""
        docs = self._guard(self._open_docs)
        if not docs:
            return
        ids = [d["client_id"] for d in docs]
        trades = self._guard(
            lambda: _plain_all(self.db.trades.find({"client_id": {"$in": ids}}).sort("id", 1))
        )
        finals = self._guard(
            lambda: _plain_all(
                self.db.order_events.find(
                    {"client_id": {"$in": ids}, "kind": {"$in": list(MOVES_FROM)}}
                ).sort("id", 1)
            )
        )
        # a row that has lots filled but no trade_ids was written before rows kept
        # them (3 Dec 2026): its filled is taken as it is
        counted = {
            d["client_id"]: set(d.get("trade_ids") or ())
            for d in docs
            if "trade_ids" in d or not d["filled"]
        }
        status = {d["client_id"]: d["status"] for d in docs}
        for trade in trades:
            seen = counted.get(trade["client_id"])
            if seen is not None and trade["id"] not in seen:
                self._count_trade(trade["client_id"], trade["id"], trade["qty"])
        for event in finals:
            cid, kind = event["client_id"], event["kind"]
            if status[cid] in MOVES_FROM[kind]:
                self._move_status(cid, kind)
                status[cid] = kind

    def recent_finished(self, limit: int) -> list[str]:
        finished = {"status": {"$nin": ["new", "accepted"]}}
        docs = self._guard(
            lambda: list(
                self.db.orders.find(finished, {"client_id": 1, "_id": 0})
                .sort("id", -1)
                .limit(limit)
            )
        )
        return [d["client_id"] for d in reversed(docs)]

    def new_requests(self):
        self._read_covers_held()
        orders = self._guard(
            lambda: _plain_all(self.db.orders.find({"status": "new"}).sort("id", 1))
        )
        requests = self._guard(
            lambda: _plain_all(
                self.db.order_events.find(
                    {"kind": {"$in": list(REQUEST_KINDS)}, "handled": {"$ne": True}}
                ).sort("id", 1)
            )
        )
        return self._stored(orders), [request_from(d, d["name"]) for d in requests]

    def mark_handled(self, request_ids: list[int]) -> None:
        if request_ids:
            self._guard(
                self.db.order_events.update_many,
                {"id": {"$in": list(request_ids)}},
                {"$set": {"handled": True}},
            )

    def _insert_once(self, coll: str, doc: dict) -> None:
        """Insert ``doc`` unless a row with its id is there: a retried write's, the
        very row. Another row there is a clash (:class:`StoreIdClash`): the ids
        restarted below the rows (a store restored or recreated), and the write
        would be lost without a word."""
        doc = dict(doc)  # insert_one adds an _id to what it is given
        try:
            self._guard(self.db[coll].insert_one, doc)
        except DuplicateKeyError:
            there = self._guard(self.db[coll].find_one, {"id": doc["id"]}, {"_id": 0})
            there = _plain(there) if there is not None else {}
            if any(there.get(k) != v for k, v in doc.items() if k != "_id"):
                kind = "trade" if coll == "trades" else "order event"
                raise id_clash(kind, doc["id"], there, doc) from None

    def record_update(self, robot: str, update: OrderUpdate) -> int:
        new_id = _reserved(update.ref) or self.reserve_ids("order_events", 1)[0]
        self._insert_once(
            "order_events",
            {
                "id": new_id,
                "name": robot,
                "client_id": update.client_id,
                "kind": update.status,
                "reason": update.reason,
                "ts": update.ts,
            },
        )
        if update.status in MOVES_FROM:
            self._move_status(update.client_id, update.status)
        return new_id

    def _move_status(self, client_id: str, status: str) -> None:
        self._guard(
            self.db.orders.update_one,
            {"client_id": client_id, "status": {"$in": list(MOVES_FROM[status])}},
            {"$set": {"status": status}},
        )

    def record_replace(self, robot: str, replace: Replace) -> None:
        self._guard(
            self.db.orders.update_one,
            {"client_id": replace.client_id, "status": {"$in": ["new", "accepted"]}},
            {"$set": {"qty": replace.qty, "price": replace.price}},
        )

    def record_fill(self, robot: str, fill: Fill) -> int:
        new_id = _reserved(fill.trade_id) or self.reserve_ids("trades", 1)[0]
        self._insert_once(
            "trades",
            {
                "id": new_id,
                "name": robot,
                "client_id": fill.client_id,
                "symbol": fill.symbol,
                "side": fill.side,
                "qty": fill.qty,
                "price": fill.price,
                "fee": fill.fee,
                "ts": fill.ts,
            },
        )
        self._count_trade(fill.client_id, new_id, fill.qty)
        return new_id

    def _count_trade(self, client_id: str, trade_id: int, qty: int) -> None:
        self._guard(  # filled, and done when complete: one round trip; once per trade
            self.db.orders.update_one,
            {"client_id": client_id, "trade_ids": {"$ne": trade_id}},
            [
                {
                    "$set": {
                        "filled": {"$add": ["$filled", qty]},
                        "trade_ids": {
                            "$concatArrays": [{"$ifNull": ["$trade_ids", []]}, [trade_id]]
                        },
                    }
                },
                {
                    "$set": {
                        "status": {"$cond": [{"$gte": ["$filled", "$qty"]}, "filled", "$status"]}
                    }
                },
            ],
        )
