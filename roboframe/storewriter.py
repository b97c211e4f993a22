"""The exchange's store writer: the fast path's orders, updates and fills written
to the order store, in order, by a process of its own.

The fast path answers a robot at once and writes the store behind. Done on a
thread of the exchange, the writing (psycopg or pymongo work, mostly Python)
takes the interpreter lock from the thread that answers robots, and every
answer waits for it: on a two-core machine that doubled the order -> fill
time. In a process of its own it takes nothing from the hot path.

The exchange connects a PUSH socket to the writer's PULL, bound at an
``ipc://`` address in a private folder; a connecting socket queues from the
first send, so nothing waits for the writer to start. Each message is a list
of ``[robot, NewOrder | OrderUpdate | Fill | Replace]`` (what the exchange had
to hand over in one turn of its loop: one send, not one per item; a Replace is
one that took effect, right before its ``replaced`` update); an empty message
asks the writer to write what it holds and exit. While the store is away the
writer keeps everything and retries. When the exchange dies without asking, the
writer still writes what it received, then exits. While connected it holds the
store's writer lock (:meth:`~roboframe.store.base.OrderStore.try_writer_lock`),
which a restarted exchange waits for before it serves the fast path.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import msgspec
import zmq

from roboframe.core.events import Fill, NewOrder, OrderUpdate, Replace
from roboframe.errors import RoboframeError
from roboframe.store.base import (
    OrderStore,
    StoreIdClash,
    StoreUnavailable,
    open_store,
    run_id_of,
)

log = logging.getLogger(__name__)

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[tuple[str, NewOrder | OrderUpdate | Fill | Replace]]).decode
STOP = b""
ORPHAN_GRACE_S = 60.0  # an orphaned writer retries a missing store this long, then gives up
CLASH_EXIT = 2  # the writer found another row under an id it writes (StoreIdClash)


def write_items(store: OrderStore, items: list) -> None:
    """Write ``[(robot, NewOrder | OrderUpdate | Fill | Replace)]`` in order,
    removing from ``items`` what is written: all in one transaction where the
    store can (``records_orders``), else order rows one by one and runs of the
    rest (updates, fills, and replaces that took effect). Updates and fills get
    their store ids first, kept in ``items``, so a retry after a failure -- even
    one after the commit, whose answer was lost -- writes the very rows again,
    which the store's unique ids make no-ops (and a replace written again sets
    the same qty and price)."""
    _give_ids(store, items)
    if store.records_orders and items:
        store.record_many(items)
        items.clear()
    while items:
        robot, item = items[0]
        if type(item) is NewOrder:
            store.insert_taken_order(robot, run_id_of(robot, item.client_id), item)
            del items[0]
            continue
        j = 0
        while j < len(items) and type(items[j][1]) is not NewOrder:
            j += 1
        store.record_many(items[:j])
        del items[:j]


WRITE_CHUNK = 50  # items written between two renewals of the writer's lease


def _write_renewing(store: OrderStore, pending: list) -> None:
    """Write ``pending`` (removing what is written) a chunk at a time, renewing the
    writer's lease between chunks: a backlog written in one go (after an outage,
    behind a busy exchange) outlasted a lease, and a restarted exchange took the
    store for free -- two writers, orders filled twice. A chunk that fails keeps
    the ids it was given, in ``pending``, for the retry."""
    while pending:
        n = min(len(pending), WRITE_CHUNK)
        chunk = pending[:n]
        try:
            write_items(store, chunk)
        finally:
            pending[:n] = chunk  # what is left of it, under the ids it got
        store.keep_writer_lock()


def _give_ids(store: OrderStore, items: list) -> None:
    """Store ids, kept in ``items``, for the updates and fills that have none -- or
    only an id of their own (the paper engine's ``P7``), which is no store id: a
    retry after a failure halfway then writes the very rows again, and the
    store's unique ids make those no-ops instead of second trades."""
    for kind, cls, field in (("trades", Fill, "trade_id"), ("order_events", OrderUpdate, "ref")):
        need = [
            i
            for i, (_, item) in enumerate(items)
            if type(item) is cls and not getattr(item, field).isdigit()
        ]
        if not need:
            continue
        try:
            ids = store.reserve_ids(kind, len(need))
        except NotImplementedError:  # a backend without reserved ids
            return
        for i, new in zip(need, ids, strict=True):
            robot, item = items[i]
            items[i] = (robot, msgspec.structs.replace(item, **{field: str(new)}))


class WriterDied(RoboframeError):
    """The store writer process ended while the exchange still needed it."""


class StoreWriterProcess:
    """The exchange's handle on its store writer process."""

    def __init__(self, url: str, context: zmq.Context) -> None:
        self.url = url
        self.context = context
        self.folder = tempfile.mkdtemp(prefix="rf-writer-")  # 0700: ours alone
        self.address = f"ipc://{self.folder}/writer"
        self.push: zmq.Socket | None = None
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "roboframe.storewriter"],
            stdin=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the exchange's terminal is the exchange's
        )
        self.proc.stdin.write(json.dumps({"url": self.url, "address": self.address}).encode())
        self.proc.stdin.close()  # the URL never shows in a process listing
        self.push = self.context.socket(zmq.PUSH)
        self.push.setsockopt(zmq.SNDHWM, 0)  # never block the exchange: the writer catches up
        self.push.setsockopt(zmq.LINGER, 5000)
        self.push.connect(self.address)

    def put(self, items: list[tuple]) -> None:
        """Hand ``[(robot, NewOrder | OrderUpdate | Fill | Replace)]`` over, in order."""
        if items:
            self.push.send(_encode(items))

    def check(self) -> None:
        """Raise :class:`WriterDied` when the writer is gone."""
        code = self.proc.poll()
        if code == CLASH_EXIT:
            raise WriterDied(
                "the exchange's store writer stopped: the order store holds other rows "
                "under the ids it writes (restored from an older backup, or its tables "
                "recreated, while the exchange ran; its log names the row), and what it had "
                "not written is missing from the store. Put the store right (the newest "
                "backup), then restart the exchange; robots reconcile against the store"
            )
        if code is not None:
            raise WriterDied(
                f"the exchange's store writer ended (exit code {code}); what it had not "
                "written is missing from the store. Restart the exchange; robots reconcile "
                "against the store"
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the writer to write what it holds and exit; wait up to ``timeout``."""
        try:
            if self.push is not None and self.proc is not None and self.proc.poll() is None:
                self.push.send(STOP)
                try:
                    self.proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "exchange: the store writer did not finish within %.0f s "
                        "(is the store down?); stopping it",
                        timeout,
                    )
                    self.proc.terminate()
                    try:
                        self.proc.wait(10)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
        finally:
            if self.push is not None:
                self.push.close(linger=0)
            shutil.rmtree(self.folder, ignore_errors=True)


# -- the writer process --------------------------------------------------------


def _take_writer_lock(store: OrderStore) -> None:
    """Hold the store's writer lock while connected: a restarted exchange waits for
    it, so this writer's answers land before any under the new exchange's ids."""
    said = False
    while not store.try_writer_lock(keep=True):
        if not said:
            log.warning("store writer: another writer holds this store; waiting for it")
            said = True
        time.sleep(0.2)


def serve(url: str, address: str, parent: int) -> int:
    """Receive and write until asked to stop, or the parent is gone. Returns the
    number of items left unwritten (0 unless the store stayed away). Raises
    :class:`StoreIdClash` when the store holds another row under an id it writes:
    the writer stops, and the exchange with it (:meth:`StoreWriterProcess.check`),
    rather than go on losing writes without a word."""
    ctx = zmq.Context()
    pull = ctx.socket(zmq.PULL)
    pull.setsockopt(zmq.RCVHWM, 0)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind(address)
    pending: list = []
    store: OrderStore | None = None
    backoff = 0.2
    stopping = False
    orphaned_at = 0.0
    try:
        while True:
            if pull.poll(0 if pending else 200):
                while True:
                    try:
                        raw = pull.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if raw == STOP:
                        stopping = True
                        continue
                    try:
                        pending.extend(_decode(raw))
                    except msgspec.DecodeError:
                        log.error("store writer: malformed item dropped: %r", raw[:80])
            if pending or store is not None:
                try:
                    if store is None:
                        store = open_store(url)
                        store.setup()  # tables and functions as this version writes them
                        _take_writer_lock(store)
                    store.keep_writer_lock()  # a lease is renewed when due, idle or not
                    _write_renewing(store, pending)
                    backoff = 0.2
                except StoreUnavailable as exc:
                    log.warning("store writer: waiting for the store: %s", exc)
                    if store is not None:
                        with contextlib.suppress(Exception):
                            store.close()
                    store = None
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
            if not stopping and os.getppid() != parent:
                stopping = True  # the exchange died: write what arrived, then go
                orphaned_at = time.monotonic()
            if stopping and not pending and not pull.poll(0):
                return 0
            if orphaned_at and time.monotonic() - orphaned_at > ORPHAN_GRACE_S:
                return len(pending)
    finally:
        if pending:
            log.error("store writer: %d item(s) left unwritten", len(pending))
        if store is not None:
            with contextlib.suppress(Exception):
                store.close()
        pull.close()
        ctx.term()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = json.loads(sys.stdin.read())

    def terminated(_signum, _frame):
        raise SystemExit(3)

    signal.signal(signal.SIGTERM, terminated)
    parent = os.getppid()
    try:
        left = serve(config["url"], config["address"], parent)
    except StoreIdClash as exc:
        log.error("store writer: %s; the writer stops, and the exchange with it", exc)
        sys.exit(CLASH_EXIT)
    sys.exit(1 if left else 0)


if __name__ == "__main__":
    main()
