"""Taking risk off: which open orders a stop, a flatten and the kill switch
cancel, and when a flatten may close a symbol. Pure functions of the robot's
orders and positions; the kernel sends what they return through risk."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from roboframe.core.events import Cancel

if TYPE_CHECKING:
    from roboframe.core.book import Position
    from roboframe.core.orders import OrderBook


def cancels_of(orders: OrderBook, client_ids: Iterable[str]) -> list[Cancel]:
    """Cancels of those of ``client_ids`` still open and not being cancelled: a
    stop cancels what was working, never the exit orders ``on_stop`` just sent."""
    cancels = []
    for client_id in client_ids:
        own = orders.open.get(client_id)
        if own is not None and not own.cancel_pending:
            cancels.append(Cancel(client_id))
    return cancels


def adding_orders(orders: OrderBook, positions: Mapping[str, Position]) -> list[Cancel]:
    """Cancels of the open orders that would add to a position or open one: what
    the kill switch cancels. Per symbol, orders on the side that reduces are
    kept, oldest first, while together they do not pass flat (one with a
    replace pending counts at its larger size); every other one is cancelled."""
    room = {symbol: pos.qty for symbol, pos in positions.items()}
    cancels = []
    for own in orders.open.values():
        if own.cancel_pending:
            continue
        left = own.remaining
        if own.replace_pending is not None:
            left = max(left, own.replace_pending[0] - own.filled)
        signed = left if own.side == "buy" else -left
        pos = room.get(own.symbol, 0)
        if pos and (signed > 0) != (pos > 0) and abs(signed) <= abs(pos):
            room[own.symbol] = pos + signed
        else:
            cancels.append(Cancel(own.client_id))
    return cancels


def open_by_symbol(orders: OrderBook) -> dict[str, list[str]]:
    """The open orders' client ids by symbol: what a flatten waits for."""
    waiting: dict[str, list[str]] = {}
    for own in orders.open.values():
        waiting.setdefault(own.symbol, []).append(own.client_id)
    return waiting


def answered(orders: OrderBook, waiting: dict[str, list[str]]) -> list[str]:
    """The symbols of ``waiting`` none of whose orders is open any more (each
    cancelled, or filled first), taken out of ``waiting``: a flatten closes
    them now."""
    done = [s for s, ids in waiting.items() if not any(c in orders.open for c in ids)]
    for symbol in done:
        del waiting[symbol]
    return done
