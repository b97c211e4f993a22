"""Instruments: how a symbol's exact integer prices map to money.

Inside the kernel and on the wire a price is an integer number of ticks and a
quantity an integer number of lots. Conversion happens once, at the edges:
a feed turns a file's decimal prices into ticks with :meth:`Instrument.to_ticks`,
reports turn ticks back with :meth:`Instrument.to_price`.

Money for a price move of ``d`` ticks on ``q`` lots is
``d * tick_size * point_value * lot * q``: ``point_value`` is the money one
contract gains when the price moves by one whole point (Si: 1 RUB; RTS: the
exchange's daily rate, about 1.3 RUB).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation


@dataclass(frozen=True, slots=True)
class Instrument:
    symbol: str
    tick_size: Decimal
    lot: int = 1
    point_value: Decimal = Decimal(1)
    currency: str = "RUB"
    tick_value: Decimal = field(init=False)
    tick_value_float: float = field(init=False)
    _tick_int: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.tick_size <= 0:
            raise ValueError(f"{self.symbol}: tick_size must be positive")
        if self.lot <= 0:
            raise ValueError(f"{self.symbol}: lot must be positive")
        tv = self.tick_size * self.point_value * self.lot
        object.__setattr__(self, "tick_value", tv)
        object.__setattr__(self, "tick_value_float", float(tv))
        whole = int(self.tick_size) if self.tick_size == int(self.tick_size) else 0
        object.__setattr__(self, "_tick_int", whole)

    def to_ticks(self, price: str | int | float | Decimal, *, strict: bool = False) -> int:
        """Price in ticks, rounded half-even to the nearest tick.

        With ``strict`` a price off the tick grid raises ``ValueError``.
        Floats are converted through their shortest repr (``0.1`` is 0.1).
        """
        step = self._tick_int
        if step and type(price) is str and price.isdigit():  # the common case, fast
            ticks, rest = divmod(int(price), step)
            if not rest:
                return ticks
        try:
            value = Decimal(repr(price)) if isinstance(price, float) else Decimal(price)
        except (InvalidOperation, ValueError, TypeError):
            raise ValueError(f"{self.symbol}: {price!r} is not a price") from None
        if not value.is_finite():
            raise ValueError(f"{self.symbol}: {price!r} is not a price")
        ticks = value / self.tick_size
        rounded = ticks.to_integral_value(rounding=ROUND_HALF_EVEN)
        if strict and rounded != ticks:
            raise ValueError(
                f"{self.symbol}: price {price} is not a multiple of the tick {self.tick_size}"
            )
        return int(rounded)

    def to_price(self, ticks: int) -> Decimal:
        """The decimal price of a tick count."""
        return ticks * self.tick_size

    def money(self, ticks_times_lots: int | Decimal) -> Decimal:
        """Money value of a move of ``ticks_times_lots`` (ticks x lots)."""
        return Decimal(ticks_times_lots) * self.tick_value


def instruments_from_config(symbols: dict[str, dict]) -> dict[str, Instrument]:
    """Build instruments from the ``symbols`` section of a robot file."""
    out = {}
    for symbol in sorted(symbols):
        spec = symbols[symbol] or {}
        out[symbol] = Instrument(
            symbol=symbol,
            tick_size=Decimal(str(spec.get("tick_size", 1))),
            lot=int(spec.get("lot", 1)),
            point_value=Decimal(str(spec.get("point_value", 1))),
            currency=str(spec.get("currency", "RUB")),
        )
    return out
