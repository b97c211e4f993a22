"""The fast path: orders straight to the exchange process over ZeroMQ.

The robot's loop sends its orders on a DEALER socket of its own (identity:
the robot's name, a zero byte, ``orders``) to the exchange's ROUTER
(``roboframe exchange --orders tcp://*:5570``), and the acknowledgements and
fills come straight back to the trade stream's DEALER (identity: the robot's
name), to which the exchange answers the orders of both. Sent by the loop
itself, an order leaves with no hop through another thread (one costs tens
of microseconds); the trade stream finds what was sent in a queue (a deque:
no socket, so nothing wakes it) and resends it through the store should the
link break before an answer. With no
link to the exchange the loop hands its orders to the trade stream, which
sends them over its own socket or through the store. The exchange writes every
order, update and trade to the order store right after, under ids it
reserved there beforehand, so the ids a robot gets over ZeroMQ are the ids
the store holds. The store stays the source of truth: this trade stream also
reads the store ("after id N", like the store gateway) and forwards whatever
the socket did not bring -- after a restart, a reconnect, or a message the
ROUTER could not deliver while the robot was away. Ids already delivered are
remembered, so nothing arrives twice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from pathlib import Path

import zmq
from zmq.utils.monitor import recv_monitor_message

from roboframe.builtin.storegw import StoreGateway, _StoreStream
from roboframe.core import codec
from roboframe.core.events import Cancel, Fill, NewOrder, OrderUpdate, Replace
from roboframe.core.orders import (
    CANCEL_REJECTED,
    CANCELLED,
    REJECTED,
    REPLACE_REJECTED,
    REPLACED,
)
from roboframe.core.sockets import ADDRESS_PATTERN, messages
from roboframe.curve import client_schema, load_public, load_secret, make_client

log = logging.getLogger(__name__)

ORDERS_IDENTITY = b"\x00orders"  # after the robot's name: the loop's own order socket
CONNECT_GRACE_S = 2.0  # a link to the exchange not made by then: the order path is down
HEARTBEAT_MS = 1000  # ZeroMQ heartbeats on the link: a silent peer is lost after 3 of these
STRAYED_KEPT = 100_000  # client ids remembered as gone the trade stream's way (see _stray)


class FastGateway(StoreGateway):
    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["address"],
        "properties": {
            **StoreGateway.params_schema["properties"],
            "address": {
                "type": "string",
                "pattern": ADDRESS_PATTERN,
                "description": "the exchange's order endpoint (roboframe exchange "
                "--orders), e.g. tcp://127.0.0.1:5570",
            },
            "curve": client_schema(
                "CURVE client keys for a tcp:// order endpoint (paths relative to the robot "
                "file); the exchange must list this robot's public key",
                "exchange",
            ),
        },
    }

    def curve_files(self) -> tuple[Path, Path] | None:
        curve = self.params.get("curve")
        if not curve:
            return None
        return self.base_dir / curve["secret_key"], self.base_dir / curve["server_key"]

    def open(self, runtime) -> None:
        files = self.curve_files()
        if files is not None:  # unreadable keys stop the start, not the run
            load_secret(files[0], "gateway.params.curve.secret_key")
            load_public(files[1], "gateway.params.curve.server_key")
        super().open(runtime)
        # the loop's own order socket: submit() runs on the loop's thread; its link
        # is watched by the trade stream (_on_direct_monitor; inproc:// has none)
        address = self.params["address"]
        self.direct_monitor = None
        self._direct = exchange_socket(self, runtime.context, self.robot.encode() + ORDERS_IDENTITY)
        if not address.startswith("inproc://"):
            self.direct_monitor = self._direct.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
            )
        self.owned = False  # see link: until then the loop's orders go the trade stream's way
        self.sent: deque[tuple] = deque()  # what went straight out, for the trade stream
        self.strayed: dict[str, None] = {}  # see _stray

    def link(self) -> None:
        """Connect the loop's socket, once the robot's lock in the store is this
        run's (the trade stream's thread, before the loop may use the socket; a
        test without a trade stream calls it itself). The exchange's ROUTER hands
        an identity over to its newest link: a second process of a running robot,
        linked before its lock was refused, took the running robot's links, which
        were left standing with nobody at the other end."""
        if not self.owned:
            self._direct.connect(self.params["address"])
            self.owned = True

    def submit(self, actions: list) -> None:
        """Straight to the exchange, noted for the trade stream first: the answer
        can come before the line after the send runs, and must find its action
        noted (or the action would stay unanswered, sent again through the store
        should the link break). With no link made (or a full queue) the trade
        stream's way, the note taken back; and an order that went that way keeps
        to it (see _stray)."""
        raw = codec.encode(actions)
        strayed = self.strayed
        if not self.owned or (strayed and any(action.client_id in strayed for action in actions)):
            self._stray(actions)
            self._push.send(raw)
            return
        noted = tuple(actions)
        self.sent.append(noted)
        try:
            self._direct.send(raw, zmq.NOBLOCK)
        except zmq.Again:
            self._take_back(noted)
            self._stray(actions)
            self._push.send(raw)

    def resubmit(self, actions: list) -> None:
        self._stray(actions)
        super().resubmit(actions)

    def _stray(self, actions: list) -> None:
        """Orders whose actions went the trade stream's way (no link made yet, or
        resent after a resume): their later ones go that way too. Sent straight,
        a cancel overtook its order -- still on its way, or in the store not read
        yet by the exchange -- which refused it ("not open") and then took the
        order: left working, against the strategy's last word. One way keeps them
        in order: the trade stream sends (or writes) in the order it is handed."""
        strayed = self.strayed
        for action in actions:
            strayed[action.client_id] = None
        while len(strayed) > STRAYED_KEPT:  # the oldest: long answered
            del strayed[next(iter(strayed))]

    def linked(self) -> bool:
        """Whether an order submitted now leaves on the loop's own link (made, with
        room in its queue); the loop's thread only, as for submit."""
        return self.owned and bool(self._direct.get(zmq.EVENTS) & zmq.POLLOUT)

    def _take_back(self, noted: tuple) -> None:
        """The note of actions that did not leave. The trade stream may have taken
        it meanwhile: they are then unanswered until the answer to the way they
        go comes (sent again through the store, an order is a no-op there)."""
        sent = self.sent
        try:
            if sent[-1] is noted:  # this thread alone appends: the last note, if any left
                sent.pop()
        except IndexError:  # the trade stream took the last one just now
            pass

    def close(self) -> None:
        direct = getattr(self, "_direct", None)
        if direct is not None:  # what it still queues, the trade stream has as unanswered
            if self.direct_monitor is not None:
                direct.disable_monitor()
                self.direct_monitor.close(linger=0)
            direct.close(linger=0)
        super().close()

    def trade_stream(self, runtime, sender) -> None:
        stream = _FastStream(self, runtime, sender)
        try:
            stream.run()
        finally:
            stream.close()


