"""The paper exchange: a deterministic matching engine and its live gateway.

:class:`PaperExchange` is pure -- no I/O, no threads, no clock -- so a
backtest runs it in step with the data and the stand-alone exchange process
(:mod:`roboframe.exchange`) reuses it. Its rules:

- An order is acknowledged (``accepted``) at once, or ``rejected`` when its
  symbol is unknown, its quantity is not positive or a limit price is not
  positive. A ``NewOrder`` whose client id is still open is acknowledged
  again and not placed twice; one whose id finished recently is ignored.
- A cancel of an open order answers ``cancelled``; of anything else, a
  ``rejected`` update for that order (the kernel reads it as a refused
  cancel).
- Market orders fill at the *next* price of their symbol after they arrive:
  the next bar's open, or the next tick's ask (buy) / bid (sell) when the tick
  has quotes, else its trade price; a tick with neither (a quote of the other
  side only) leaves the order waiting. With ``fill_at="close"`` they fill at
  once, whole, at the current price -- the close of the symbol's last bar (a
  last tick's ask/bid/price) -- for backtests that decide on a bar's close;
  before any price they wait for the next one, and so does an order decided
  after the latest market event of any symbol (a timer's, a command's: that
  price may be the last session's). ``slippage_ticks`` moves every
  market fill against the trader, never below one tick.
- Limit orders fill when the market trades *through* them: a buy limit when a
  bar's low (a tick's price) is strictly below the limit, a sell limit when a
  bar's high (a tick's price) is strictly above. Touching is not enough. A
  bar fills at the limit or at its open when it opened beyond it (a gap:
  ``min(limit, open)`` for a buy, ``max`` for a sell); a tick at the limit.
  A tick with quotes only (trade price 0) traded nothing and fills no limit.
- When the data has volume (bar volume, tick quantity > 0), the orders of
  that symbol share it in arrival order and each fills at most what is left;
  the rest stays open for the next event. Volume 0 means unknown: everything
  fills.
- Fees are ``commission`` per lot per fill, exact decimal strings.
- Orders are matched in arrival order (FIFO); trade ids are ``P1``, ``P2``...
- Acknowledgements carry the ts given to :meth:`PaperExchange.submit` (by
  default the last market event's); fills the ts of the event that filled them.
"""

from __future__ import annotations

import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import msgspec
import zmq

from roboframe.core import codec
from roboframe.core.events import Bar, Cancel, Fill, NewOrder, OrderUpdate, Replace, Tick
from roboframe.core.gateway import Gateway, Runtime
from roboframe.core.instruments import Instrument
from roboframe.core.streams import send
from roboframe.errors import ConfigError, GatewayError

log = logging.getLogger(__name__)

FILL_AT = ("next", "close")
POLL_MS = 100
HELD_POLL_MS = 1  # with prices held back: how soon the robot's time is looked at again


class RestingOrder:
    """An open order inside the engine: the order, how much of it has filled, and
    when it was placed (or last replaced): market data of that time or earlier
    never fills it (see :meth:`PaperExchange.on_market`)."""

    __slots__ = ("filled", "order", "placed")

    def __init__(self, order: NewOrder, placed: int = 0, filled: int = 0) -> None:
        self.order = order
        self.filled = filled
        self.placed = placed

    @property
    def remaining(self) -> int:
        return self.order.qty - self.filled

    def __repr__(self) -> str:
        return f"RestingOrder({self.order!r}, filled={self.filled})"


