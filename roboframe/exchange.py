"""``roboframe exchange``: a paper exchange process behind an order store.

With ``--orders ADDRESS`` it also serves the fast path: robots with the ``zmq``
gateway send orders straight to a ROUTER socket and get acknowledgements and
fills back the same way at once; the exchange's store writer (a process of
its own, :mod:`roboframe.storewriter`) writes every order, update and trade to
the store right after, under ids the exchange reserved in the store
beforehand, so the store stays the source of truth and a robot catching up
from it sees the very same ids.

It is what a real broker bridge replaces, and the worked example of one
(``docs/gateways.md``): it watches the store for new orders and requests
(cancels, replaces), fills orders against the market-data publisher every
robot uses, and writes acknowledgements, trades and the new quantity and
price of replaced orders back to the store, whose change feed carries the
answers to each robot.

On start it reloads the orders still open in the store, so a restarted
exchange keeps serving them. A store has one exchange: a second one started
on it waits, reading market data, and takes over when the first is gone.
While the store is unreachable it keeps consuming market data, holds what it
has to write, and writes it in order once the store is back. Its memory does
not grow with every order: of the finished ones it keeps the newest
(``remember``), of the open ones all.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
import threading
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import zmq

from roboframe.builtin.paper import PaperExchange
from roboframe.config.spec import DEFAULT_MAX_AHEAD_MS
from roboframe.core import codec
from roboframe.core.events import Bar, Cancel, Fill, NewOrder, OrderUpdate, Replace, Tick
from roboframe.core.orders import REPLACED
from roboframe.core.sockets import messages, readable
from roboframe.core.timetext import span_text, utc_text
from roboframe.curve import ServerKeys, make_client, make_server, start_authenticator
from roboframe.errors import RoboframeError
from roboframe.store.base import (
    OrderStore,
    StoreUnavailable,
    open_store,
    shown_url,
    take_notified,
)
from roboframe.store.ids import IdsAhead
from roboframe.storewriter import StoreWriterProcess, write_items

log = logging.getLogger(__name__)

DEFAULT_MAX_AHEAD_NS = DEFAULT_MAX_AHEAD_MS * 1_000_000  # as a live robot's loop.max_ahead


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
        orders_address: str | None = None,
        orders_curve: ServerKeys | None = None,
        feed_curve: tuple[Path, Path] | None = None,
        remember: int = 65_536,
        max_ahead_ns: int | None = DEFAULT_MAX_AHEAD_NS,
    ) -> None:
        self.store_url = store_url
        self.feed_address = feed_address
        self.orders_address = orders_address  # the fast path: a ROUTER robots connect to
        self.orders_curve = orders_curve  # CURVE server keys and allowed robots for it
        self.feed_curve = feed_curve  # CURVE client keys for the market-data feed
        self.sub: zmq.Socket | None = None  # the market data, once subscribed
        self.fast: dict[str, bytes] = {}  # client id -> robot's socket identity
        # answers waiting for an id (and replaces that took effect, for the store)
        self.outbox: list[tuple[str, object]] = []
        self.to_writer: list[tuple[str, object]] = []  # for the store writer, this loop turn
        self.router: zmq.Socket | None = None
        self.writer: StoreWriterProcess | None = None
        self.engine = PaperExchange(
            None, commission=commission, slippage_ticks=slippage_ticks, fill_at=fill_at
        )
        self.owner: dict[str, str] = {}  # client id -> robot, oldest first
        self.remember = remember  # finished orders kept in owner/fast (open ones always)
        self.unwritten: list[tuple[str, object]] = []  # (robot, update, fill or Replace)
        self.handled: list[int] = []  # requests answered, to mark in the store
        self.last_replace: dict[str, tuple[int, int]] = {}  # client id -> (qty, price)
        self.store: OrderStore | None = None
        self.ids: IdsAhead | None = None  # answers' store ids, reserved ahead
        self.poll_s = poll_s
        self.max_ahead_ns = max_ahead_ns  # market data stamped further ahead is dropped
        self.counts = {
            "orders": 0,
            "fills": 0,
            "cancels": 0,
            "replaces": 0,
            "malformed": 0,  # order messages
            "malformed_market": 0,  # market-data messages
            "market_ahead": 0,  # market events stamped too far ahead of the clock
        }

    # -- store ----------------------------------------------------------------

    def _connect(self) -> None:
        if self.store is None:
            self.store = open_store(self.store_url)
        else:
            self.store.reconnect()
        self.store.setup()
        self.store.listen_exchange()

    def _sole_exchange(self, sub: zmq.Socket, stop: threading.Event) -> bool:
        """Take the store's exchange lock, waiting while another exchange holds it:
        two would both take every new order and fill it twice. Market data is
        read meanwhile, so a takeover starts from the latest prices. False when
        stopped while waiting."""
        if self.store.take_exchange_lock():
            return True
        log.warning(
            "exchange: another exchange serves this order store; this one waits and "
            "takes over when that one is gone"
        )
        while not stop.wait(0.5):
            self._on_market(sub)
            if self.store.take_exchange_lock():
                log.warning("exchange: the other exchange is gone; taking over")
                self._take_over()
                return True
        return False

    def _take_over(self) -> None:
        """After another exchange served the store: what this one wrote it owes
        first, then the orders as the store has them now, not as they were."""
        self._write()
        if self.owner:
            self.engine.open_orders.clear()
            self.owner.clear()
            self.fast.clear()
            self.last_replace.clear()

    def _earlier_writers_done(self, stop: threading.Event) -> bool:
        """Wait until no store writer holds the store: an earlier exchange's writer
        finishing what it was given writes answers under lower ids than this
        exchange will hand out, and a robot reading "after id N" in between would
        step over them. False when stopped while waiting."""
        said = False
        while not self.store.try_writer_lock(keep=False):
            if not said:
                log.warning(
                    "exchange: another store writer is still writing to the order store "
                    "(an earlier exchange's, finishing, or another exchange's on the same "
                    "store); this exchange waits for it"
                )
                said = True
            if stop.wait(0.2):
                return False
        if said:
            log.warning("exchange: the other store writer is done; serving")
        return True

    def _reload(self) -> None:
        """Orders acknowledged before a restart rest again; new ones are read as new.
        The newest finished ones (as many as the engine remembers) are taken as
        finished: sent again over ZeroMQ by a client that never heard back, they
        are ignored, as before the restart, not filled a second time."""
        self.engine.remember_finished(self.store.recent_finished(self.engine.remembers))
        self.store.repair_open_orders()
        for stored in self.store.open_orders():
            if stored.status == "accepted":
                self.owner[stored.order.client_id] = stored.robot
                self.engine.restore(stored.order, stored.filled)
                self.counts["orders"] += 1
        log.info("exchange: %d open orders reloaded", len(self.engine.open_orders))

    def _place(self, robot: str, order: NewOrder) -> None:
        """A new order from either path, placed and answered. The market data
        already here is taken first: a robot decides on a bar the publisher sent
        here too, before the robot had it; taken after the order, that bar's open
        -- a price from before the decision -- filled it."""
        if self.sub is not None and readable(self.sub):
            self._on_market(self.sub)
        cid = order.client_id
        self.owner[cid] = robot
        self.last_replace.pop(cid, None)  # see _replace
        for answer in self.engine.submit(order):
            self._answer(robot, answer)
        self.counts["orders"] += 1

    def _answer(self, robot: str, event) -> None:
        """Fast-path answers go to the robot first, then to the store writer. With a
        writer, store-path answers go through it too, under ids from the same
        reserve: one writer writing in answer order, so a robot reading "after id
        N" never sees a higher id before a lower one of its own (a fast robot's
        order reloaded after a restart is answered the store's way). A Replace
        that took effect goes the same way, right before its answer."""
        if self.writer is not None or event.client_id in self.fast:
            self.outbox.append((robot, event))
        else:
            self.unwritten.append((robot, event))

    def _apply(self, robot: str, action: Cancel | Replace) -> None:
        """A cancel or a replace, from either path, answered like any update."""
        if type(action) is Cancel:
            answers = self.engine.submit(action)
            self.counts["cancels"] += 1
        else:
            answers = self._replace(robot, action)
        for answer in answers:
            self._answer(robot, answer)

    def _replace(self, robot: str, action: Replace) -> list[OrderUpdate]:
        """The engine's answer to a replace; one that took effect is handed on for
        the store first, so the store's order row gets the new qty and price.

        A replace asking for what the order has already, or for what the
        order's last replace asked, is a repeat -- a request written again after
        a lost reply, or sent again by a resumed robot -- whose first answer
        stands: a second would reach the robot with no replace pending (an
        anomaly), or clear the next one it sent. It gets none. (The kernel never
        sends a replace that changes nothing, and an identical one sent again
        after a refusal of an open order would be refused again here: these
        paper rules refuse for good.) A replace refused because its order was not
        here yet is forgotten when the order comes (it went the store's way, the
        replace over the socket): the strategy's retry then is no repeat, and
        unanswered its replace would stay pending for good."""
        cid, asked = action.client_id, (action.qty, action.price)
        resting = self.engine.open_orders.get(cid)
        if self.last_replace.get(cid) == asked or (
            resting is not None and (resting.order.qty, resting.order.price) == asked
        ):
            return []
        self.last_replace[cid] = asked
        self.counts["replaces"] += 1
        answers = self.engine.submit(action)
        if answers[0].status == REPLACED:
            self._answer(robot, action)
        return answers

    # -- the fast path --------------------------------------------------------

    def _on_orders(self) -> None:
        """Orders straight from robots: answered at once, written to the store behind."""
        for frames in messages(self.router):
            if len(frames) != 2:  # the robot's identity, then one message
                self._malformed(frames[0], f"{len(frames) - 1} frames instead of one")
                continue
            # a robot's loop sends from "NAME\0orders": the answers go to its trade
            # stream, "NAME" (a robot of older roboframe sends from "NAME" alone)
            identity, payload = frames[0].partition(b"\x00")[0], frames[1]
            robot = identity.decode(errors="replace")
            try:
                actions = codec.decode_actions(payload)
            except codec.DecodeError as exc:
                self._malformed(identity, str(exc))
                continue
            for action in actions:
                cid = action.client_id
                if type(action) is NewOrder:
                    if cid in self.owner or self.engine.finished(cid):
                        continue  # a resubmitted order: the first one stands
                    self.fast[cid] = identity
                    self.to_writer.append((robot, action))  # the order row, behind
                    self._place(robot, action)
                else:
                    if cid not in self.owner and not self.engine.finished(cid):
                        # its order may wait in the store, not read yet (it went the
                        # store's way, this over the socket): placed first, or the
                        # cancel is refused "not open" and the order then taken
                        with contextlib.suppress(StoreUnavailable):  # the loop finds it
                            self._read_requests()
                    self.fast.setdefault(cid, identity)
                    self._apply(robot, action)

    def _malformed(self, identity: bytes, why: str) -> None:
        """A message that is not an order list: counted, logged, dropped; the
        exchange goes on."""
        self.counts["malformed"] += 1
        robot = identity.decode(errors="replace")
        log.warning("exchange: malformed order message from %s dropped: %s", robot, why)

    def _send_outbox(self) -> None:
        """Give answers their store ids, send the fast path's to their robots, and
        queue all of them for the store writer (with the replaces that took
        effect, which are for the store alone).

        One message per robot and one for the writer per turn of the loop: a
        ZeroMQ send costs more than the rest of an order's handling here."""
        fills = sum(1 for _, event in self.outbox if type(event) is Fill)
        updates = sum(1 for _, event in self.outbox if type(event) is OrderUpdate)
        self.counts["fills"] += fills
        trade_ids = iter(self.ids.take("trades", fills))  # from memory: see IdsAhead
        event_ids = iter(self.ids.take("order_events", updates))
        answers: dict[bytes, list] = {}
        for robot, event in self.outbox:
            kind = type(event)
            if kind is Fill:
                event = msgspec.structs.replace(event, trade_id=str(next(trade_ids)))
            elif kind is OrderUpdate:
                event = msgspec.structs.replace(event, ref=str(next(event_ids)))
            self.to_writer.append((robot, event))
            if kind is Replace:
                continue
            identity = self.fast.get(event.client_id)
            if identity is not None:  # else the robot reads it from the store
                answers.setdefault(identity, []).append(event)
        self.outbox = []
        # handed to the writer first: an exchange dying between the two leaves the
        # answers for the robot to read from the store, never answers the store lacks
        self._hand_to_writer()
        for identity, events in answers.items():
            for raw in codec.encode_events(events):
                self.router.send_multipart([identity, raw])

    def _hand_to_writer(self) -> None:
        if self.to_writer:
            self.writer.put(self.to_writer)
            self.to_writer = []

    def _trim(self) -> None:
        """Forget the robot and socket of the oldest finished orders, down to half of
        ``remember``: a long-running exchange must not grow with every order. A
        forgotten order resubmitted is still ignored while the paper engine
        remembers it as finished (it keeps as many); an answer about it goes the
        store's way."""
        open_orders, owner = self.engine.open_orders, self.owner
        for cid in list(owner):  # oldest first
            if len(owner) <= self.remember // 2:
                break
            if cid not in open_orders:
                del owner[cid]
        # sockets and replaces only of orders still known (a cancel or replace of an
        # unknown order adds one)
        self.fast = {cid: identity for cid, identity in self.fast.items() if cid in owner}
        self.last_replace = {cid: v for cid, v in self.last_replace.items() if cid in owner}

    def _read_requests(self) -> None:
        self._requests(*self.store.new_requests())

    def _take_requests(self, full: bool) -> bool:
        """New orders and requests from the notifications, or read from the
        store (see :func:`take_notified`). True when the store was read."""
        return take_notified(
            self.store,
            self.store.pushed_requests,
            self._read_requests,
            lambda pushed: self._requests(*pushed),
            full=full,
        )

    def _requests(self, orders: list, requests: list) -> None:
        for stored in orders:
            if stored.order.client_id not in self.owner:  # taken; acknowledgement not written
                self._place(stored.robot, stored.order)
        for ref, robot, action in requests:  # cancels and replaces, as the robot wrote them
            if ref in self.handled:
                continue
            self.owner.setdefault(action.client_id, robot)
            self._apply(robot, action)
            self.handled.append(ref)

    def _write(self) -> None:
        if self.unwritten:
            fills = sum(1 for _, item in self.unwritten if type(item) is Fill)
            write_items(self.store, self.unwritten)  # removes what it wrote
            self.counts["fills"] += fills
        if self.handled:
            self.store.mark_handled(self.handled)
            self.handled = []

    # -- market data ----------------------------------------------------------

    def _on_market(self, sub: zmq.Socket) -> None:
        ahead = self.max_ahead_ns
        horizon = None if ahead is None else time.time_ns() + ahead
        for frames in messages(sub):
            try:
                msg = codec.decode(frames[-1])
            except codec.DECODE_ERRORS as exc:
                self._malformed_market(frames, exc)
                continue
            for event in codec.events_in(msg):
                if type(event) in (Tick, Bar):
                    if horizon is not None and event.ts > horizon:
                        self._market_ahead(event)
                        continue
                    for fill in self.engine.on_market(event):
                        self._answer(self.owner.get(fill.client_id, ""), fill)

    def _market_ahead(self, event: Tick | Bar) -> None:
        """A price stamped too far ahead of the clock (see the zmq feed's
        ``max_ahead``): counted, logged, dropped. Taken, it would make every later
        price of its symbol stale here too: an exchange where nothing fills."""
        count = self.counts["market_ahead"] = self.counts["market_ahead"] + 1
        if count == 1 or count % 1000 == 0:
            log.error(
                "exchange: market data from the future dropped (%d so far): %s at %s, "
                "more than --max-ahead (%s) past this host's clock",
                count,
                event.symbol,
                utc_text(event.ts),
                span_text(self.max_ahead_ns),
            )

    def _malformed_market(self, frames: list[bytes], exc: Exception) -> None:
        """A market-data message that does not decode: counted, the first (and every
        thousandth) logged, dropped; the exchange goes on. Unseen, a wrong program on
        the feed port would look like a quiet market in which nothing fills."""
        count = self.counts["malformed_market"] = self.counts["malformed_market"] + 1
        if count == 1 or count % 1000 == 0:
            log.warning(
                "exchange: malformed market data dropped (%d so far): topic %r: %s; first bytes %r",
                count,
                frames[0][:64] if len(frames) > 1 else b"",
                exc,
                bytes(frames[-1][:32]),
            )

    # -- the process ----------------------------------------------------------

    def run(self, stop: threading.Event, ready: threading.Event | None = None) -> None:
        # with CURVE, a context of its own: the authenticator guards every socket of one
        own = self.orders_curve is not None or self.feed_curve is not None
        ctx = zmq.Context() if own else zmq.Context.instance()
        sub = auth = None
        try:
            sub = self.sub = self._subscribe(ctx)
            self._orders_port_free()
        except BaseException:
            for sock in (sub, self.router):
                if sock is not None:
                    sock.close(linger=0)
            if own:
                ctx.destroy(linger=0)
            raise
        backoff = 0.2
        connected = said_down = False
        try:
            while not stop.is_set():
                try:
                    if not connected:
                        self._connect()
                        if not self._sole_exchange(sub, stop):
                            break  # stopped while another exchange served the store
                        # an earlier exchange's writer still writing: waited for with
                        # or without a fast path, or this one reloads orders whose
                        # fills are in that writer's hands, and fills them again
                        if self.writer is None and not self._earlier_writers_done(stop):
                            break  # stopped while waiting
                        if self.orders_address and self.writer is None:
                            self.writer = StoreWriterProcess(self.store_url, ctx)
                            self.writer.start()
                        if self.ids is None:  # reserving from now on, off this thread
                            self.ids = IdsAhead(self.store_url)
                            self.ids.start()
                        if not self.owner:
                            self._reload()
                        if self.orders_address and self.router is None:
                            # bound once this exchange serves: robots linked to a
                            # standby sent it orders it took up 15 s late, and said
                            # the exchange was back; unlinked, they use the store
                            auth = self._bind_orders(ctx)
                        connected, said_down = True, False
                        backoff = 0.2
                        log.info("exchange: serving orders from %s", shown_url(self.store_url))
                        if ready is not None:
                            ready.set()
                    self._serve(sub, stop)
                except StoreUnavailable as exc:
                    if not said_down:  # once per outage, a start without the store included
                        log.warning("exchange: order store unavailable: %s; retrying", exc)
                        said_down = True
                    connected = False
                    self._on_market(sub)
                    stop.wait(backoff)
                    backoff = min(backoff * 2, 5.0)
        finally:
            sub.close()
            if self.router is not None:
                self.router.close()
            if self.writer is not None:
                self._hand_to_writer()
                self.writer.stop(30)  # it writes what it holds before it stops
            if self.ids is not None:
                self.ids.close()
            if self.store is not None:
                self.store.close()
            if auth is not None:
                auth.stop()
            if own:
                ctx.destroy(linger=0)

    def _subscribe(self, ctx: zmq.Context) -> zmq.Socket:
        """The SUB socket on the market-data publisher, every topic. A malformed
        ``--feed`` address is a :class:`RoboframeError` naming it, not a traceback."""
        sub = ctx.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        try:
            if self.feed_curve is not None:
                make_client(sub, *self.feed_curve, "exchange --feed-curve-secret-key")
            sub.connect(self.feed_address)
        except zmq.ZMQError as exc:
            sub.close(linger=0)
            raise RoboframeError(
                f"cannot connect to the market-data publisher {self.feed_address}: {exc}; "
                "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
            ) from None
        return sub

    def _orders_port_free(self) -> None:
        """At the start, before any wait: a tcp ``--orders`` port another process
        holds is said now (its ROUTER is bound only once this exchange serves)."""
        address = self.orders_address
        if not address or not address.startswith("tcp://"):
            return
        host, _, port = address.removeprefix("tcp://").rpartition(":")
        host = "0.0.0.0" if host in ("*", "") else host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind((host, int(port)))
        except (OSError, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                raise RoboframeError(
                    f"cannot bind the orders socket to {address}: {exc}; is another "
                    "exchange (or an old one, still stopping) running on it?"
                ) from None
            # an interface name, say, which ZeroMQ takes: its bind says what is wrong

    def _bind_orders(self, ctx: zmq.Context):
        """The fast path's ROUTER, bound, when ``--orders`` is given; the CURVE
        authenticator guarding it, if any. A port still held (another exchange, or
        an old one still stopping) is a :class:`RoboframeError` saying so."""
        if not self.orders_address:
            return None
        auth = None
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a gone robot reads the store
        # a robot restarted at once links under the identities of its old links,
        # which may stand yet (their end not seen): the newest link takes them over;
        # else it is ignored for good, its orders held, neither taken nor refused
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        try:
            if self.orders_curve is not None:
                what = f"exchange orders {self.orders_address}"
                auth = start_authenticator(ctx, self.orders_curve, what)
                make_server(self.router, self.orders_curve)
            self.router.bind(self.orders_address)
        except zmq.ZMQError as exc:
            if auth is not None:
                auth.stop()
            hint = (
                "is another exchange (or an old one, still stopping) running on it?"
                if exc.errno == zmq.EADDRINUSE
                else "expected tcp://HOST:PORT, ipc://PATH or inproc://NAME"
            )
            raise RoboframeError(
                f"cannot bind the orders socket to {self.orders_address}: {exc}; {hint}"
            ) from None
        return auth

    def _serve(self, sub: zmq.Socket, stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(sub, zmq.POLLIN)
        if self.router is not None:
            poller.register(self.router, zmq.POLLIN)
        fd = self.store.fileno()
        if fd is not None:
            poller.register(fd, zmq.POLLIN)
        next_poll = 0.0
        timeout = 50 if fd is not None else 5  # a store with no socket is asked often
        next_check = 0.0
        while not stop.is_set():
            ready = dict(poller.poll(0 if self.store.pending() else timeout))
            self.store.keep_exchange_lock()  # a lease is renewed when due
            if sub in ready:
                self._on_market(sub)
            if self.router is not None and self.router in ready:
                self._on_orders()  # the market data come since first (see _place)
            if self.outbox:
                self._send_outbox()
            self._hand_to_writer()  # order rows of orders with no answer yet
            now = time.monotonic()
            woke = self.store.notified(fd in ready)
            if (woke or now >= next_poll) and self._take_requests(full=now >= next_poll):
                next_poll = now + self.poll_s
            if self.outbox:  # store-path answers, when a writer writes them
                self._send_outbox()
            self._write()
            if len(self.owner) > self.remember and not self.outbox:
                self._trim()
            if self.writer is not None and now >= next_check:
                self.writer.check()  # a dead writer stops the exchange, loudly
                next_check = now + 0.5
