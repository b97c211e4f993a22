"""Event and action types: the only things that cross a socket or the journal.

Every type is an immutable ``msgspec.Struct`` encoded as a compact msgpack
array whose first element is an integer *kind code*. Codes 100-199 belong to
codec version 1 (see :mod:`roboframe.core.codec`); a future incompatible
codec takes the next hundred, so an old reader sees an unknown kind instead of
misreading a field.

Numbers are exact: prices are integers counted in the instrument's ticks and
quantities integers counted in lots (see :mod:`roboframe.core.instruments`).
Times are integer nanoseconds since the Unix epoch, UTC, taken from the
source of the event (exchange, file, publisher), never from the robot's clock.

Inbound events (to the robot): :class:`Tick`, :class:`Bar`,
:class:`OrderUpdate`, :class:`Fill`, :class:`Control`, :class:`Timer`.
Actions (from the robot): :class:`NewOrder`, :class:`Cancel`, :class:`Replace`.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""An integer a journal, an order store and an analysis database all hold: a
message carrying a larger one (a publisher's time in the wrong unit) is
malformed, refused where it is decoded, instead of breaking them later."""

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
OrderStatus = Literal[
    "accepted", "rejected", "cancelled", "replaced", "replace_rejected", "cancel_rejected"
]


class Message(msgspec.Struct, frozen=True, array_like=True, tag_field="kind"):
    """Base of every event and action."""


# --- market data -------------------------------------------------------------


class Tick(Message, tag=101):
    """A trade print or a quote update for one symbol.

    ``price``/``qty`` describe the last trade (``qty`` 0 when unknown);
    ``bid``/``ask`` the best quotes (0 when not given).
    """

    symbol: str
    ts: Int64
    price: Int64
    qty: Int64 = 0
    bid: Int64 = 0
    ask: Int64 = 0


class Bar(Message, tag=102):
    """An OHLCV bar; ``ts`` is the bar's close time (when it became known)."""

    symbol: str
    ts: Int64
    open: Int64
    high: Int64
    low: Int64
    close: Int64
    volume: Int64 = 0


# --- order path --------------------------------------------------------------


class OrderUpdate(Message, tag=103):
    """The gateway's or the risk engine's word on one order.

    ``replaced``: a :class:`Replace` took effect (the order now has the
    quantity and price it asked for); ``replace_rejected``: it did not, and
    the order goes on as it was (``reason`` says why). ``cancel_rejected``:
    a :class:`Cancel` was refused (too late, order unknown, ...); the order
    keeps its state. ``rejected`` is the order's own refusal.

    ``ref`` is the gateway's own reference for the update (an order store's
    row id), which lets a trade stream resume after it without repeats.
    """

    client_id: str
    ts: Int64
    status: OrderStatus
    reason: str = ""
    ref: str = ""


class Fill(Message, tag=104):
    """One execution of an order. ``fee`` is an exact decimal string."""

    client_id: str
    ts: Int64
    symbol: str
    side: Side
    qty: Int64
    price: Int64
    trade_id: str
    fee: str = "0"


# --- control and time --------------------------------------------------------


class Control(Message, tag=105):
    """A command into the robot: ``start``, ``stop``, ``pause``, ``resume``...

    ``args`` is a mapping of plain JSON-able values.
    """

    command: str
    ts: Int64
    args: dict = {}


class Timer(Message, tag=106):
    """A timer firing; ``ts`` is the time the timer was due."""

    name: str
    ts: Int64


# --- actions -----------------------------------------------------------------


class NewOrder(Message, tag=151):
    """Place an order. ``price`` is in ticks, 0 for a market order."""

    client_id: str
    symbol: str
    side: Side
    qty: Int64
    type: OrderType = "market"
    price: Int64 = 0


class Cancel(Message, tag=152):
    """Cancel an open order."""

    client_id: str


class Replace(Message, tag=153):
    """Change an open limit order's price (ticks) and total quantity (lots,
    more than is already filled), keeping its client id. The order loses its
    place in the queue, as on an exchange."""

    client_id: str
    qty: Int64
    price: Int64


class Batch(Message, tag=100):
    """Several inbound events sent as one wire message (see the codec)."""

    events: list[Tick | Bar | OrderUpdate | Fill | Control | Timer]


MarketEvent = Tick | Bar
Event = Tick | Bar | OrderUpdate | Fill | Control | Timer
Action = NewOrder | Cancel | Replace

EVENT_TYPES: tuple[type, ...] = (Tick, Bar, OrderUpdate, Fill, Control, Timer)
ACTION_TYPES: tuple[type, ...] = (NewOrder, Cancel, Replace)


def event_time(event: Event) -> int:
    """The source time of any event, in nanoseconds."""
    return event.ts
