"""The paper exchange: a deterministic matching engine and its live gateway.

:class:`PaperExchange` is pure -- no I/O, no threads, no clock -- so a
backtest can run it in step with the data. Its rules:

- An order is acknowledged (``accepted``) at once, or ``rejected`` when its
  symbol is unknown, its quantity is not positive or a limit price is not
  positive. A cancel of an open order answers ``cancelled``; of anything else,
  a ``rejected`` update for that order (the kernel reads it as a refused
  cancel).
- Market orders fill at the *next* price after they arrive: the next bar's
  open, or the next tick's ask (buy) / bid (sell) when the tick has quotes,
  else its trade price. ``fill_at: close`` fills at the close of the bar that
  is current when the order arrives (for backtests deciding on that close).
  ``slippage_ticks`` moves every market fill against the trader.
- Limit orders fill when the market trades *through* them -- a buy limit when
  a bar's low (or a tick's price) is strictly below the limit, a sell limit
  when strictly above; touching is not enough. The fill price is the limit, or
  a bar's open when the bar opened beyond it (a gap through a resting order).
- When the data has volume (bar volume, tick quantity > 0), an order fills at
  most that much per event; the rest waits for the next event. Volume 0 means
  unknown: the whole order fills.
- Fees are ``commission`` per lot, as exact decimal strings.
- Orders are matched in arrival order; trade ids are ``P1``, ``P2``, ...
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import zmq

from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Cancel, Fill, NewOrder, OrderUpdate, Tick
from roboframe.core.gateway import Gateway, Runtime
from roboframe.core.instruments import Instrument

log = logging.getLogger(__name__)


class _Resting:
    __slots__ = ("filled", "order", "ready")

    def __init__(self, order: NewOrder, ready: bool) -> None:
        self.order = order
        self.filled = 0
        self.ready = ready  # a market order waits for the next price


class PaperExchange:
    """A matching engine that fills orders against market data.

    ``instruments`` limits the symbols it accepts; None accepts any symbol
    (the stand-alone exchange process, which serves many robots).
    """

    def __init__(
        self,
        instruments: dict[str, Instrument] | None,
        *,
        commission: Decimal | str | float = 0,
        slippage_ticks: int = 0,
        fill_at: str = "next",
    ) -> None:
        self.instruments = instruments
        self.commission = Decimal(str(commission))
        self.slippage = int(slippage_ticks)
        self.fill_at = fill_at
        self.open_orders: dict[str, _Resting] = {}
        self.last: dict[str, Tick | Bar] = {}
        self.trades = 0
        self.ts = 0

    # -- orders ---------------------------------------------------------------

    def submit(self, action: NewOrder | Cancel, ts: int | None = None) -> list[Any]:
        ts = self.ts if ts is None else ts
        if isinstance(action, Cancel):
            resting = self.open_orders.pop(action.client_id, None)
            if resting is None:
                return [OrderUpdate(action.client_id, ts, "rejected", "cancel: order not open")]
            return [OrderUpdate(action.client_id, ts, "cancelled")]
        reason = self._invalid(action)
        if reason:
            return [OrderUpdate(action.client_id, ts, "rejected", reason)]
        out: list[Any] = [OrderUpdate(action.client_id, ts, "accepted")]
        if action.client_id in self.open_orders:
            return [OrderUpdate(action.client_id, ts, "rejected", "duplicate client id")]
        resting = _Resting(action, ready=action.type == "limit")
        self.open_orders[action.client_id] = resting
        if action.type == "market" and self.fill_at == "close":
            last = self.last.get(action.symbol)
            if isinstance(last, Bar):
                price = last.close + (self.slippage if action.side == "buy" else -self.slippage)
                out += self._fill(resting, max(price, 1), resting.order.qty, last.ts)
        return out

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
        """Fill what this event allows; then orders waiting for a next price are ready."""
        self.ts = event.ts
        self.last[event.symbol] = event
        fills: list[Fill] = []
        available = event.volume if type(event) is Bar else event.qty
        unlimited = available <= 0
        for resting in list(self.open_orders.values()):
            order = resting.order
            if order.symbol != event.symbol:
                continue
            if not resting.ready:
                resting.ready = True  # arrived before this event: this is its next price
                if order.type == "market":
                    price = self._market_price(order, event)
                else:
                    continue
            else:
                price = (
                    self._limit_price(order, event)
                    if order.type == "limit"
                    else (self._market_price(order, event))
                )
            if price is None:
                continue
            qty = order.qty - resting.filled
            if not unlimited:
                qty = min(qty, available)
                if qty <= 0:
                    break
                available -= qty
            fills += self._fill(resting, price, qty, event.ts)
        return fills

    def _market_price(self, order: NewOrder, event: Tick | Bar) -> int:
        if type(event) is Bar:
            base = event.open
        elif order.side == "buy":
            base = event.ask or event.price
        else:
            base = event.bid or event.price
        return max(1, base + (self.slippage if order.side == "buy" else -self.slippage))

    @staticmethod
    def _limit_price(order: NewOrder, event: Tick | Bar) -> int | None:
        limit = order.price
        if type(event) is Bar:
            if order.side == "buy" and event.low < limit:
                return min(limit, event.open)
            if order.side == "sell" and event.high > limit:
                return max(limit, event.open)
            return None
        if order.side == "buy" and event.price < limit:
            return limit
        if order.side == "sell" and event.price > limit:
            return limit
        return None

    def _fill(self, resting: _Resting, price: int, qty: int, ts: int) -> list[Fill]:
        order = resting.order
        resting.filled += qty
        if resting.filled >= order.qty:
            self.open_orders.pop(order.client_id, None)
        self.trades += 1
        fee = self.commission * qty
        return [
            Fill(
                order.client_id,
                ts,
                order.symbol,
                order.side,
                qty,
                price,
                f"P{self.trades}",
                str(fee),
            )
        ]


class PaperGateway(Gateway):
    """The embedded paper exchange, running in the trade-stream thread."""

    needs_market_data = True
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
                "enum": ["next", "close"],
                "default": "next",
                "description": "market orders fill at the next price, or at the "
                "current bar's close",
            },
        },
    }

    def open(self, runtime: Runtime) -> None:
        self._push, self._pull = order_pipe(runtime, "paper-orders")

    def engine(self) -> PaperExchange:
        p = self.params
        return PaperExchange(
            self.instruments,
            commission=p.get("commission", 0),
            slippage_ticks=p.get("slippage_ticks", 0),
            fill_at=p.get("fill_at", "next"),
        )

    def submit(self, actions: list) -> None:
        self._push.send(codec.encode(actions))

    def trade_stream(self, runtime: Runtime, sender: zmq.Socket) -> None:
        from roboframe.core.streams import send

        engine = self.engine()
        ctx = runtime.context
        orders = self._pull  # handed over to this thread; the loop thread never touches it
        market = ctx.socket(zmq.SUB)
        market.setsockopt(zmq.LINGER, 0)
        market.setsockopt(zmq.SUBSCRIBE, b"")
        market.connect(runtime.market_data_address)
        poller = zmq.Poller()
        poller.register(orders, zmq.POLLIN)
        poller.register(market, zmq.POLLIN)
        stop = runtime.stop
        try:
            while not stop.is_set():
                ready = dict(poller.poll(100))
                if market in ready:  # prices first: an order sees the price after it
                    for event in _market_events(market):
                        for fill in engine.on_market(event):
                            send(sender, codec.encode(fill), stop)
                if orders in ready:
                    for action in codec.decode_actions(orders.recv()):
                        for update in engine.submit(action):
                            send(sender, codec.encode(update), stop)
        finally:
            orders.close()
            market.close()

    def close(self) -> None:
        push = getattr(self, "_push", None)  # open() may have failed before making it
        if push is not None:
            push.close()


def order_pipe(runtime: Runtime, name: str) -> tuple[zmq.Socket, zmq.Socket]:
    """A PUSH/PULL pair, connected before any thread starts, for orders from the loop.

    Connecting both ends here means :meth:`Gateway.submit` can never block
    waiting for the trade stream to connect; the unlimited send queue means it
    never blocks on a slow one either. The PULL end is handed to the
    trade-stream thread and used only there from then on.
    """
    address = runtime.private_address(name)
    pull = runtime.context.socket(zmq.PULL)
    pull.setsockopt(zmq.LINGER, 0)
    pull.bind(address)
    push = runtime.context.socket(zmq.PUSH)
    push.setsockopt(zmq.SNDHWM, 0)
    push.setsockopt(zmq.LINGER, 0)
    push.connect(address)
    return push, pull


def _market_events(sock: zmq.Socket):
    """Everything waiting on the market-data socket, decoded, batches expanded."""
    while True:
        try:
            raw = sock.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            msg = codec.decode(raw)
        except codec.DecodeError:
            continue  # the loop counts malformed data; the exchange just skips it
        events = msg.events if type(msg) is Batch else (msg,)
        for event in events:
            if type(event) in (Tick, Bar):
                yield event
