"""What makes an action well formed, checked before risk sees it.

A strategy builds its orders with ``ctx.buy``/``ctx.sell``, but the numbers it
passes are its own: a NumPy integer from a sizing formula, a float from a
division, a quantity far past anything a store or the journal can hold. Such
an order must not reach the journal (which cannot encode it and would stop
the robot mid-event), the gateway (which decodes it as whole numbers and
would refuse it) or an order store (64-bit columns). So the kernel:

- turns any integer-like number (one with ``__index__``: NumPy and other
  integer types) into a plain ``int`` -- deterministic, nothing rounded;
- refuses, as a risk rejection the strategy sees, a quantity or price that is
  not a whole number, is out of range, or a side, type or symbol of the wrong
  kind;
- raises :class:`~roboframe.errors.StrategyError` for an action without a
  string client id: there is no order to reject under it.
"""

from __future__ import annotations

import operator
from typing import Any

import msgspec

from roboframe.core.events import Cancel, NewOrder, Replace
from roboframe.errors import StrategyError

MAX_NUMBER = 2**63 - 1
"""The largest quantity (lots) or price (ticks): a signed 64-bit integer, what
the journal and every order store hold."""

SIDES = ("buy", "sell")
TYPES = ("market", "limit")


def _whole(value: Any) -> Any:
    """``value`` as a plain int when it is integer-like, else unchanged."""
    if type(value) is int or isinstance(value, (bool, float)):
        return value
    try:
        return operator.index(value)
    except TypeError:
        return value


def normalized(order: NewOrder | Replace) -> NewOrder | Replace:
    """``order`` (or a replace) with integer-like quantity and price as plain ints."""
    qty, price = _whole(order.qty), _whole(order.price)
    if qty is order.qty and price is order.price:
        return order
    return msgspec.structs.replace(order, qty=qty, price=price)


def _number(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def refusal(order: NewOrder) -> str | None:
    """Why ``order`` (already :func:`normalized`) is not well formed, or None."""
    symbol, qty, price = order.symbol, order.qty, order.price
    if type(symbol) is not str:
        return f"symbol must be a string, got {_number(symbol)}"
    if order.side not in SIDES:
        return f"side must be buy or sell, got {order.side!r}"
    if order.type not in TYPES:
        return f"order type must be market or limit, got {order.type!r}"
    if type(qty) is not int:
        return f"quantity must be a whole number of lots, got {_number(qty)}"
    if qty <= 0:
        return f"quantity must be positive, got {qty}"
    if qty > MAX_NUMBER:
        return f"quantity {qty} is out of range (at most {MAX_NUMBER} lots)"
    if type(price) is not int:
        return f"price must be a whole number of ticks, got {_number(price)}"
    if order.type == "market":
        if price != 0:
            return f"a market order takes no price, got {price}"
    elif price <= 0:
        return f"limit price must be positive, got {price}"
    elif price > MAX_NUMBER:
        return f"limit price {price} is out of range (at most {MAX_NUMBER} ticks)"
    return None


def check_client_id(action: NewOrder | Cancel | Replace, strategy: str) -> None:
    """A client id the kernel can reject under, or StrategyError."""
    cid = action.client_id
    if type(cid) is not str or not cid:
        raise StrategyError(
            f"strategy {strategy} returned {action!r}: the client id must be a non-empty "
            "string (build orders with ctx.buy/ctx.sell and cancels with ctx.cancel)"
        )