class PaperExchange:
    """A matching engine that fills orders against market data.

    ``instruments`` limits the symbols it accepts; None accepts any symbol
    (the stand-alone exchange process, which serves many robots).
    ``open_orders`` maps client id to :class:`RestingOrder` in arrival order;
    ``last`` holds the last market event of each symbol.
    """

    def __init__(
        self,
        instruments: dict[str, Instrument] | None,
        *,
        commission: Decimal | str | float = 0,
        slippage_ticks: int = 0,
        fill_at: str = "next",
        trade_prefix: str = "P",
        remember_finished: int = 65_536,
    ) -> None:
        try:
            self.commission = Decimal(str(commission))
        except InvalidOperation:
            raise ConfigError(
                f"paper exchange: commission {commission!r} is not a number"
            ) from None
        if not self.commission.is_finite():
            raise ConfigError(f"paper exchange: commission {commission!r} is not a number")
        if int(slippage_ticks) < 0:
            raise ConfigError(f"paper exchange: slippage_ticks must be >= 0, got {slippage_ticks}")
        if fill_at not in FILL_AT:
            raise ConfigError(f"paper exchange: fill_at must be next or close, got {fill_at!r}")
        self.instruments = instruments
        self.slippage = int(slippage_ticks)
        self.fill_at = fill_at
        self.open_orders: dict[str, RestingOrder] = {}
        self.last: dict[str, Tick | Bar] = {}
        self.trades = 0
        self.stale = 0  # bars and ticks of the past, ignored (see on_market)
        self.ts = 0
        self.matched: dict[str, int] = {}  # after a restart: matched up to, by symbol
        self._finished: dict[str, None] = {}  # recently finished ids, oldest first
        self.remembers = remember_finished  # finished ids kept, to ignore resubmissions
        self._fees: dict[int, str] = {}  # qty -> fee string, the same bytes every time
        self.trade_prefix = trade_prefix  # trade ids: the prefix, then a count from 1

    # -- orders ---------------------------------------------------------------

    def submit(
        self, action: NewOrder | Cancel | Replace, ts: int | None = None
    ) -> list[OrderUpdate | Fill]:
        """Take one action, decided at ``ts`` (by default: now, the last market
        event's time); its acknowledgement (and, with ``fill_at="close"``, fill)."""
        kind = type(action)
        if kind is Cancel:
            return self._cancel(action.client_id, self.ts if ts is None else ts)
        if kind is Replace:
            return self._replace(action, self.ts if ts is None else ts)
        return self._place(action, ts)

    def _replace(self, action: Replace, ts: int) -> list[OrderUpdate]:
        """A resting limit order takes the new quantity and price and goes to the
        back of the queue (a limit order fills at a later market event, as new)."""
        cid = action.client_id
        resting = self.open_orders.get(cid)
        if resting is None:
            return [OrderUpdate(cid, ts, "replace_rejected", "replace: order not open")]
        order = resting.order
        if order.type != "limit":
            why = "replace: only a limit order can be replaced"
        elif action.qty <= resting.filled:
            why = f"replace: quantity {action.qty} is not above the {resting.filled} filled"
        elif action.price <= 0:
            why = f"replace: limit price must be positive, got {action.price}"
        else:
            del self.open_orders[cid]
            resting.order = msgspec.structs.replace(order, qty=action.qty, price=action.price)
            resting.placed = ts
            self.open_orders[cid] = resting  # the back of the queue
            return [OrderUpdate(cid, ts, "replaced")]
        return [OrderUpdate(cid, ts, "replace_rejected", why)]

    def _cancel(self, client_id: str, ts: int) -> list[OrderUpdate | Fill]:
        if self.open_orders.pop(client_id, None) is None:
            return [OrderUpdate(client_id, ts, "cancel_rejected", "cancel: order not open")]
        self._forget(client_id)
        return [OrderUpdate(client_id, ts, "cancelled")]

    def _place(self, order: NewOrder, decided: int | None) -> list[OrderUpdate | Fill]:
        cid = order.client_id
        ts = self.ts if decided is None else decided
        if cid in self.open_orders:  # resubmitted (a resumed robot): not placed twice
            return [OrderUpdate(cid, ts, "accepted")]
        if cid in self._finished:
            return []
        reason = self._invalid(order)
        if reason:
            return [OrderUpdate(cid, ts, "rejected", reason)]
        resting = RestingOrder(order, ts)
        self.open_orders[cid] = resting
        out: list[OrderUpdate | Fill] = [OrderUpdate(cid, ts, "accepted")]
        if order.type == "market" and self.fill_at == "close":
            # at the close of the bar (the tick) it was decided on; one decided after
            # every market event seen -- by a timer on Monday morning, the last price
            # Friday's -- at the next price
            last = self.last.get(order.symbol)
            if last is not None and (decided is None or decided <= self._latest()):
                price = self._market_price(order, last, at_close=True)
                if price is not None:  # stamped no earlier than the order was decided
                    out.append(self._fill(resting, price, order.qty, max(last.ts, ts)))
        return out

    def _latest(self) -> int:
        """The time of the latest market event seen, of any symbol (``last`` is
        kept by a backtest's loop too, ``ts`` only here)."""
        return max(event.ts for event in self.last.values())

    def restore(self, order: NewOrder, filled: int, placed: int = 0) -> None:
        """Rest an order acknowledged before a restart again, ``filled`` of it
        already filled: as it was, not placed anew (no answer, no fill at
        placement -- placed anew at ``fill_at: close``, a market order would
        fill whole again). It predates the market data this engine has seen:
        any later bar may fill it."""
        cid = order.client_id
        if cid in self.open_orders or cid in self._finished or filled >= order.qty:
            return
        self.open_orders[cid] = RestingOrder(order, placed, filled)

    def _invalid(self, order: NewOrder) -> str | None:
        if self.instruments is not None and order.symbol not in self.instruments:
            return f"unknown symbol {order.symbol}"
        if order.qty <= 0:
            return f"quantity must be positive, got {order.qty}"
        if order.type == "limit" and order.price <= 0:
            return f"limit price must be positive, got {order.price}"
        return None

    # -- market data ----------------------------------------------------------

    def on_market(self, event: Tick | Bar) -> list[Fill]:
        """Fill what this event allows, oldest order first. A bar no later than
        its symbol's last bar, or a tick before its last tick (the past again, from
        a publisher restarted at the start of its file), fills nothing and is
        counted in ``stale``; ticks of one instant may share a time.

        A bar fills only orders placed before its time: a bar is stamped with its
        close, so one of the time an order was placed at -- another symbol's bar
        of the same minute, say -- opened and traded before the order existed.
        (A tick of that very time may fill it: it came after, in the data.)"""
        last, kind = self.last.get(event.symbol), type(event)
        if type(last) is kind and (event.ts <= last.ts if kind is Bar else event.ts < last.ts):
            self.stale += 1
            return []
        if self.matched and event.ts <= self.matched.get(event.symbol, event.ts - 1):
            self.last[event.symbol] = event  # matched before a restart: its price only
            return []
        if event.ts > self.ts:  # the latest time seen: symbols may come out of step
            self.ts = event.ts
        self.last[event.symbol] = event
        if not self.open_orders:
            return []
        fills: list[Fill] = []
        ts = event.ts
        bar = kind is Bar
        available = event.volume if bar else event.qty
        limited = available > 0
        for resting in list(self.open_orders.values()):
            order = resting.order
            if order.symbol != event.symbol or (bar and resting.placed >= ts):
                continue
            if order.type == "limit":
                price = self._limit_price(order, event)
                if price is None:
                    continue
            else:
                price = self._market_price(order, event)
                if price is None:
                    continue
            qty = resting.remaining
            if limited:
                if available <= 0:
                    break
                qty = min(qty, available)
                available -= qty
            fills.append(self._fill(resting, price, qty, event.ts))
        return fills

    def _market_price(
        self, order: NewOrder, event: Tick | Bar, at_close: bool = False
    ) -> int | None:
        """The fill price, slipped; None for a tick with no price on the order's
        side (a quote of the other side only): 0 is no price, not a price."""
        if type(event) is Bar:
            base = event.close if at_close else event.open
        elif order.side == "buy":
            base = event.ask or event.price
        else:
            base = event.bid or event.price
        if not base:
            return None
        return max(1, base + (self.slippage if order.side == "buy" else -self.slippage))

    @staticmethod
    def _limit_price(order: NewOrder, event: Tick | Bar) -> int | None:
        limit = order.price
        buy = order.side == "buy"
        if type(event) is Bar:
            if buy and event.low < limit:
                return min(limit, event.open)
            if not buy and event.high > limit:
                return max(limit, event.open)
            return None
        if not event.price:  # quotes only: nothing traded, nothing traded through
            return None
        if (buy and event.price < limit) or (not buy and event.price > limit):
            return limit
        return None

    def _fill(self, resting: RestingOrder, price: int, qty: int, ts: int) -> Fill:
        order = resting.order
        resting.filled += qty
        if resting.filled >= order.qty:
            del self.open_orders[order.client_id]
            self._forget(order.client_id)
        self.trades += 1
        fee = self._fees.get(qty)
        if fee is None:
            fee = str(self.commission * qty)
            if len(self._fees) < 1024:
                self._fees[qty] = fee
        return Fill(
            order.client_id,
            ts,
            order.symbol,
            order.side,
            qty,
            price,
            f"{self.trade_prefix}{self.trades}",
            fee,
        )

    def finished(self, client_id: str) -> bool:
        """Whether ``client_id`` is among the recently finished orders."""
        return client_id in self._finished

    def remember_finished(self, client_ids: list[str]) -> None:
        """Take ids finished before a restart (oldest first) as finished here."""
        for client_id in client_ids:
            if client_id not in self.open_orders:
                self._forget(client_id)

    def _forget(self, client_id: str) -> None:
        """Remember a finished id (to ignore resubmissions), up to a bounded number."""
        finished = self._finished
        finished[client_id] = None
        if len(finished) > self.remembers:
            del finished[next(iter(finished))]  # the oldest: dicts keep insertion order


