"""Backtest statistics, defined as backtesting.py defines them.

See ``docs/statistics.md`` for each figure's definition and the tool it
follows. Trades are round trips matched first-in-first-out per symbol; a
position still open at the end counts as a trade closed at the last price,
flagged ``open_at_end``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roboframe.core.events import Fill
from roboframe.core.instruments import Instrument


@dataclass
class Trade:
    symbol: str
    side: str  # long or short
    qty: int
    entry_ts: int
    entry_price: int  # ticks
    exit_ts: int
    exit_price: int  # ticks
    pnl: float  # money, fees of both legs included
    open_at_end: bool = False

    def as_dict(self, inst: Instrument) -> dict:
        return {
            "symbol": self.symbol,
            "side": self.side,
            "qty": self.qty,
            "entry_ts": self.entry_ts,
            "entry_price": str(inst.to_price(self.entry_price)),
            "exit_ts": self.exit_ts,
            "exit_price": str(inst.to_price(self.exit_price)),
            "pnl": round(self.pnl, 2),
            "open_at_end": self.open_at_end,
        }


class Ledger:
    """Round trips matched first-in-first-out per symbol, fill by fill.

    Keeps only the open lots and running totals, so memory does not grow with
    the number of trades; ``keep`` also keeps every :class:`Trade` (for
    ``--trades`` listings).
    """

    def __init__(
        self,
        instruments: dict[str, Instrument],
        *,
        keep: bool = False,
        on_trade: Callable[[Trade], None] | None = None,
    ) -> None:
        self.instruments = instruments
        self.keep = keep
        self.on_trade = on_trade
        self.trades: list[Trade] = []
        self.lots: dict[str, deque] = {}
        self.count = self.wins = self.open_at_end = 0
        self.gross_profit = self.gross_loss = 0.0
        self.best = -math.inf
        self.worst = math.inf

    def _close(self, pnl: float) -> None:
        """Count one closed round trip."""
        self.count += 1
        if pnl > 0:
            self.wins += 1
            self.gross_profit += pnl
        elif pnl < 0:
            self.gross_loss -= pnl
        if pnl > self.best:
            self.best = pnl
        if pnl < self.worst:
            self.worst = pnl

    def on_fill(self, fill: Fill) -> None:
        tv = self.instruments[fill.symbol].tick_value_float
        sign = 1 if fill.side == "buy" else -1
        qty = fill.qty
        fee = fill.fee
        fee_per_lot = float(fee) / qty if qty and fee != "0" else 0.0
        book = self.lots.get(fill.symbol)
        if book is None:
            book = self.lots[fill.symbol] = deque()
        price = fill.price
        while qty and book and book[0][0] * sign < 0:  # closes the oldest opposite lot
            lot_qty, ts, lot_price, lot_fee = book[0]
            take = min(qty, abs(lot_qty))
            move = (price - lot_price) if lot_qty > 0 else (lot_price - price)
            gross, fees = move * take * tv, (lot_fee + fee_per_lot) * take
            pnl = _net(gross, fees)
            self._close(pnl)
            if self.keep or self.on_trade is not None:  # built only when someone looks
                side = "long" if lot_qty > 0 else "short"
                self._emit(Trade(fill.symbol, side, take, ts, lot_price, fill.ts, price, pnl))
            qty -= take
            if take == abs(lot_qty):
                book.popleft()
            else:
                book[0] = (lot_qty - take * (1 if lot_qty > 0 else -1), ts, lot_price, lot_fee)
        if qty:
            book.append((sign * qty, fill.ts, price, fee_per_lot))

    def _emit(self, trade: Trade) -> None:
        if self.keep:
            self.trades.append(trade)
        if self.on_trade is not None:
            self.on_trade(trade)

    def finish(self, last: dict[str, tuple[int, int]]) -> None:
        """Close what is still open at the last price, flagged ``open_at_end``."""
        for symbol in sorted(self.lots):
            tv = self.instruments[symbol].tick_value_float
            end_ts, end_price = last.get(symbol, (0, 0))
            for lot_qty, ts, price, fee in self.lots[symbol]:
                move = (end_price - price) if lot_qty > 0 else (price - end_price)
                qty = abs(lot_qty)
                pnl = _net(move * qty * tv, fee * qty)
                trade = Trade(
                    symbol,
                    "long" if lot_qty > 0 else "short",
                    qty,
                    ts,
                    price,
                    end_ts,
                    end_price,
                    pnl,
                    open_at_end=True,
                )
                self.open_at_end += 1
                self._close(pnl)
                self._emit(trade)
        self.lots = {}


def last_prices(positions: dict, last_ts: int) -> dict[str, tuple[int, int]]:
    """Each symbol's last price and its time -- the symbol's own last market event,
    not the run's: a trade still open at the end is closed there
    (:meth:`Ledger.finish`). ``last_ts`` for a symbol priced by fills alone."""
    out = {}
    for symbol, pos in positions.items():
        if pos.last:
            seen = max(pos.bar_ts, pos.tick_ts)
            out[symbol] = (seen if seen > 0 else last_ts, pos.last)
    return out


def revalued(base: float, positions: dict, tick_value: dict, contrib: dict) -> float:
    """``base`` (the sum of every symbol's value, in ``contrib``) with each symbol
    valued anew at its last price -- after fills, which move a symbol's value at
    once, not at its next market event. The backtest and the analyzer both take
    it, so their equity is the same float, step for step."""
    for symbol, pos in positions.items():
        now = (pos.cash + pos.qty * pos.last) * tick_value[symbol]
        base += now - contrib[symbol]
        contrib[symbol] = now
    return base


def _net(gross: float, fees: float) -> float:
    """A round trip's money: ``gross - fees``, and exactly 0.0 when the two are
    equal but for binary rounding (7 lots x 1.1 against 7 x 1.10 in fees leave
    1e-15, which made a break-even trade a win, or a loss and a profit factor of
    10^15). Money has no unit a billionth of the amounts involved."""
    pnl = gross - fees
    if abs(pnl) <= 1e-9 * (abs(gross) + abs(fees)):
        return 0.0
    return pnl


def round_trips(
    fills: list[Fill], instruments: dict[str, Instrument], last: dict[str, tuple[int, int]]
) -> list[Trade]:
    """FIFO round trips of ``fills``; ``last`` maps symbol -> (ts, price) for open ends."""
    ledger = Ledger(instruments, keep=True)
    for fill in fills:
        ledger.on_fill(fill)
    ledger.finish(last)
    return ledger.trades


class EquityTracker:
    """Equity after every market event: peak, drawdown, exposure. Floats: figures
    for people, not for the kernel."""

    __slots__ = ("cash", "equity", "events", "exposed", "max_dd", "peak")

    def __init__(self, cash: float) -> None:
        self.cash = cash
        self.equity = cash
        self.peak = cash
        self.max_dd = 0.0
        self.events = 0
        self.exposed = 0

    def mark(self, equity: float, in_market: bool) -> None:
        self.events += 1
        if in_market:
            self.exposed += 1
        self.equity = equity
        if equity > self.peak:
            self.peak = equity
        elif self.peak > 0:
            dd = equity / self.peak - 1.0
            if dd < self.max_dd:
                self.max_dd = dd


def time_taken(equity: float, peak: float, max_dd: float) -> tuple[float, float]:
    """The peak and the maximum drawdown with ``equity`` taken. Equity is taken
    once a time, after its last market event: between two symbols' bars of one
    minute a hedged pair had one leg moved alone, and a peak or a fall it never
    had. The backtest's loop does this inline (a call per bar costs); the last
    time's equity, and the analyzer's every time, come here."""
    if equity > peak:
        return equity, max_dd
    if peak > 0.0:
        max_dd = min(max_dd, equity / peak - 1.0)
    return peak, max_dd


def _num(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 4)


def _deepest(max_dd: float, peak: float, final: float) -> float:
    """The deepest drawdown, the final equity's included: a fill after the last
    market event (an exit the strategy's ``on_stop`` sent, filled at the last
    close) moves equity after the last sample, as ``equity_peak`` takes it.
    (Not a float's last bit of difference: that is no drawdown, nor a -0.0.)"""
    if peak <= 0.0 or final >= peak * (1.0 - 1e-12):
        return max_dd
    return min(max_dd, final / peak - 1.0)


def summarize(
    trades: list[Trade] | Ledger, tracker: EquityTracker, *, fees: float, start: int, end: int
) -> dict[str, Any]:
    """The statistics table, with stable keys (``--json`` prints exactly this)."""
    if isinstance(trades, Ledger):
        ledger = trades
    else:
        ledger = Ledger({})
        for trade in trades:
            ledger._close(trade.pnl)
            ledger.open_at_end += trade.open_at_end
    count = ledger.count
    final = tracker.equity
    cash = tracker.cash
    return {
        "start": start,
        "end": end,
        "events": tracker.events,
        "initial_cash": round(cash, 2),
        "equity_final": round(final, 2),
        "equity_peak": round(max(tracker.peak, final), 2),
        "net_pnl": round(final - cash, 2),
        "return_pct": _num((final / cash - 1.0) * 100 if cash else float("nan")),
        "max_drawdown_pct": _num(_deepest(tracker.max_dd, tracker.peak, final) * 100),
        "exposure_pct": _num(
            tracker.exposed / tracker.events * 100 if tracker.events else float("nan")
        ),
        "trades": count,
        "open_trades_at_end": ledger.open_at_end,
        "win_rate_pct": _num(ledger.wins / count * 100 if count else float("nan")),
        "profit_factor": _num(
            ledger.gross_profit / ledger.gross_loss if ledger.gross_loss else float("nan")
        ),
        "best_trade": _num(ledger.best) if count else None,
        "worst_trade": _num(ledger.worst) if count else None,
        "avg_trade": _num((ledger.gross_profit - ledger.gross_loss) / count) if count else None,
        "fees": round(fees, 2),
    }


def order_counts(kernel: Any) -> dict[str, Any]:
    """The orders a run sent and its risk refused, beside its statistics (the
    backtest's and the analysis's alike)."""
    counters = kernel.counters
    return {
        "orders": counters["orders"],
        "rejections": counters["rejections"],
        "last_rejection": kernel.last_rejection,
    }
