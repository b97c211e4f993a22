"""Pre-trade limits and the robot's trading state.

Trading states:

- ``ACTIVE``: every check below applies.
- ``PAUSED``: new orders are refused (``pause`` command); cancels pass, fills
  are handled, the strategy keeps seeing data.
- ``REDUCING``: only orders that reduce a position pass (``reduce`` command);
  the kernel cancels the open orders that would add, as for ``HALTED``.
- ``HALTED``: the daily-loss kill switch fired; reduce-only, until a
  ``resume`` command. It does not reset by itself at the next day. When it
  fires, the kernel also cancels the open orders that would add to a
  position (:func:`roboframe.core.exits.adding_orders`): reduce-only stops
  new risk, the cancels stop the risk already resting on the exchange.
- ``STOPPED``: the run is over; nothing new passes, and the kill switch leaves
  it so (a loss on a fill in the stop's drain does not make it HALTED).

Limits, all optional: allowed symbols; max order quantity; max position per
symbol (counting open orders on the same side, the worst case); max orders
per second measured in *event* time, so replay gives the same answer (a
fraction as it says: 0.5 is one order per 2 s); max daily loss in money (net
PnL since the day before's last prices, so the gap at the open counts, fees
included; the day begins at ``day_starts``, midnight UTC unless set, and a
market event or a timer after its end starts the next; a weekend or holiday
joins the next trading day: :mod:`roboframe.risk.calendar`); a price band
around the last price for limit orders (which refuses them before the
symbol's first price: a fat finger then has nothing to be caught by).

A refusal is returned as a reason string; the kernel turns it into an
``OrderUpdate(status="rejected")`` the strategy sees, and journals it.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from fractions import Fraction
from typing import TYPE_CHECKING

from roboframe.core.events import NewOrder
from roboframe.errors import described
from roboframe.risk.calendar import TradingDays

if TYPE_CHECKING:
    from roboframe.core.book import Book
    from roboframe.core.orders import OrderBook, OwnOrder
    from roboframe.core.riskcheck import RiskCheck, RiskView

log = logging.getLogger(__name__)

ACTIVE = "ACTIVE"
PAUSED = "PAUSED"
REDUCING = "REDUCING"
HALTED = "HALTED"
STOPPED = "STOPPED"

_SECOND_NS = 1_000_000_000


class RiskEngine:
    """Checks one order at a time against the limits and the trading state."""

    def __init__(
        self,
        spec,
        book: Book,
        orders: OrderBook,
        checks: list[tuple[str, RiskCheck]] = (),
        view: RiskView | None = None,
    ) -> None:
        self.book = book
        self.orders = orders
        self.checks = list(checks)  # plugins' checks, after the limits: (name, check)
        self.check_errors: dict[str, int] = {}  # check name -> times it raised
        self.view = view
        self.state = ACTIVE
        self.halt_reason = ""
        self.allowed = frozenset(spec.allowed_symbols)
        self.max_order_qty = spec.max_order_qty
        self.max_position = dict(spec.max_position)
        self._rate = spec.max_orders_per_second
        self.exact_rate = True  # see the setter; journals from before replay without
        self._sent: deque[int] = deque()
        loss = spec.max_daily_loss
        self.max_daily_loss = float(loss) if loss is not None else None
        band = spec.price_band_pct
        self.band = Fraction(str(band)) / 100 if band is not None else None
        self.band_needs_price = True  # False: the rule of older journals (RULES "band")
        # a flatten's closing orders skip the plugins' checks (RULES "flatten_checks")
        self.flatten_passes_checks = True
        self._trading_days = TradingDays(spec.day_starts, spec.trading_days, spec.closed)
        self.day_shift = self._trading_days.shift  # see calendar.day_shift
        self._every_day = TradingDays.every_day(spec.day_starts)
        self.calendar = self._trading_days  # see by_trading_days
        self._day = None
        self._day_start = 0.0
        self._last_total: float | None = None  # equity at the previous look
        # a day's loss counts from the day before's last prices; False: from the new
        # day's first (the rule of journals written before, which replay by it)
        self.from_day_before = True
        self.halt_for_the_day = spec.halt_lasts == "day"
        self._loss_halt = False  # HALTED by the kill switch (not by a halt command)
        # the kill switch leaves a stopped robot stopped (False: the rule of journals
        # written before, in which it halted it: RULES "stop")
        self.stop_is_final = True
        self.rejections = 0
        self.gateway_down = ""  # why the order path is unavailable; "" when it is up
        # why the exchange side seems not to take orders (the order path is up: the
        # store takes them, but nothing acknowledges them); "" when it does
        self.unacknowledged = ""

    # -- state ----------------------------------------------------------------

    def set_state(self, state: str, reason: str = "") -> None:
        if state != self.state:
            why = f" ({reason})" if reason else ""
            level = logging.WARNING if state in (HALTED, REDUCING) else logging.INFO
            log.log(level, "trading state %s -> %s%s", self.state, state, why)
        self.state = state
        self._loss_halt = False  # the kill switch says so itself, after this
        if state == HALTED:
            self.halt_reason = reason
        elif state == ACTIVE:  # resumed: the halt's reason no longer explains anything
            self.halt_reason = ""

    def watch_loss(self, now: int) -> bool:
        """Fire the kill switch when the day's loss passes the limit; True when
        it fired just now.

        A day starts from the equity at the previous look (the kernel looks on
        every event while in the market, and at each fill): the last prices of
        the day before. Taken at the new day's first price, the gap at the open
        -- often the day's largest move -- was never counted."""
        limit = self.max_daily_loss
        if limit is None:
            return False
        day = self.calendar.day_of(now)
        total = self.book.total_money_float()
        before, self._last_total = self._last_total, total
        if day != self._day:
            self._day = day
            if self.halt_for_the_day and self._loss_halt and self.state == HALTED:
                self.set_state(ACTIVE, "a new day (risk.halt_lasts: day)")
            if before is None or not self.from_day_before:
                self._day_start = total
                return False
            self._day_start = before
        if self.state != HALTED and self._day_start - total > limit and self._may_halt():
            self.set_state(
                HALTED,
                f"daily loss {self._day_start - total:.2f} exceeds {limit:g}",
            )
            self._loss_halt = True
            return True
        return False

    def _may_halt(self) -> bool:
        """Whether the kill switch may change the state: not once the robot is
        stopped. A fill in the stop's drain past the limit turned STOPPED into
        HALTED, which the loop takes for a running robot (it drained on), and a
        late ``resume`` made it ACTIVE: trading again after its ``on_stop``."""
        return self.state != STOPPED or not self.stop_is_final

    # -- checks ---------------------------------------------------------------

    def check_new(self, order: NewOrder, now: int, closing: bool = False) -> str | None:
        """``None`` when the order may go, else the reason it may not.

        ``closing``: a ``flatten`` command's closing order, which a trader asked
        for in so many words: when not ACTIVE it passes if it reduces, also
        while paused or stopping; the order rate does not hold it back."""
        state = self.state
        if self.gateway_down or self.unacknowledged:
            reason = self._path_refusal(closing)
            if reason:
                return reason
        if state != ACTIVE:
            if state in (STOPPED, PAUSED) and not closing:
                return f"robot is {state.lower()}"
            if not self._reduces(order):
                why = self.halt_reason or "reduce only"
                return f"robot is {state} ({why}): order would not reduce the position"
        return self._limits(order, now, closing=closing)

    def _path_refusal(self, closing: bool = False) -> str | None:
        """Why the order path takes no new risk now: down, or stalled (orders
        unacknowledged; a flatten's closing orders still go), or None."""
        if self.gateway_down:
            return f"order path unavailable ({self.gateway_down})"
        if self.unacknowledged and not closing:
            return f"exchange side not acknowledging orders ({self.unacknowledged})"
        return None

    def _limits(
        self,
        order: NewOrder,
        now: int,
        replacing: OwnOrder | None = None,
        closing: bool = False,
    ) -> str | None:
        """Every limit and plugin check on ``order`` (``replacing``: the open
        order it would become, whose lots then count once)."""
        symbol = order.symbol
        if symbol not in self.allowed:
            return f"symbol {symbol} is not allowed"
        qty = order.qty  # a whole positive number: see roboframe.core.wellformed
        if self.max_order_qty is not None and qty > self.max_order_qty:
            return f"quantity {qty} exceeds max_order_qty {self.max_order_qty}"
        reason = self._check_position(order, replacing)
        if reason:
            return reason
        if self.band is not None and order.type == "limit":
            last = self.book.positions[symbol].last
            if not last:
                if self.band_needs_price:
                    return (
                        f"no price for {symbol} yet: the {float(self.band * 100):g}% price "
                        "band has nothing to check a limit price against"
                    )
            elif abs(order.price - last) > self.band * last:
                return (
                    f"limit price {order.price} is outside the {float(self.band * 100):g}% "
                    f"band around the last price {last} (ticks)"
                )
        if self.max_rate is not None and not closing:
            sent = self._sent
            while sent and sent[0] <= now - self._window:
                sent.popleft()
            if len(sent) >= self.max_rate or (
                self._burst is not None and self._in_a_second(now) >= self._burst
            ):
                return self._rate_said
        if closing and self.flatten_passes_checks:  # a flatten takes risk off
            return None
        for name, check in self.checks:
            try:
                reason = check.check(order, self.view)
            except Exception as exc:  # a broken check refuses: it fails closed, never open
                reason = f"the check raised {type(exc).__name__}: {exc}"  # journaled
                self._check_failed(name, order, f"raised {described(exc)}")
            if reason is not None and type(reason) is not str:
                # True for "ok" refused every order as "name: True", and False let
                # every one through: either is the check's bug, and it fails closed
                said = f"returned {reason!r}, not None (to pass) or a reason (a str)"
                self._check_failed(name, order, said)
                reason = f"the check {said}"
            if reason:
                return f"{name}: {reason}"
        return None

    def _check_failed(self, name: str, order: NewOrder, error: str) -> None:
        """Logged the first time each check raises, then every 1000th: a long
        backtest of a broken check must not bury the log in the same line."""
        raised = self.check_errors[name] = self.check_errors.get(name, 0) + 1
        if raised == 1 or raised % 1000 == 0:
            log.error(
                "risk check %s %s on %s; its orders are refused (%d so far)",
                name, error, order.client_id, raised,
            )  # fmt: skip

    def check_replace(self, order: NewOrder, own: OwnOrder, now: int) -> str | None:
        """``None`` when open order ``own`` may become ``order`` (its new quantity
        and price under the same client id), else the reason it may not. A
        smaller quantity at the same price only takes risk off: it always passes."""
        if order.price == own.price and order.qty < own.qty:
            return None
        if self.gateway_down or self.unacknowledged:
            return self._path_refusal()
        if self.state != ACTIVE:
            return (
                f"robot is {self.state}: only a smaller quantity at the same price may be replaced"
            )
        return self._limits(order, now, own)

    @property
    def by_trading_days(self) -> bool:
        return self.calendar is self._trading_days

    @by_trading_days.setter
    def by_trading_days(self, yes: bool) -> None:
        """The daily loss by trading days (a weekend or holiday joins the next
        trading day: :mod:`roboframe.risk.calendar`). Before (False, for older
        journals) every date was a day of its own: Friday's evening session and
        Monday's were two days, each with a fresh limit."""
        self.calendar = self._trading_days if yes else self._every_day

    @property
    def exact_rate(self) -> bool:
        return self._exact_rate

    @exact_rate.setter
    def exact_rate(self, exact: bool) -> None:
        """A fractional ``max_orders_per_second`` as it says: 0.5 is one order per
        2 s, 2.5 five per 2 s. Before (``exact`` False, for older journals) it was
        cut to a whole number: 0.5 refused every order, 2.5 allowed 2."""
        self._exact_rate = exact
        rate = self._rate
        self._window = _SECOND_NS
        self._burst = None  # with a longer window: the most in any one second
        if not rate:
            self.max_rate = None
            return
        if not exact:
            self.max_rate = int(rate)
            self._rate_said = f"more than {self.max_rate} orders per second"
            return
        share = Fraction(str(rate)).limit_denominator(1000)
        self.max_rate, self._window = share.numerator, share.denominator * _SECOND_NS
        if share.denominator > 1:  # 2.5 is five per 2 s, never five in an instant
            self._burst = math.ceil(share)
        self._rate_said = f"more than {rate:g} orders per second"
        if share.denominator > 1:
            self._rate_said += f" ({share.numerator} per {share.denominator} s)"

    def _in_a_second(self, now: int) -> int:
        """Orders sent in the last second (the newest of the window's)."""
        count = 0
        for at in reversed(self._sent):
            if at <= now - _SECOND_NS:
                break
            count += 1
        return count

    def note_sent(self, now: int) -> None:
        if self.max_rate is not None:
            self._sent.append(now)

    def _check_position(self, order: NewOrder, replacing: OwnOrder | None = None) -> str | None:
        limit = self.max_position.get(order.symbol)
        if limit is None:
            return None
        pos = self.book.positions[order.symbol].qty
        buys, sells = self.orders.pending_qty(order.symbol)
        adding = order.qty
        if replacing is not None:  # its lots are in the pending ones: count the larger once
            adding = max(0, order.qty - replacing.qty)
        if order.side == "buy":
            worst = pos + buys + adding
        else:
            worst = -(pos - sells - adding)
        if worst > limit:
            return (
                f"position could reach {worst} lots, over max_position {limit} for {order.symbol}"
            )
        return None

    def _reduces(self, order: NewOrder) -> bool:
        pos = self.book.positions[order.symbol].qty if order.symbol in self.book.positions else 0
        buys, sells = self.orders.pending_qty(order.symbol)
        if order.side == "buy":
            return pos < 0 and buys + order.qty <= -pos
        return pos > 0 and sells + order.qty <= pos