class PaperGateway(Gateway):
    """The embedded paper exchange.

    In a live run the loop steps it (``in_step``): each market event goes to
    :class:`PaperExchange` before the robot sees it, each action as it is
    made, and the answers are journaled and handled at once -- the backtest's
    own order, so a live run on a file sends the backtest's orders, fills
    included, paced or not.

    Run by itself (a runtime not ``in_step``), it runs in the trade-stream
    thread: the loop thread sends orders through a PUSH/PULL pair
    (:func:`order_pipe`); the trade stream runs the engine against the market
    data the runtime publishes on ``runtime.market_data_address`` and sends
    every update and fill to the loop. Acknowledgements carry the ts of the
    last market event the exchange saw: no wall clock anywhere.
    """

    needs_market_data = True
    in_step = True
    _engine: PaperExchange | None = None

    def __init_subclass__(cls, **kwargs) -> None:
        """A subclass with a ``submit``, ``resubmit``, ``open`` or ``trade_stream``
        of its own (a broker simulated on top of this one) expects them called:
        it runs in its trade stream, unless it says ``in_step`` itself."""
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        threaded = ("submit", "resubmit", "open", "trade_stream")
        if "in_step" not in own and any(name in own for name in threaded):
            cls.in_step = False

    params_schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "commission": {
                "type": ["number", "string"],
                "pattern": r"^[0-9]+(\.[0-9]+)?$",
                "minimum": 0,
                "default": 0,
                "description": "fee per lot per fill, in the instrument's currency",
            },
            "slippage_ticks": {
                "type": "integer",
                "minimum": 0,
                "default": 0,
                "description": "ticks every market fill moves against you",
            },
            "fill_at": {
                "enum": list(FILL_AT),
                "default": "next",
                "description": "market orders fill at the next price, or at the "
                "current bar's close",
            },
        },
    }

    _push: zmq.Socket | None = None
    _pull: zmq.Socket | None = None

    def make_engine(self, trade_prefix: str = "P") -> PaperExchange:
        """A fresh matching engine with this gateway's params."""
        p = self.params
        return PaperExchange(
            self.instruments,
            commission=p.get("commission", 0),
            slippage_ticks=p.get("slippage_ticks", 0),
            fill_at=p.get("fill_at", "next"),
            trade_prefix=trade_prefix,
        )

    _robot_time: Callable[[], int] | None = None

    def open(self, runtime: Runtime) -> None:
        """Check the params and make the order pipe (loop thread); stepped by the
        loop, the engine itself."""
        self.make_engine()  # bad params fail here, before any thread starts
        if runtime.in_step:
            # after a resume, trade ids of their own: the journal holds this engine's
            # earlier ones, which the kernel takes for duplicates and drops
            prefix = f"P{runtime.resumed_seq}." if runtime.resumed_seq else "P"
            self._engine = self.make_engine(prefix)
            return
        self._push, self._pull = order_pipe(runtime, "paper-orders")
        self._robot_time = runtime.robot_time

    def step_market(self, event):
        return self._engine.on_market(event)

    def step_submit(self, actions: list, ts: int) -> list:
        submit, out = self._engine.submit, []
        for action in actions:
            out.extend(submit(action, ts))
        return out

    def step_resubmit(
        self,
        actions: list,
        filled: dict[str, int],
        placed: dict[str, int],
        sent: dict[str, int],
        ts: int,
    ) -> list:
        """After a resume, what went out unanswered. An order the exchange had
        acknowledged (``placed``: when, by client id) rests again as it was,
        lots filled and all, placed when it was -- placed anew it could not
        fill at the rest of the last journaled time's data, which the feed
        sends again, and every replace's total would count from none filled.
        An order never acknowledged is placed at the time it was sent; cancels
        and replaces go as they are. Their answers."""
        out = []
        engine = self._engine
        resting = sorted(  # the engine's queue: by when placed (a replace goes to the back)
            (a for a in actions if type(a) is NewOrder and a.client_id in placed),
            key=lambda a: placed[a.client_id],
        )
        for action in resting:
            _restore(engine, action, filled.get(action.client_id, 0), placed[action.client_id])
        for action in actions:
            cid = action.client_id
            if type(action) is NewOrder and cid in placed:
                continue
            out.extend(engine.submit(action, sent.get(cid, ts) if type(action) is NewOrder else ts))
        return out

    def seed_prices(self, last: dict[str, Tick | Bar], matched: dict[str, int]) -> None:
        """After a resume: each symbol's last market event the run had seen, so an
        order filling at the close has its price, and the time up to which the
        engine had matched (market data the feed sends again up to it are
        prices only, not matched a second time)."""
        engine = self._engine
        engine.last.update(last)
        engine.matched.update(matched)
        for event in last.values():
            engine.ts = max(engine.ts, event.ts)

    def submit(self, actions: list) -> None:
        """One frame per batch of actions, after the robot's time when it sent them
        (see :meth:`trade_stream`); never blocks (unlimited queue)."""
        raw = codec.encode(actions)
        if self._robot_time is None:
            self._push.send(raw)
        else:
            self._push.send_multipart([_TIME.pack(self._robot_time()), raw])

    def trade_stream(self, runtime: Runtime, sender: zmq.Socket) -> None:
        """Match orders against market data until ``runtime.stop`` is set."""
        if runtime.in_step:  # the loop steps the engine: nothing to do here
            runtime.stop.wait()
            return
        if not runtime.market_data_address:
            raise GatewayError("the paper gateway needs the robot's market data address")
        # after a resume, trade ids of their own: the journal holds this engine's
        # earlier ones, which the kernel takes for duplicates and drops
        prefix = f"P{runtime.resumed_seq}." if runtime.resumed_seq else "P"
        engine = self.make_engine(prefix)
        orders = self._pull  # handed over to this thread; the loop thread never touches it
        market = runtime.context.socket(zmq.SUB)
        market.setsockopt(zmq.LINGER, 0)
        market.setsockopt(zmq.SUBSCRIBE, b"")
        market.connect(runtime.market_data_address)
        poller = zmq.Poller()
        poller.register(orders, zmq.POLLIN)
        poller.register(market, zmq.POLLIN)
        stop = runtime.stop
        robot_time = runtime.robot_time
        if robot_time is None:  # no robot to keep in step with: prices as they come
            robot_time = _no_later_than_anything
        # Prices the robot has not reached. The data stream publishes them before the
        # robot sees them, and unpaced a whole batch ahead: taken at once, an order
        # would fill at a price many bars after the one it was sent on. An order goes
        # after every price up to the robot's time when it was sent, before the rest;
        # prices up to the robot's time are taken as it moves on. As in a backtest:
        # an order fills at the prices after the event it was sent on.
        held: deque = deque()
        ahead = runtime.max_ahead_ns
        # after a resume: the orders open with lots filled, which come again for what
        # they had left (Gateway.resubmit) -- rested as they were, filled lots and all:
        # placed anew for the rest, the order's total, which every replace names,
        # would count from none filled, and the engine would fill those lots again
        restoring = dict(runtime.resumed_filled)
        try:
            while not stop.is_set():
                # prices held back matter to resting orders, which they may fill as the
                # robot moves on; a new order wakes the poll itself
                poller.poll(HELD_POLL_MS if held and engine.open_orders else POLL_MS)
                now = robot_time()  # before the orders: those sent up to now are all there
                waiting = list(_actions(orders))  # also those sent since the poll returned
                # then the prices: every price an order waiting was sent after was
                # published before it was sent, so it is here now
                held.extend(_market_events(market, ahead))
                for sent_at, action in waiting:
                    _take_prices(held, sent_at, engine, sender, stop)
                    if type(action) is NewOrder and action.client_id in restoring:
                        _restore(engine, action, restoring.pop(action.client_id))
                        continue
                    _send_all(sender, engine.submit(action), stop)
                _take_prices(held, now, engine, sender, stop)
        finally:
            market.close(linger=0)

    def cancel_left(self, run_id: str, timeout: float, known: list[str]) -> None:
        """The paper exchange lives in the robot's process: its orders end with it."""
        return None

    def close(self) -> None:
        """Close both ends of the order pipe, after the trade stream has ended: a
        stream that failed leaves its end open, so the loop's submit queues
        instead of blocking on a pipe with no reader."""
        for name in ("_push", "_pull"):
            end = getattr(self, name, None)  # open() may have failed before making them
            setattr(self, name, None)
            if end is not None:
                end.close(linger=0)


