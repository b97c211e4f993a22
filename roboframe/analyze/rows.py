"""Turning kernel objects into analysis rows, cheaply: they run once per event."""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import msgspec

from roboframe.core.events import Bar, Fill, Tick

_to_builtins = msgspec.to_builtins
_dumps = msgspec.json.encode


def event_data(event: Any, tick_size: dict[str, float]) -> str:
    """The event's fields as a JSON object, prices in price units."""
    kind = type(event)
    if kind is Bar:
        t = tick_size.get(event.symbol, 1.0)
        data = {
            "open": event.open * t,
            "high": event.high * t,
            "low": event.low * t,
            "close": event.close * t,
            "volume": event.volume,
        }
    elif kind is Tick:
        t = tick_size.get(event.symbol, 1.0)
        data = {"price": event.price * t, "qty": event.qty, "bid": event.bid * t,
                "ask": event.ask * t}  # fmt: skip
    elif kind is Fill:
        t = tick_size.get(event.symbol, 1.0)
        data = _fields(event)
        data["price"] = event.price * t
    else:
        data = _fields(event)
    return _dumps(data).decode()


def _fields(event: Any) -> dict:
    return {f: _to_builtins(getattr(event, f)) for f in event.__struct_fields__}


def position_row(run, seq, pos, tick_size, tick_value) -> tuple:
    """``positions`` row of one symbol; realized PnL is before fees."""
    symbol = pos.symbol
    t, tv = tick_size[symbol], tick_value[symbol]
    qty = pos.qty
    if qty:
        cost = pos.open_cost
        unrealized = float((qty * pos.last - cost) * tv)
        avg = float(cost) / qty * t
    else:
        unrealized, avg = 0.0, None
    return (
        run,
        seq,
        symbol,
        qty,
        avg,
        pos.last * t if pos.last else None,
        (pos.cash + qty * pos.last) * tv - unrealized,
        unrealized,
    )


_PLAIN = frozenset({bool, int, float, str, type(None)})


def state_reader(strategy: Any) -> Callable[[], dict | None]:
    """Reads the strategy's analysable state (as
    :func:`roboframe.core.kernel.strategy_state`, for exactly the plain types)
    and returns it only when it differs from the last one read, else None.

    The hot path is one C-level ``attrgetter`` call and a tuple comparison;
    mapping values are kept as copies, so a mutated mapping counts as a change.
    """
    declared = getattr(strategy, "state_attributes", None)
    attrs = vars(strategy)
    seen = {"size": -1, "names": (), "getter": None, "values": None, "state": None}

    def refresh() -> None:
        if declared is not None:
            names = tuple(declared)
        else:
            names = tuple(n for n in attrs if not n.startswith("_") and n != "params")
        seen["size"], seen["names"] = len(attrs), names
        seen["getter"] = operator.attrgetter(*names) if len(names) > 1 else None
        seen["values"] = None

    def current() -> tuple:
        getter = seen["getter"]
        if getter is not None:
            try:
                return getter(strategy)
            except AttributeError:  # a declared attribute not (yet) set
                pass
        return tuple(getattr(strategy, n, None) for n in seen["names"])

    def read() -> dict | None:
        if seen["size"] == -1 or (declared is None and len(attrs) != seen["size"]):
            refresh()
        values = current()
        if values == seen["values"]:
            return None
        seen["values"] = tuple(dict(v) if type(v) is dict else v for v in values)
        state = {}
        for name, value in zip(seen["names"], values, strict=True):
            kind = type(value)
            if kind in _PLAIN:
                state[name] = value
            elif kind is dict and all(type(v) in _PLAIN for v in value.values()):
                state[name] = {str(k): v for k, v in value.items()}
        if state == seen["state"]:
            return None
        seen["state"] = state
        return state

    return read
