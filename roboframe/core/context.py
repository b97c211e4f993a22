"""What a strategy sees besides the event: :class:`Context`.

One context lives as long as the kernel; its properties read the kernel's
current state, so nothing is built per event.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from roboframe.core.book import money
from roboframe.core.events import Cancel, NewOrder, Replace, Side
from roboframe.core.instruments import Instrument
from roboframe.core.orders import OwnOrder

if TYPE_CHECKING:
    from roboframe.core.kernel import Kernel


class Context:
    """The strategy's window on its robot. Read freely; change nothing."""

    __slots__ = ("_k",)

    def __init__(self, kernel: Kernel) -> None:
        self._k = kernel

    # -- facts ----------------------------------------------------------------

    @property
    def time(self) -> int:
        """The current event's source time, ns since the epoch (UTC)."""
        return self._k.now

    @property
    def robot(self) -> str:
        return self._k.robot

    @property
    def state(self) -> str:
        """Trading state: ACTIVE, PAUSED, REDUCING, HALTED or STOPPED."""
        return self._k.risk.state

    @property
    def params(self) -> Mapping[str, Any]:
        return self._k.strategy.params

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._k.symbols

    def instrument(self, symbol: str) -> Instrument:
        return self._k.instruments[symbol]

    def position(self, symbol: str) -> int:
        """Signed position in lots (positive long)."""
        return self._k.book.positions[symbol].qty

    @property
    def positions(self) -> dict[str, int]:
        return {s: p.qty for s, p in self._k.book.positions.items()}

    def avg_price(self, symbol: str) -> Fraction | None:
        """Average entry price of the open position, in ticks (None when flat)."""
        return self._k.book.positions[symbol].avg_price

    def last_price(self, symbol: str) -> int | None:
        """Last price seen for ``symbol``, in ticks (None before the first)."""
        return self._k.book.positions[symbol].last or None

    def pnl(self, symbol: str | None = None) -> Decimal:
        """Net PnL in money (realized + unrealized - fees)."""
        book = self._k.book
        if symbol is None:
            return book.net_money()
        pos = book.positions[symbol]
        return money(pos.total_ticks(), pos.inst) - pos.fees

    def open_orders(self, symbol: str | None = None) -> list[OwnOrder]:
        """Open orders, oldest first."""
        orders = self._k.orders.open.values()
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def order(self, client_id: str) -> OwnOrder | None:
        return self._k.orders.orders.get(client_id)

    # -- helpers that build actions (they do not send anything) ---------------

    def buy(self, symbol: str, qty: int, price: int | None = None) -> NewOrder:
        """A buy order: market when ``price`` is None, else limit at ``price`` ticks."""
        return self._order(symbol, "buy", qty, price)

    def sell(self, symbol: str, qty: int, price: int | None = None) -> NewOrder:
        """A sell order: market when ``price`` is None, else limit at ``price`` ticks."""
        return self._order(symbol, "sell", qty, price)

    def cancel(self, order: OwnOrder | str) -> Cancel:
        return Cancel(order if isinstance(order, str) else order.client_id)

    def replace(
        self, order: OwnOrder | str, *, price: int | None = None, qty: int | None = None
    ) -> Replace:
        """Move an open limit order to ``price`` ticks and/or ``qty`` lots in all
        (filled ones included), keeping its client id; what is not given stays.
        ``on_order`` hears ``replaced`` when it took effect, else ``replace_rejected``."""
        own = self._k.orders.orders.get(order) if isinstance(order, str) else order
        if own is None:
            return Replace(order, qty or 0, price or 0)  # risk says the order is not open
        return Replace(
            own.client_id, own.qty if qty is None else qty, own.price if price is None else price
        )

    def cancel_all(self, symbol: str | None = None) -> list[Cancel]:
        return [Cancel(o.client_id) for o in self.open_orders(symbol) if not o.cancel_pending]

    def order_target(self, symbol: str, target: int, price: int | None = None) -> list[NewOrder]:
        """Orders that bring position plus open orders to ``target`` lots.

        An order with a replace pending counts at the larger of its sizes
        before and after: either may stand, and counting the smaller would
        send lots that overshoot the target once the larger stands.
        """
        kernel = self._k
        delta = target - kernel.book.positions[symbol].qty
        for own in kernel.orders.open.values():  # what open orders will still add
            if own.symbol == symbol:
                left = own.qty - own.filled
                if own.replace_pending is not None:
                    left = max(left, own.replace_pending[0] - own.filled)
                delta -= left if own.side == "buy" else -left
        if delta > 0:
            return [self._order(symbol, "buy", delta, price)]
        if delta < 0:
            return [self._order(symbol, "sell", -delta, price)]
        return []

    # -- timers -----------------------------------------------------------------

    def set_timer(
        self, name: str, *, every: int | str | None = None, at: int | None = None
    ) -> None:
        """Ask for ``Timer(name, ts)`` events: at time ``at`` (ns since the epoch),
        and/or every ``every`` (``"500ms"``, ``"30s"``, ``"5m"``, ``"1h"`` or
        milliseconds) from then on -- or from now, when ``at`` is not given.

        Timers run on event time: in a backtest they fire exactly at their
        time, between the market events around it; live, the loop fires them
        when the robot's clock passes their time. Each firing is an event,
        journaled like any other, so replays reproduce it. Setting a name
        again replaces that timer.
        """
        self._k.set_timer(name, every=every, at=at)

    def cancel_timer(self, name: str) -> None:
        """Forget timer ``name`` (nothing happens when there is none)."""
        self._k.cancel_timer(name)

    @property
    def timers(self) -> dict[str, int]:
        """Each timer's next time (ns since the epoch)."""
        return {name: due for name, (due, _every) in self._k.timers.items()}

    def _order(self, symbol: str, side: Side, qty: int, price: int | None) -> NewOrder:
        client_id = self._k.next_client_id()
        if price is None:
            return NewOrder(client_id, symbol, side, qty)
        return NewOrder(client_id, symbol, side, qty, "limit", price)