def order_pipe(runtime: Runtime, name: str) -> tuple[zmq.Socket, zmq.Socket]:
    """A PUSH/PULL pair, connected before any thread starts, for orders from the loop.

    Connecting both ends here means :meth:`Gateway.submit` can never block
    waiting for the trade stream to connect; the unlimited send queue
    (``SNDHWM`` 0) means it never blocks on a slow one either. The PULL end is
    handed to the trade-stream thread (starting a thread is the memory barrier
    ZeroMQ asks for) and used only there from then on.
    """
    address = runtime.private_address(name)
    pull = runtime.context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.setsockopt(zmq.RCVHWM, 0)
    pull.bind(address)
    push = runtime.context.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(address)
    return push, pull


def _restore(engine: PaperExchange, resent: NewOrder, filled: int, placed: int = 0) -> None:
    """Rest ``resent`` (an order sent again after a resume for the lots it had
    left) as it was: its total, ``filled`` of it filled, placed at ``placed``.
    Its acknowledgement is in the journal already."""
    whole = msgspec.structs.replace(resent, qty=resent.qty + filled)
    engine.restore(whole, filled, placed)


def _send_all(sender: zmq.Socket, events: list, stop: threading.Event) -> None:
    for event in events:
        if not send(sender, codec.encode(event), stop):
            return


