"""Positions and PnL, exact.

Per symbol the book keeps the signed position in lots, the *cash* of all
fills in ticks x lots (``-sum(signed_qty * price)``) and the open position's
cost for the average price. Every figure is an integer or a Fraction of
ticks x lots until it is turned into money by the instrument's tick value,
so totals never drift and match an exchange's own arithmetic.

    total PnL (ticks x lots) = cash + position * last price
    unrealized               = position * last - open_cost
    realized                 = total - unrealized
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from roboframe.core.events import Fill
from roboframe.core.instruments import Instrument

_CENT = Decimal("0.01")


def money(value: Fraction | int, inst: Instrument) -> Decimal:
    """Ticks x lots to money in the instrument's currency, to the cent."""
    if isinstance(value, Fraction):
        dec = Decimal(value.numerator) / Decimal(value.denominator)
    else:
        dec = Decimal(value)
    return (dec * inst.tick_value).quantize(_CENT)


class Position:
    """One symbol's position; mutated only by :meth:`Book.apply_fill`."""

    __slots__ = (
        "bar_ts",
        "cash",
        "fees",
        "fills",
        "inst",
        "last",
        "open_cost",
        "qty",
        "symbol",
        "tick_ts",
        "volume",
    )

    def __init__(self, inst: Instrument) -> None:
        self.inst = inst
        self.symbol = inst.symbol
        self.qty = 0  # signed lots
        self.cash = 0  # ticks x lots
        self.open_cost: int | Fraction = 0  # ticks x lots of the open position (exact)
        self.last = 0  # last price seen, ticks (0 = none yet)
        self.bar_ts = -(1 << 63)  # time of the last bar taken (the kernel's)
        self.tick_ts = -(1 << 63)  # time of the last tick taken (the kernel's)
        self.fees = Decimal(0)
        self.fills = 0
        self.volume = 0  # lots traded

    @property
    def avg_price(self) -> Fraction | None:
        """Average entry price of the open position, in ticks."""
        return Fraction(self.open_cost) / self.qty if self.qty else None

    def total_ticks(self) -> int:
        return self.cash + self.qty * self.last

    def unrealized_ticks(self) -> int | Fraction:
        return self.qty * self.last - self.open_cost if self.qty else 0

    def realized_ticks(self) -> int | Fraction:
        return self.total_ticks() - self.unrealized_ticks()

    def snapshot(self) -> dict:
        inst = self.inst
        avg = self.avg_price
        realized = money(self.realized_ticks(), inst)
        unrealized = money(self.unrealized_ticks(), inst)
        return {
            "symbol": self.symbol,
            "position": self.qty,
            "avg_price": str(_price(avg, inst)) if avg is not None else None,
            "last_price": str(inst.to_price(self.last)) if self.last else None,
            "realized_pnl": str(realized),
            "unrealized_pnl": str(unrealized),
            "fees": str(self.fees),
            "net_pnl": str(realized + unrealized - self.fees),
            "currency": inst.currency,
            "fills": self.fills,
            "volume": self.volume,
        }


def _price(ticks: Fraction, inst: Instrument) -> Decimal:
    dec = Decimal(ticks.numerator) / Decimal(ticks.denominator) * inst.tick_size
    return dec.quantize(inst.tick_size / 100) if ticks.denominator != 1 else dec


class Book:
    """All positions of one robot."""

    def __init__(self, instruments: dict[str, Instrument]) -> None:
        self.instruments = instruments
        self.positions: dict[str, Position] = {s: Position(i) for s, i in instruments.items()}
        self.open_count = 0  # symbols with a position
        self.fees_float = 0.0  # all fees, for equity curves

    def apply_fill(self, fill: Fill) -> Position:
        pos = self.positions[fill.symbol]
        qty = fill.qty if fill.side == "buy" else -fill.qty
        price = fill.price
        pos.cash -= qty * price
        pos.fills += 1
        pos.volume += fill.qty
        if fill.fee and fill.fee != "0":
            fee = Decimal(fill.fee)
            pos.fees += fee
            self.fees_float += float(fee)
        old = pos.qty
        new = old + qty
        if old == 0 or (old > 0) == (qty > 0):  # opening or adding
            pos.open_cost += qty * price
        elif new == 0:  # closing
            pos.open_cost = 0
        elif (old > 0) == (new > 0):  # reducing: the average price stays
            kept = pos.open_cost * new
            whole = type(kept) is int and kept % old == 0
            pos.open_cost = kept // old if whole else Fraction(kept, old)
        else:  # reversing through zero
            pos.open_cost = new * price
        pos.qty = new
        if (old == 0) != (new == 0):
            self.open_count += 1 if new else -1
        if pos.last == 0:
            pos.last = price
        return pos

    def mark(self, symbol: str, price: int) -> None:
        self.positions[symbol].last = price

    def total_money_float(self) -> float:
        """Net PnL of all symbols in money, as a float (risk checks only)."""
        total = 0.0
        for pos in self.positions.values():
            total += pos.total_ticks() * pos.inst.tick_value_float - float(pos.fees)
        return total

    def net_money(self) -> Decimal:
        """Net PnL of all symbols in money (exact, to the cent), fees deducted."""
        return sum(
            (money(p.total_ticks(), p.inst) - p.fees for p in self.positions.values()),
            Decimal(0),
        )
