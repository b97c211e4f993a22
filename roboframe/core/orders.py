"""The robot's own orders and their state machine.

    new --accepted--> accepted --fill--> partially_filled --fill--> filled
     |                   |                     |
     +--rejected         +--cancelled <--------+
     +--fill (an exchange may fill before it acknowledges; its late
             ``accepted`` then changes nothing)

``new`` means sent, not yet acknowledged. ``cancel_rejected`` refuses a
*cancel* (too late, already filled, not known yet): the order keeps its
state, whatever it is. A gateway that says ``rejected`` for that instead is
taken at its word while the order is new (an order is rejected before it is
accepted), and for an accepted order with nothing asked of it (no cancel, no
replace: there is nothing to refuse, so the exchange removed the order); for
an accepted order with a cancel pending it is a refused cancel. A *replace* changes an open order's
quantity and price when ``replaced`` comes back, and nothing when
``replace_rejected`` does; the state stays as it was either way, unless
fills that arrived first already reach the new quantity: then it is filled. Fills
that reach the old quantity while a larger one is asked for leave the order open
until the answer: the exchange may have taken the replace first. Anything
else impossible -- a fill for a finished order, more filled than ordered --
is counted as an anomaly and logged; positions still follow the fills,
because the exchange is right.
"""

from __future__ import annotations

import logging
from collections import deque

from roboframe.core.events import Fill, NewOrder, OrderUpdate

log = logging.getLogger(__name__)

NEW = "new"
ACCEPTED = "accepted"
PARTIAL = "partially_filled"
FILLED = "filled"
CANCELLED = "cancelled"
REJECTED = "rejected"
OPEN_STATES = frozenset({NEW, ACCEPTED, PARTIAL})
REPLACED = "replaced"  # update statuses of a Replace: the order's state does not change
REPLACE_REJECTED = "replace_rejected"
CANCEL_REJECTED = "cancel_rejected"  # a Cancel's refusal: the order's state does not change


class OwnOrder:
    """One order of this robot. Strategies read it; only the kernel changes it."""

    __slots__ = (
        "cancel_pending",
        "client_id",
        "created_ts",
        "filled",
        "price",
        "qty",
        "reason",
        "replace_pending",
        "side",
        "status",
        "symbol",
        "type",
        "updated_ts",
    )

    def __init__(self, order: NewOrder, ts: int) -> None:
        self.client_id = order.client_id
        self.symbol = order.symbol
        self.side = order.side
        self.qty = order.qty
        self.type = order.type
        self.price = order.price
        self.status = NEW
        self.filled = 0
        self.created_ts = ts
        self.updated_ts = ts
        self.reason = ""
        self.cancel_pending = False
        self.replace_pending: tuple[int, int] | None = None  # (qty, price) asked for

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    def signed_remaining(self) -> int:
        return self.remaining if self.side == "buy" else -self.remaining

    def snapshot(self) -> dict:
        return {s: getattr(self, s) for s in self.__slots__}

    def __repr__(self) -> str:
        return (
            f"OwnOrder({self.client_id} {self.side} {self.qty} {self.symbol} "
            f"{self.type}{' @' + str(self.price) if self.price else ''} {self.status} "
            f"filled={self.filled})"
        )