def exchange_socket(gateway: FastGateway, context: zmq.Context, identity: bytes) -> zmq.Socket:
    """A DEALER for the exchange's ROUTER, not yet connected."""
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, identity)
    sock.setsockopt(zmq.LINGER, 0)
    files = gateway.curve_files()
    if files is not None:
        make_client(sock, *files, "gateway.params.curve")
    # Orders queue only on a link made to an exchange: with none they go the
    # store's way (a starting or restarted exchange takes them from there),
    # not into a socket queue to reach an exchange minutes later, or never.
    sock.setsockopt(zmq.IMMEDIATE, 1)
    # a peer gone without a word (a hung host, a cable) is found in seconds
    sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 3 * HEARTBEAT_MS)
    return sock


class _FastStream(_StoreStream):
    # a resumed run's journal may hold ids the exchange gave over the socket that
    # its store writer has not written yet (it retries a store just back, up to 5 s
    # apart): a store behind is asked again this long before the run fails
    behind_grace_s = 5.0

    def __init__(self, gateway: FastGateway, runtime, sender) -> None:
        super().__init__(gateway, runtime, sender)
        self.dealer = exchange_socket(gateway, runtime.context, gateway.robot.encode())
        self.address = gateway.params["address"]
        # the link, watched (inproc:// has no link to watch): while it is down the
        # order path is, as for the store -- risk refuses new orders
        self.monitor = None
        if not self.address.startswith("inproc://"):
            self.monitor = self.dealer.get_monitor_socket(
                zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
            )
        self.linking = False  # both sockets connect once the robot's lock is the run's
        self.exchange_down = ""
        self.connected = self.monitor is None
        self.link_deadline = time.monotonic() + CONNECT_GRACE_S
        # actions sent over a socket and not answered yet, by client id: at the
        # stop they go to the store too (see _flush_at_stop)
        self.unanswered: dict[str, list] = {}
        self.sent = gateway.sent  # what the loop sent straight out (see _take_sent)
        self.direct_monitor = gateway.direct_monitor  # handed over to this thread
        self.direct_lost = False  # the loop's link broke, not made again yet
        # this stream's link was made once: a handshake after that is a link made
        # again (the first one finds the loop's orders sent straight out on its
        # own link, answered in their time, not taken by a broken link)
        self.linked_before = False

    def close(self) -> None:
        if self.monitor is not None:
            self.dealer.disable_monitor()
            self.monitor.close(linger=0)
        self.dealer.close()
        super().close()

    def path_down(self) -> str:
        return self.down or self.exchange_down

    def _connect(self) -> None:
        """The store, the robot's lock in it, then -- the first time -- the links to
        the exchange: a second process of the robot stops at the lock, before it
        takes the running one's links (see FastGateway.link)."""
        super()._connect()
        if not self.linking:
            self.linking = True
            self.gw.link()  # before the loop may use the socket: ready is set after this
            self.dealer.connect(self.address)
            self.link_deadline = time.monotonic() + CONNECT_GRACE_S

    def _on_monitor(self) -> None:
        """The link to the exchange went up or down."""
        while True:
            try:
                event = recv_monitor_message(self.monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:  # a ZeroMQ peer, not a port
                self.connected = True
                if self.exchange_down:
                    log.warning("the exchange at %s is back", self.address)
                self.exchange_down = ""
                if self.linked_before:  # made again: what the broken link took
                    self._through_the_store()
                self.linked_before = True
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self.connected = False
                self._exchange_lost("lost")
            self._say_order_path()

    def _on_direct_monitor(self) -> None:
        """The loop's own link went down or up. It can break alone (a NAT or a
        firewall dropping one flow, heartbeats timed out on it and not on this
        stream's): what it took with it goes the store's way once it is made
        again, as for this stream's link. The order path's state stays this
        stream's link's: while the loop's is down, its orders come this way."""
        while True:
            try:
                event = recv_monitor_message(self.direct_monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self.direct_lost = True
            elif event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED and self.direct_lost:
                self.direct_lost = False
                self._through_the_store()

    def _exchange_lost(self, how: str) -> None:
        if not self.exchange_down:
            log.warning(
                "the exchange at %s: link %s; new orders are refused until it is back",
                self.address,
                how,
            )
        self.exchange_down = f"the exchange at {self.address} is unreachable (link {how})"

    def _write_waiting(self) -> None:
        behind = self._behind_their_orders()
        self._write_to_store(self.resent)  # after a resume: the way that deduplicates
        if behind:  # after what went before them, the one way that keeps the order
            self._write_to_store(self.waiting)
        elif self.waiting:  # straight to the exchange; it writes the store behind
            try:
                self.dealer.send(codec.encode(self.waiting), zmq.NOBLOCK)
            except zmq.Again:  # no link made: the store's way
                self._write_to_store(self.waiting)
                return
            for action in self.waiting:
                self.unanswered.setdefault(action.client_id, []).append(action)
            self.waiting = []

    def _behind_their_orders(self) -> bool:
        """Actions handed over for orders whose earlier actions went over a socket
        unanswered (a cancel of an order the loop sent straight, made while the
        link was down): those earlier ones may be lost with a broken link, or
        queued behind it, and go the store's way -- now, before them. Sent later,
        when the link was made again, an order came after its cancel, which the
        exchange refused ("not open"), and the refusal, taken as the order's
        answer, left the order unsent: "new" in the robot for good. True when an
        action handed over has earlier ones on the store's way: it goes behind."""
        waiting = self.waiting
        if not waiting:
            return False
        self._take_sent()
        unanswered, resent = self.unanswered, self.resent
        cids = dict.fromkeys(action.client_id for action in waiting)
        if unanswered:
            for cid in cids:
                earlier = unanswered.pop(cid, None)
                if earlier is not None:
                    resent.extend(earlier)  # the store's way, retried as a resume's are
        return bool(resent) and any(action.client_id in cids for action in resent)

    def _through_the_store(self) -> None:
        """A link (re)made: what went over a link that then broke, unanswered, may
        have been lost with it (a killed exchange's queue); it goes the store's
        way, where an order the exchange did take is a no-op."""
        self._take_sent()
        sent = [action for actions in self.unanswered.values() for action in actions]
        self.unanswered = {}
        if sent:
            log.warning(
                "%d order request(s) sent before the link to %s broke, unanswered, go "
                "through the store", len(sent), self.address,
            )  # fmt: skip
            self.resent.extend(sent)  # the store's way, retried as a resume's are
            self._write_to_store(self.resent)

    def _take_sent(self) -> None:
        """What the loop sent straight to the exchange: unanswered until an answer
        comes. The loop notes it before it sends it, so its answer always finds
        it here."""
        sent, unanswered = self.sent, self.unanswered
        while sent:
            for action in sent.popleft():
                unanswered.setdefault(action.client_id, []).append(action)

    def _answered(self, fresh: list) -> None:
        """Cross off what new answers answer. Only new ones: an answer comes twice
        (over the socket, then from the store, written behind), and the store's
        copy of a replace's answer, taken again, answered the order's next
        replace, which was then watched over by nobody."""
        if self.sent:
            self._take_sent()
        unanswered = self.unanswered
        if unanswered:
            for event in fresh:
                sent = unanswered.get(event.client_id)
                if sent is not None:
                    sent[:] = [a for a in sent if not _answers(event, a)]
                    if not sent:
                        del unanswered[event.client_id]

    def _flush_at_stop(self) -> None:
        """Also what went over the socket unanswered: with the exchange down, those
        orders sat in the socket's queue, which closes now -- journaled as sent,
        they were in neither the exchange nor the store, and the run's summary
        called them open. The store has them now (an order the exchange did take
        is a no-op there, a request it did answer is answered again: not open),
        and a restarted exchange takes them from it."""
        self._take_sent()
        for sent in self.unanswered.values():
            self.waiting.extend(sent)
        self.unanswered = {}
        super()._flush_at_stop()

    def _on_dealer(self) -> None:
        """What the exchange sent (one event, or a Batch of one turn's answers),
        forwarded to the loop as one message: this run's only. The exchange
        answers a robot by its name, so the answers to orders an earlier run
        left working come here too; they are that run's (the store path reads
        by this run's prefix alike), and taking them would move this run's
        position on fills of orders it never sent."""
        events = []
        prefix = self.prefix
        for frames in messages(self.dealer):
            try:
                msg = codec.decode(frames[-1])
            except codec.DECODE_ERRORS:
                continue  # the loop would count it; nothing of ours to forward
            for event in codec.events_in(msg):
                if type(event) in (Fill, OrderUpdate) and event.client_id.startswith(prefix):
                    events.append(event)
        self._forward_many(events)

    def _serve(self, stop) -> None:
        poller = zmq.Poller()
        poller.register(self.orders, zmq.POLLIN)
        poller.register(self.dealer, zmq.POLLIN)
        if self.monitor is not None:
            poller.register(self.monitor, zmq.POLLIN)
        if self.direct_monitor is not None:
            poller.register(self.direct_monitor, zmq.POLLIN)
        fd = self.store.fileno()
        if fd is not None:
            poller.register(fd, zmq.POLLIN)
        next_poll = time.monotonic() + self.poll_s
        while not stop.is_set():
            ready = dict(poller.poll(0 if self.store.pending() else 50))
            self.store.keep_robot_lock()  # a lease is renewed when due
            if self.monitor is not None and self.monitor in ready:
                self._on_monitor()
            if self.direct_monitor is not None and self.direct_monitor in ready:
                self._on_direct_monitor()
            late = not self.connected and time.monotonic() >= self.link_deadline
            if late and not self.exchange_down:  # the link never came up at the start
                self._exchange_lost(f"not made within {CONNECT_GRACE_S:g}s")
                self._say_order_path()
            if self.orders in ready:
                self._drain_orders()
                self._write_waiting()
            if self.dealer in ready:
                self._on_dealer()
            # The store's notifications come after the socket's answers (the
            # exchange writes behind): they bring what the socket missed, and
            # must be taken either way, or the store's socket stays readable.
            now = time.monotonic()
            full = now >= next_poll  # a read for what no notification said: no hurry
            if (full or self.store.notified(fd in ready)) and self._read(full=full):
                next_poll = now + self.poll_s


_CANCEL_ANSWERS = frozenset({CANCELLED, CANCEL_REJECTED, REJECTED})
_REPLACE_ANSWERS = frozenset({REPLACED, REPLACE_REJECTED})


def _answers(event: Fill | OrderUpdate, action: NewOrder | Cancel | Replace) -> bool:
    """Whether ``event`` shows the exchange took ``action`` (any word on an order
    shows it has the order; a cancel or replace has its own answers)."""
    kind = type(action)
    if kind is NewOrder:
        return True
    if type(event) is not OrderUpdate:
        return False
    return event.status in (_CANCEL_ANSWERS if kind is Cancel else _REPLACE_ANSWERS)
