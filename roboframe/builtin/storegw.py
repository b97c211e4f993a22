"""A gateway whose orders go through an order store (the original "slow variant").

The robot writes each order into the store (the unique client id makes a
retried or replayed insert a no-op), each cancel and replace as a request row
for the exchange side, and learns of updates and fills through the store's
change feed, filtered by its name. One thread -- the trade
stream -- owns the store connection: it inserts what :meth:`submit` hands it,
listens for notifications and reads "everything after the last id I saw".

Outages: when the store cannot be reached, the stream tells the loop (a
journaled ``Control("gateway", status=down)`` event, after which risk refuses
new orders), keeps the orders it was given, and retries with backoff. On
reconnect it writes the kept orders, catches up on every update and fill it
missed, and tells the loop the order path is up again. Nothing is lost and,
thanks to the unique client ids and trade ids, nothing is doubled.

Backends subclass :class:`StoreGateway` and name the URL schemes they take;
``roboframe-postgres`` and ``roboframe-mongo`` do.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, ClassVar

import zmq

from roboframe.core import codec
from roboframe.core.events import Cancel, Control, Fill, NewOrder, Replace
from roboframe.core.gateway import Gateway, Runtime
from roboframe.core.orders import CANCELLED, REJECTED
from roboframe.core.sockets import messages
from roboframe.errors import ConfigError
from roboframe.store.base import (
    OrderStore,
    RobotAlreadyRunning,
    StoreBehind,
    StoreUnavailable,
    open_store,
    take_notified,
)
from roboframe.testing import faultpoints
from roboframe.testing.faultpoints import ARMED as _FAULTS

log = logging.getLogger(__name__)

DEFAULT_URL_ENV = "ROBOFRAME_STORE_URL"
RESENT = b"resent"  # the first frame of a resubmit on the order pipe
LOCK_WAIT_S = 3.0  # a robot lock still held this long after start: another process has it


class StoreGateway(Gateway):
    schemes: ClassVar[tuple[str, ...]] = ()
    ready_before_start = True  # the robot's lock is taken before its start
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string", "description": "order store URL"},
            "url_env": {
                "type": "string",
                "default": DEFAULT_URL_ENV,
                "description": "environment variable holding the URL when url is not given",
            },
            "poll_ms": {
                "type": "integer",
                "minimum": 10,
                "default": 1000,
                "description": "read the store at least this often even without notifications",
            },
        },
    }

    def store_url(self) -> str:
        url = self.params.get("url") or os.environ.get(
            self.params.get("url_env", DEFAULT_URL_ENV), ""
        )
        if not url:
            env = self.params.get("url_env", DEFAULT_URL_ENV)
            raise ConfigError(
                f"gateway {self.robot}: no order store URL: set gateway.params.url "
                f"or the {env} environment variable"
            )
        return url

    def open(self, runtime: Runtime) -> None:
        from roboframe.builtin.paper import order_pipe

        self.url = self.store_url()
        self._push, self._pull = order_pipe(runtime, "store-orders")
        self.resume_seen = runtime.store_seen
        self.resume_anchor = runtime.store_anchor

    def submit(self, actions: list) -> None:
        self._push.send(codec.encode(actions))

    def resubmit(self, actions: list) -> None:
        """After a resume: through the store, whose unique client ids make an
        order it holds a no-op (the fast path's exchange may have filled it
        and restarted since, forgetting it; over ZeroMQ it would fill again)."""
        self._push.send_multipart([RESENT, codec.encode(actions)])

    def cancel_left(
        self, run_id: str, timeout: float, known: list[str]
    ) -> tuple[list[str], list[str]]:
        """A cancel request in the store for each open order of run ``run_id``,
        as ``roboframe orders --cancel`` writes them; the exchange side answers.
        Also for those ``known`` open that the store does not list: the fast
        path's exchange writes an order row behind, after it took the order."""
        from roboframe.storeorders import Orders, Target

        prefix = f"{self.robot}-{run_id}-"
        orders = Orders(Target(self.store_url(), self.robot, dict(self.instruments)))
        try:
            working = [o.order.client_id for o in orders.open()]
            wanted = [cid for cid in working if cid.startswith(prefix)]
            wanted += [cid for cid in known if cid.startswith(prefix) and cid not in wanted]
            left = wanted
            if wanted:
                orders.cancel(self.robot, wanted)
                left = orders.wait_finished(wanted, timeout)
        finally:
            orders.close()
        return wanted, left

    def close(self) -> None:
        # both ends of the order pipe close here, after the trade stream has ended:
        # a stream that failed leaves its end open, so the loop's submit queues
        # instead of blocking on a pipe with no reader
        for end in (getattr(self, "_push", None), getattr(self, "_pull", None)):
            if end is not None:  # open() may have failed before making them
                end.close()

    def trade_stream(self, runtime: Runtime, sender: zmq.Socket) -> None:
        stream = _StoreStream(self, runtime, sender)
        try:
            stream.run()
        finally:
            stream.close()


