"""Backtest statistics, defined as backtesting.py defines them.

See ``docs/statistics.md`` for each figure's definition and the tool it
follows. Trades are round trips matched first-in-first-out per symbol; a
position still open at the end counts as a trade closed at the last price,
flagged ``open_at_end``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from decimal import Decimal
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


def round_trips(
    fills: list[Fill], instruments: dict[str, Instrument], last: dict[str, tuple[int, int]]
) -> list[Trade]:
    """FIFO round trips from fills; ``last`` maps symbol -> (ts, price) for open ends."""
    lots: dict[str, deque] = {}
    trades: list[Trade] = []
    for fill in fills:
        inst = instruments[fill.symbol]
        tv = float(inst.tick_value)
        sign = 1 if fill.side == "buy" else -1
        fee_per_lot = float(Decimal(fill.fee)) / fill.qty if fill.qty else 0.0
        book = lots.setdefault(fill.symbol, deque())
        qty = fill.qty
        while qty and book and book[0][0] * sign < 0:  # closes the oldest opposite lot
            lot_qty, ts, price, fee = book[0]
            take = min(qty, abs(lot_qty))
            side = "long" if lot_qty > 0 else "short"
            move = (fill.price - price) if lot_qty > 0 else (price - fill.price)
            pnl = move * take * tv - (fee + fee_per_lot) * take
            trades.append(Trade(fill.symbol, side, take, ts, price, fill.ts, fill.price, pnl))
            qty -= take
            if take == abs(lot_qty):
                book.popleft()
            else:
                book[0] = (lot_qty - take * (1 if lot_qty > 0 else -1), ts, price, fee)
        if qty:
            book.append((sign * qty, fill.ts, fill.price, fee_per_lot))
    for symbol in sorted(lots):
        tv = float(instruments[symbol].tick_value)
        end_ts, end_price = last.get(symbol, (0, 0))
        for lot_qty, ts, price, fee in lots[symbol]:
            move = (end_price - price) if lot_qty > 0 else (price - end_price)
            trades.append(
                Trade(
                    symbol,
                    "long" if lot_qty > 0 else "short",
                    abs(lot_qty),
                    ts,
                    price,
                    end_ts,
                    end_price,
                    move * abs(lot_qty) * tv - fee * abs(lot_qty),
                    open_at_end=True,
                )
            )
    return trades


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


def _num(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else round(value, 4)


def summarize(
    trades: list[Trade], tracker: EquityTracker, *, fees: float, start: int, end: int
) -> dict[str, Any]:
    """The statistics table, with stable keys (``--json`` prints exactly this)."""
    pnls = [t.pnl for t in trades]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p < 0]
    gross_loss = -sum(losses)
    final = tracker.equity
    cash = tracker.cash
    return {
        "start": start,
        "end": end,
        "events": tracker.events,
        "initial_cash": round(cash, 2),
        "equity_final": round(final, 2),
        "equity_peak": round(tracker.peak, 2),
        "net_pnl": round(final - cash, 2),
        "return_pct": _num((final / cash - 1.0) * 100 if cash else float("nan")),
        "max_drawdown_pct": _num(tracker.max_dd * 100),
        "exposure_pct": _num(
            tracker.exposed / tracker.events * 100 if tracker.events else float("nan")
        ),
        "trades": len(trades),
        "open_trades_at_end": sum(1 for t in trades if t.open_at_end),
        "win_rate_pct": _num(len(wins) / len(trades) * 100 if trades else float("nan")),
        "profit_factor": _num(sum(wins) / gross_loss if gross_loss else float("nan")),
        "best_trade": _num(max(pnls)) if pnls else None,
        "worst_trade": _num(min(pnls)) if pnls else None,
        "avg_trade": _num(sum(pnls) / len(pnls)) if pnls else None,
        "fees": round(fees, 2),
    }
