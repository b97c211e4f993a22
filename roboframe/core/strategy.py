"""The strategy interface, version 1: what a user subclasses.

A strategy is deterministic: it sees one event at a time and answers with a
list of actions (or ``None``). Everything it may know comes from the event
and the :class:`~roboframe.core.context.Context`: positions, open orders,
params, the event time, helpers that build orders. It must not read the wall
clock, use unseeded randomness, depend on set order or ``hash()``, or do I/O;
then the same events always give the same actions, which is what lets a
journal replay a run exactly.

User handlers are ``on_*``; the kernel calls the system methods ``handle_*``,
which wrap any exception from a handler in a
:class:`~roboframe.errors.StrategyError` naming the event that caused it.

Example::

    from roboframe import Strategy

    class Momentum(Strategy):
        version = "1.0"
        params_schema = {
            "type": "object",
            "properties": {"qty": {"type": "integer", "minimum": 1, "default": 1}},
            "additionalProperties": False,
        }

        def on_bar(self, bar, ctx):
            if bar.close > bar.open and ctx.position(bar.symbol) == 0:
                return [ctx.buy(bar.symbol, self.params["qty"])]

Prices in events and orders are integer ticks; ``ctx.instrument(symbol)``
converts to and from decimal prices.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from roboframe.errors import StrategyError, raised_at

if TYPE_CHECKING:
    from roboframe.core.context import Context
    from roboframe.core.events import Action, Bar, Control, Fill, OrderUpdate, Tick, Timer

INTERFACE_VERSION = 1
"""The strategy interface this roboframe implements (handlers and Context)."""


def merged_params(params: Mapping[str, Any], args: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with a ``set`` command's ``args`` applied: a mapping merges into
    the mapping it replaces, key by key (``set levels.stop=25`` keeps
    ``levels.take``); any other value replaces. Neither argument is changed."""
    out = dict(params)
    for key, value in args.items():
        old = out.get(key)
        if isinstance(value, Mapping) and isinstance(old, Mapping):
            out[key] = merged_params(old, value)
        else:
            out[key] = value
    return out


class Strategy:
    """Base class of every strategy. Override the ``on_*`` handlers you need."""

    interface_version: ClassVar[int] = INTERFACE_VERSION
    """The interface version the strategy was written for; a newer one is refused."""

    version: ClassVar[str] = "0"
    """The strategy's own version; recorded in every journal header. Bump it
    when a change to the code changes what the strategy does."""

    params_schema: ClassVar[dict] = {"type": "object"}
    """JSON Schema of ``params`` in the robot file; ``default`` values are filled in."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self.params = params

    @classmethod
    def validate_params(cls, params: Mapping[str, Any]) -> list[tuple[str, str]]:
        """Cross-field checks the schema cannot express: ``[(field, message)]``."""
        return []

    # -- user handlers: return a list of actions or None ----------------------

    def on_start(self, event: Control, ctx: Context) -> list[Action] | None:
        """The run starts (a ``start`` control event). Return actions or None."""
        return None

    def on_bar(self, bar: Bar, ctx: Context) -> list[Action] | None:
        """A bar closed."""
        return None

    def on_tick(self, tick: Tick, ctx: Context) -> list[Action] | None:
        """A trade or quote update."""
        return None

    def on_fill(self, fill: Fill, ctx: Context) -> list[Action] | None:
        """One of this robot's orders was (partly) filled; positions already include it."""
        return None

    def on_order(self, update: OrderUpdate, ctx: Context) -> list[Action] | None:
        """An order was accepted, rejected (by the gateway or by risk) or cancelled."""
        return None

    def on_timer(self, timer: Timer, ctx: Context) -> list[Action] | None:
        """A timer fired."""
        return None

    def on_stop(self, event: Control, ctx: Context) -> list[Action] | None:
        """The run stops. Actions returned here still go through risk."""
        return None

    def on_params(self, event: Control, ctx: Context) -> list[Action] | None:
        """``self.params`` changed: a ``set`` command (``event.args`` holds the
        new values) was checked and applied. A strategy that copies params into
        attributes at start copies them again here; without this handler a
        ``set`` changes ``self.params`` and nothing else."""
        return None

    # -- system methods: called by the kernel ---------------------------------

    def _fail(self, handler: str, event: object, exc: Exception) -> StrategyError:
        err = StrategyError(
            f"strategy {type(self).__name__}.{handler} raised "
            f"{type(exc).__name__}: {exc}{raised_at(exc)} while handling {event!r}"
        )
        err.event = event
        return err

    def handle_start(self, event: Control, ctx: Context) -> list[Action] | None:
        try:
            return self.on_start(event, ctx)
        except Exception as exc:
            raise self._fail("on_start", event, exc) from exc

    def handle_bar(self, bar: Bar, ctx: Context) -> list[Action] | None:
        try:
            return self.on_bar(bar, ctx)
        except Exception as exc:
            raise self._fail("on_bar", bar, exc) from exc

    def handle_tick(self, tick: Tick, ctx: Context) -> list[Action] | None:
        try:
            return self.on_tick(tick, ctx)
        except Exception as exc:
            raise self._fail("on_tick", tick, exc) from exc

    def handle_fill(self, fill: Fill, ctx: Context) -> list[Action] | None:
        try:
            return self.on_fill(fill, ctx)
        except Exception as exc:
            raise self._fail("on_fill", fill, exc) from exc

    def handle_order(self, update: OrderUpdate, ctx: Context) -> list[Action] | None:
        try:
            return self.on_order(update, ctx)
        except Exception as exc:
            raise self._fail("on_order", update, exc) from exc

    def handle_timer(self, timer: Timer, ctx: Context) -> list[Action] | None:
        try:
            return self.on_timer(timer, ctx)
        except Exception as exc:
            raise self._fail("on_timer", timer, exc) from exc

    def handle_stop(self, event: Control, ctx: Context) -> list[Action] | None:
        try:
            return self.on_stop(event, ctx)
        except Exception as exc:
            raise self._fail("on_stop", event, exc) from exc

    def handle_params(self, event: Control, ctx: Context) -> list[Action] | None:
        try:
            return self.on_params(event, ctx)
        except Exception as exc:
            raise self._fail("on_params", event, exc) from exc


HANDLERS = frozenset(name for name in vars(Strategy) if name.startswith("on_"))


def uncalled_handlers(cls: type) -> list[str]:
    """Methods of ``cls`` named like handlers that roboframe never calls (``on_bars``,
    ``onFill``): a misspelt handler, whose strategy never trades, said nowhere."""
    names = []
    for name in sorted(dir(cls)):
        looks = name.startswith("on_") or (name.startswith("on") and name[2:3].isupper())
        if looks and name not in HANDLERS and callable(getattr(cls, name, None)):
            names.append(name)
    return names