# an order's last word: no fill comes after it (a rejected new order, a cancelled one;
# "rejected" also answered a refused cancel before cancel_rejected: harmless here)
_FINAL = frozenset({CANCELLED, REJECTED})


def in_answer_order(updates: list, fills: list) -> list:
    """A read's updates and fills (``[(id, event)]`` each, by id) in an order the
    exchange could have given them. Trades and updates are numbered apart, so the
    true order between the two is not in the store; what matters is that no fill
    comes after its order's last word. All updates first (as this was) sent a
    partly filled order's ``cancelled`` before its fill: a flatten then closed the
    whole position, and the late fill went past flat. So: the updates that are no
    last word, then the fills, then the last words, each by id."""
    head = [update for _, update in updates if update.status not in _FINAL]
    tail = [update for _, update in updates if update.status in _FINAL]
    return [*head, *(fill for _, fill in fills), *tail]


class _StoreStream:
    """The trade-stream side of :class:`StoreGateway`, one thread."""

    def __init__(self, gateway: StoreGateway, runtime: Runtime, sender: zmq.Socket) -> None:
        self.gw = gateway
        self.robot = gateway.robot
        self.runtime = runtime
        self.sender = sender
        self.orders = gateway._pull  # handed over to this thread
        self.waiting: list[Any] = []  # actions not yet written to the store
        self.resent: list[Any] = []  # sent again after a resume: always the store's way
        self.store: OrderStore | None = None
        # the run's own orders only
        self.prefix = f"{self.robot}-{runtime.run_id}-"
        self.position = (0, 0)  # the last ids read from the store
        self.down = ""
        self.said_down = ""  # the order path's state as the loop last heard it
        self.poll_s = gateway.params.get("poll_ms", 1000) / 1000
        # ids forwarded beyond the position: what a notification or the socket brought
        # ahead of the next read of the store, so that read does not bring it twice;
        # a resumed run's: those its journal holds (its first read is of all the run's)
        seen = gateway.resume_seen or (frozenset(), frozenset())
        self.seen_trades: set[int] = set(seen[0])
        self.seen_events: set[int] = set(seen[1])
        # the highest trade and event ids the run holds: its journal's, then those the
        # store gave it (read, notified). A store below them on a connect was restored
        # or recreated (see _check_not_behind). A new run holds none at its start.
        self.held = (max(seen[0], default=0), max(seen[1], default=0))
        # the highest trade the store gave it (or its journal holds), with its
        # order's client id: the store must hold that very trade, not only as high
        # an id (see _check_not_behind). Not one the fast path's socket brought: the
        # exchange's writer may not have written it yet (a store just back)
        self.anchor = gateway.resume_anchor
        self.connected_once = False

    def close(self) -> None:
        if self.store is not None:
            self.store.close()

    def send(self, event: Any) -> None:
        from roboframe.core.streams import send

        send(self.sender, codec.encode(event), self.runtime.stop)

    def _send_events(self, events: list) -> None:
        from roboframe.core.streams import send

        for raw in codec.encode_events(events):
            send(self.sender, raw, self.runtime.stop)

    # -- connection state -----------------------------------------------------

    def _connect(self) -> None:
        if self.store is None:
            self.store = open_store(self.gw.url)
        else:
            self.store.reconnect()
        self.store.setup()
        # the lock of a process that just ended (a restart, the previous run) is let
        # go by the server a moment after its connection closes: wait that out
        deadline = time.monotonic() + LOCK_WAIT_S
        while not self.store.take_robot_lock(self.robot, self.runtime.run_id):
            if time.monotonic() < deadline and not self.runtime.stop.wait(0.1):
                continue
            raise RobotAlreadyRunning(
                f"robot {self.robot} already runs against this order store (another "
                "process holds its lock); stop that one first -- or, if it was killed just "
                "now, start again once its lock has run out (MongoDB: within 15 s)"
            )
        self._check_not_behind()
        self.connected_once = True
        self.store.listen_robot(self.robot)

    behind_grace_s: ClassVar[float] = 0.0
    """How long a store found behind is asked again before the run fails: the
    store path's ids all came from the store (its reads, its notifications)."""

    def _check_not_behind(self) -> None:
        """On every connect, before anything is written or read: the store's highest
        ids of the robot must not be below the ids the run holds -- its journal's
        (a resumed run), and those the store gave it since (a reconnect: the store
        may have been restored during the outage). Else the robot would take the
        new fills that come under those ids as seen, and trade on a wrong position
        without a word: :class:`StoreBehind` ends the run, unfinished (resumable
        once the store is put right). A new run's first connect has nothing to
        compare."""
        if self.held == (0, 0):
            return
        held = "the run has read up to" if self.connected_once else "its journal holds"
        deadline = time.monotonic() + self.behind_grace_s
        while True:
            try:
                self.store.check_not_behind(self.robot, *self.held, held, self.anchor)
                return
            except StoreBehind:
                if time.monotonic() >= deadline or self.runtime.stop.wait(0.2):
                    raise

    def _set_down(self, reason: str) -> None:
        reason = " ".join(reason.split())  # libpq's text spans lines: one, in status and risk
        if not self.down:
            log.warning(
                "order store unavailable: %s; new orders are refused until it is back", reason
            )
        self.down = reason
        self._say_order_path()

    def _set_up(self) -> None:
        if self.down:
            log.warning("order store is back; catching up")
        self.down = ""
        self._say_order_path()

    def path_down(self) -> str:
        """Why the order path is down ("" when it is up): here, the store."""
        return self.down

    def _say_order_path(self) -> None:
        """Tell the loop when the order path goes down or comes back up (risk
        refuses new orders meanwhile): on each change, not on each reason."""
        reason = self.path_down()
        if bool(reason) != bool(self.said_down):
            if reason:
                self.send(Control("gateway", 0, {"status": "down", "reason": reason}))
            else:
                self.send(Control("gateway", 0, {"status": "up"}))
        self.said_down = reason

    # -- work -----------------------------------------------------------------

    def _write_waiting(self) -> None:
        self._write_to_store(self.resent)
        self._write_to_store(self.waiting)

    def _write_to_store(self, actions: list) -> None:
        """Write ``actions`` to the store, each taken off the front once written:
        after an outage, the rest are written on reconnect. A request written
        again after a lost reply makes a second row: the exchange answers the
        second cancel "not open", which the kernel takes in its stride, and a
        repeated replace not at all."""
        store = self.store
        while actions:
            action = actions[0]
            if type(action) is NewOrder:
                inserted = store.insert_order(
                    self.robot, self.runtime.run_id, action, time.time_ns()
                )
                if inserted and _FAULTS:  # committed; its acknowledgement is not journaled yet
                    faultpoints.reached("store.after_insert")
            elif type(action) is Cancel:
                store.request_cancel(self.robot, action.client_id, time.time_ns())
            elif type(action) is Replace:
                store.request_replace(
                    self.robot, action.client_id, action.qty, action.price, time.time_ns()
                )
            actions.pop(0)

    def _catch_up(self) -> None:
        """Everything of this run after the last ids read, oldest first."""
        trade_id, event_id = self.position
        fills, updates = self.store.changes_after(self.robot, self.prefix, trade_id, event_id)
        self._forward_many(in_answer_order(updates, fills))
        self.position = (
            fills[-1][0] if fills else trade_id,
            updates[-1][0] if updates else event_id,
        )
        self.held = (max(self.held[0], self.position[0]), max(self.held[1], self.position[1]))
        if fills and fills[-1][0] > self.anchor[0]:
            self.anchor = (fills[-1][0], fills[-1][1].client_id)
        self._caught_up()

    def _fresh(self, event: Any) -> bool:
        """True the first time an event comes (and remember it came). One
        without a store id (an answer an exchange sent without writing it)
        cannot come twice by two ways: it always passes."""
        if type(event) is Fill:
            text, seen, floor = event.trade_id, self.seen_trades, self.position[0]
        else:
            text, seen, floor = event.ref, self.seen_events, self.position[1]
        if not text.isdigit():
            return True
        ref = int(text)
        if ref <= floor or ref in seen:
            return False
        seen.add(ref)
        return True

    def _forward_many(self, events: list) -> None:
        """Send store-identified events that came together, each once whichever way
        it came first, to the loop as one message (Batches, when many)."""
        fresh = [event for event in events if self._fresh(event)]
        if fresh:
            self._answered(fresh)
            self._send_events(fresh)

    def _answered(self, fresh: list) -> None:
        """What the exchange side said, each the first time it comes: for a gateway
        that watches its requests for answers (the fast path)."""

    def _caught_up(self) -> None:
        """After a read of the store: what the position covers need not be remembered."""
        trade_id, event_id = self.position
        self.seen_trades = {r for r in self.seen_trades if r > trade_id}
        self.seen_events = {r for r in self.seen_events if r > event_id}

    def _read(self, full: bool) -> bool:
        """Forward what the notifications brought, or read the store (see
        :func:`take_notified`). True when the store was read."""
        return take_notified(
            self.store,
            lambda: self.store.pushed_changes(self.robot, self.prefix),
            self._catch_up,
            self._forward_all,
            full=full,
        )

    def _forward_all(self, pushed: list) -> None:
        trade_id, event_id = self.held  # notified rows are the store's too
        for ref, event in pushed:
            if type(event) is Fill:
                trade_id = max(trade_id, ref)
                if ref > self.anchor[0]:
                    self.anchor = (ref, event.client_id)
            else:
                event_id = max(event_id, ref)
        self.held = (trade_id, event_id)
        self._forward_many([event for _ref, event in pushed])

    def _drain_orders(self) -> None:
        for frames in messages(self.orders):
            resent = len(frames) == 2 and frames[0] == RESENT
            (self.resent if resent else self.waiting).extend(codec.decode_actions(frames[-1]))

    def run(self) -> None:
        stop = self.runtime.stop
        backoff = 0.2
        while not stop.is_set():
            try:
                if self.store is None or self.store.fileno() is None or self.down:
                    self._connect()
                    self.runtime.ready.set()  # the lock is the robot's: it may start
                    self._write_waiting()
                    self._catch_up()
                    self._set_up()
                    backoff = 0.2
                self._serve(stop)
            except StoreUnavailable as exc:
                self.runtime.ready.set()  # out of reach: it starts with its order path down
                self._set_down(str(exc))
                self._drain_orders()
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._flush_at_stop()

    def _flush_at_stop(self) -> None:
        """The run stops: what the loop handed over before it stopped -- journaled
        as sent -- is written to the store now, not left in the pipe for a resume
        to send much later (a strategy error stops the robot at once, orders on
        their way; ``on_stop``'s cancels may still be in the pipe). Through the
        store also on the fast path: its socket closes now, and the store's
        unique client ids make anything written twice a no-op. One attempt: a
        store that is down leaves them to ``run --resume``, and the log says so."""
        self._drain_orders()
        if not (self.waiting or self.resent):
            return
        try:
            if self.store is None or self.store.fileno() is None or self.down:
                self._connect()
            self._write_to_store(self.resent)
            self._write_to_store(self.waiting)
        except (StoreUnavailable, RobotAlreadyRunning) as exc:
            log.warning(
                "%d order request(s) the robot made before it stopped were not written to "
                "the order store (%s), so never sent; the journal has them as sent. After a "
                "strategy error, `roboframe run --resume` with the strategy fixed sends them; "
                "a run that ended cleanly does not resume, and no later run sends them",
                len(self.resent) + len(self.waiting),
                exc,
            )

    def _serve(self, stop) -> None:
        """Until the store fails or the run stops: write orders, read changes."""
        poller = zmq.Poller()
        poller.register(self.orders, zmq.POLLIN)
        fd = self.store.fileno()
        if fd is not None:
            poller.register(fd, zmq.POLLIN)
        next_poll = time.monotonic() + self.poll_s
        # a store without a socket to poll (a third-party backend) is asked every few ms
        timeout = 50 if fd is not None else 5
        while not stop.is_set():
            ready = dict(poller.poll(0 if self.store.pending() else timeout))
            self.store.keep_robot_lock()  # a lease is renewed when due
            if self.orders in ready:
                self._drain_orders()
                self._write_waiting()
            now = time.monotonic()
            woke = self.store.notified(fd in ready)
            if (woke or now >= next_poll) and self._read(full=now >= next_poll):
                next_poll = now + self.poll_s
