"""The risk-check contract: pre-trade checks from plugins, after the built-in limits.

A robot file lists them under ``risk.checks``, each ``{plugin: NAME, params:
{...}}``; a plugin registers the class with the
``roboframe_register_risk_checks`` hook (the built-in ``trading-hours`` check
is registered the same way). Every new order that passed the built-in limits
goes through each check, in the file's order; the first reason refuses it,
as ``risk: NAME: reason``, an ``OrderUpdate(status="rejected")`` the strategy
sees and the journal keeps. Cancels are never checked: taking risk off must
always be possible.

Write one by subclassing :class:`RiskCheck`::

    class MaxNotional(RiskCheck):
        params_schema = {
            "type": "object",
            "properties": {"money": {"type": "number", "exclusiveMinimum": 0}},
            "required": ["money"],
        }

        def check(self, order, view):
            price = order.price or view.last_price(order.symbol) or 0
            inst = view.instrument(order.symbol)
            value = inst.to_price(price) * inst.point_value * order.qty  # hypothetical
            if value > self.params["money"]:
                return f"order worth {value} is over {self.params['money']}"
            return None

A check is part of the robot's deterministic core: it decides from the order
and the :class:`RiskView` only (event time, positions, open orders, last
prices), never from the clock, files or the network, so a replay of the
journal gets the same answers. A check that raises refuses the order (the
exception is logged): a broken check fails closed, never open.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any, ClassVar

from roboframe.core.events import NewOrder
from roboframe.core.instruments import Instrument

if TYPE_CHECKING:
    from roboframe.core.context import Context
    from roboframe.core.orders import OwnOrder


class RiskCheck:
    """Base class of every pre-trade risk check from a plugin."""

    params_schema: ClassVar[dict] = {"type": "object"}
    """JSON Schema of the check's ``params``; ``default`` values are filled in."""

    def __init__(self, params: Mapping[str, Any], instruments: Mapping[str, Instrument]) -> None:
        self.params = params
        self.instruments = instruments

    def check(self, order: NewOrder, view: RiskView) -> str | None:
        """``None`` when ``order`` may go, else the reason it may not."""
        raise NotImplementedError


class RiskView:
    """What a risk check may read of its robot; nothing here changes anything."""

    __slots__ = ("_ctx",)

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    @property
    def time(self) -> int:
        """The current event's source time, ns since the epoch (UTC)."""
        return self._ctx.time

    @property
    def state(self) -> str:
        """Trading state: ACTIVE, PAUSED, REDUCING, HALTED or STOPPED."""
        return self._ctx.state

    @property
    def robot(self) -> str:
        return self._ctx.robot

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._ctx.symbols

    def instrument(self, symbol: str) -> Instrument:
        return self._ctx.instrument(symbol)

    def position(self, symbol: str) -> int:
        """Signed position in lots (positive long)."""
        return self._ctx.position(symbol)

    def avg_price(self, symbol: str) -> Fraction | None:
        return self._ctx.avg_price(symbol)

    def last_price(self, symbol: str) -> int | None:
        """Last price seen, in ticks (None before the first)."""
        return self._ctx.last_price(symbol)

    def pnl(self, symbol: str | None = None) -> Decimal:
        """Net PnL in money (realized + unrealized - fees)."""
        return self._ctx.pnl(symbol)

    def open_orders(self, symbol: str | None = None) -> list[OwnOrder]:
        """Open orders, oldest first (read them; do not change them)."""
        return self._ctx.open_orders(symbol)


def make_checks(spec: Any, registry: Any = None) -> list[tuple[str, RiskCheck]]:
    """The robot's checks, in its file's order: ``[(name, check)]``."""
    if not spec.risk.checks:
        return []
    from roboframe.plugins import get_registry

    registry = registry or get_registry()
    instruments = dict(spec.symbols)
    out = []
    for ref in spec.risk.checks:
        cls = registry.lookup("risk_checks", ref.plugin).obj
        out.append((ref.plugin, cls(dict(ref.params), instruments)))
    return out