class OrderBook:
    """The run's orders by client id: every open one, and the latest finished ones.

    Finished orders (filled, cancelled, rejected) are kept for late updates
    and for inspection up to ``keep_finished``; older ones are forgotten, so
    a robot's memory does not grow with the number of orders it has sent.
    """

    def __init__(self, keep_finished: int = 10_000) -> None:
        self.orders: dict[str, OwnOrder] = {}
        self.open: dict[str, OwnOrder] = {}
        self.anomalies = 0
        self.total = 0
        self._finished: deque[str] = deque()
        self._keep = keep_finished
        # fills up to the old quantity of an order growing by a replace not yet
        # answered leave it open (False: the rule of journals written before, in
        # which they filled it: RULES "replace")
        self.replace_waits = True
        # a rejected accepted order with no cancel or replace pending is finished
        # (False: the rule of journals written before, in which it stayed open as
        # if a cancel had been refused: RULES "rejected")
        self.rejected_removes = True

    def _finish(self, own: OwnOrder) -> None:
        self.open.pop(own.client_id, None)
        finished = self._finished
        finished.append(own.client_id)
        if len(finished) > self._keep:
            self.orders.pop(finished.popleft(), None)

    def add(self, order: NewOrder, ts: int) -> OwnOrder:
        own = OwnOrder(order, ts)
        self.orders[own.client_id] = own
        self.open[own.client_id] = own
        self.total += 1
        return own

    def add_rejected(self, order: NewOrder, ts: int, reason: str) -> OwnOrder:
        own = OwnOrder(order, ts)
        own.status = REJECTED
        own.reason = reason
        self.orders[own.client_id] = own
        self.total += 1
        self._finish(own)
        return own

    def anomaly(self, what: str) -> None:
        """Something the exchange side said that no order of the robot can have:
        counted (``anomalies`` in the summary and status) and logged."""
        self.anomalies += 1
        log.warning("order anomaly: %s", what)

    def on_update(self, update: OrderUpdate) -> OwnOrder | None:
        own = self.orders.get(update.client_id)
        if own is None:
            self.anomaly(f"update for unknown order {update.client_id}")
            return None
        own.updated_ts = update.ts
        status = update.status
        if status == ACCEPTED:
            if own.status == NEW:
                own.status = ACCEPTED
            elif own.status not in OPEN_STATES and own.status != FILLED:
                # after its fills is the order of a fill-before-acknowledgement: not odd
                self.anomaly(f"accepted after {own.status}: {update.client_id}")
        elif status == CANCELLED:
            if own.status in OPEN_STATES:
                own.status = CANCELLED
                own.reason = update.reason
                self._finish(own)
            else:
                self.anomaly(f"cancelled after {own.status}: {update.client_id}")
        elif status == REJECTED:
            if own.status == NEW or self._removed(own):
                own.status = REJECTED
                own.reason = update.reason
                self._finish(own)
            else:  # a refused cancel, from a gateway that does not say cancel_rejected
                own.cancel_pending = False
        elif status == CANCEL_REJECTED:
            own.cancel_pending = False  # the order goes on as it was
        elif status == REPLACED:
            pending = own.replace_pending
            if pending is not None and own.status in OPEN_STATES:
                own.qty, own.price = pending
                if own.filled >= own.qty:  # fills that came first used it all up
                    self._filled(own)
            else:
                self.anomaly(f"replaced without a pending replace: {update.client_id}")
            own.replace_pending = None
        elif status == REPLACE_REJECTED:
            own.replace_pending = None  # the order goes on as it was
            if own.status in OPEN_STATES and own.filled >= own.qty:
                self._filled(own)  # its fills, waiting for this answer, used it all up
        return own

    def _removed(self, own: OwnOrder) -> bool:
        """Whether ``rejected`` for open ``own`` means the exchange removed it:
        nothing was asked of it that the word could refuse. Taken for a refused
        cancel, it left the order open for good: order_target counted its lots
        as working and sent nothing, max_position counted them too."""
        if not (self.rejected_removes and own.status in OPEN_STATES):
            return False
        if own.cancel_pending or own.replace_pending is not None:
            return False
        self.anomaly(f"rejected with nothing asked of it, taken as removed: {own.client_id}")
        return True

    def on_fill(self, fill: Fill) -> OwnOrder | None:
        own = self.orders.get(fill.client_id)
        if own is None:
            self.anomaly(f"fill for unknown order {fill.client_id}")
            return None
        if own.status not in OPEN_STATES:
            self.anomaly(f"fill after {own.status}: {fill.client_id}")
        own.filled += fill.qty
        own.updated_ts = fill.ts
        if own.filled >= own.qty and not self._may_grow(own):
            self._filled(own)
        elif own.status in OPEN_STATES:
            own.status = PARTIAL
        return own

    def _may_grow(self, own: OwnOrder) -> bool:
        """Whether open ``own``, filled up to its quantity, may still have lots
        working: a replace to more than has filled is not answered yet. The
        exchange may have taken it before these fills, whose way to the robot was
        the faster: finished now, the lots it added worked on unseen (``replaced``
        was an anomaly, and no limit, target, flatten or stop counted them)."""
        pending = own.replace_pending
        return (
            self.replace_waits
            and pending is not None
            and pending[0] > own.filled
            and own.status in OPEN_STATES
        )

    def _filled(self, own: OwnOrder) -> None:
        """``own`` has nothing left to fill: it is filled, and no longer open."""
        if own.filled > own.qty:
            self.anomaly(f"overfill {own.filled}/{own.qty}: {own.client_id}")
        was_open = own.status in OPEN_STATES
        own.status = FILLED
        if was_open:
            self._finish(own)

    def pending_qty(self, symbol: str) -> tuple[int, int]:
        """Remaining lots of open buy and sell orders for ``symbol``."""
        buy = sell = 0
        for own in self.open.values():
            if own.symbol == symbol:
                left = own.remaining
                if own.replace_pending is not None:  # the worst case: either may stand
                    left = max(left, own.replace_pending[0] - own.filled)
                if own.side == "buy":
                    buy += left
                else:
                    sell += left
        return buy, sell

    def unacknowledged(self) -> int:
        return sum(1 for o in self.open.values() if o.status == NEW)

    def unanswered(self) -> int:
        """Open orders waiting for an answer: not acknowledged yet, or with a cancel
        or replace pending (a stop that cancels waits for those: an order that
        fills instead must reach the books)."""
        return sum(
            1
            for o in self.open.values()
            if o.status == NEW or o.cancel_pending or o.replace_pending is not None
        )