_TIME = struct.Struct("<q")  # the robot's time when it sent a frame of actions


def _no_later_than_anything() -> int:
    return 1 << 64  # every event's time is below (events.Int64)


def _take_prices(held: deque, until: int, engine: PaperExchange, sender, stop) -> None:
    """The held prices up to ``until``, oldest first, each filling what it can."""
    while held and held[0].ts <= until:
        _send_all(sender, engine.on_market(held.popleft()), stop)


def _actions(sock: zmq.Socket):
    """``(robot time when sent, action)`` for every action waiting on the order
    socket, in arrival order; the time is that of no robot (every price first)
    when the frame carries none."""
    while True:
        try:
            frames = sock.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        sent_at = _TIME.unpack(frames[0])[0] if len(frames) == 2 else _no_later_than_anything()
        for action in codec.decode_actions(frames[-1]):
            yield sent_at, action


def _market_events(sock: zmq.Socket, ahead: int | None = None):
    """Everything waiting on the market-data socket, decoded, batches expanded;
    with ``ahead``, without the prices the loop drops as too far ahead of the
    host's clock (a robot that never reaches them would hold back the rest)."""
    horizon = None if ahead is None else time.time_ns() + ahead
    while True:
        try:
            raw = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            msg = codec.decode(raw)
        except codec.DECODE_ERRORS:
            continue  # the loop counts malformed data; the exchange just skips it
        events = codec.events_in(msg)
        for event in events:
            if type(event) in (Tick, Bar) and (horizon is None or event.ts <= horizon):
                yield event
