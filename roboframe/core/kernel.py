"""The robot kernel: strategy + own orders + positions + pre-trade risk.

Pure: no I/O, no threads, no clock. :meth:`Kernel.handle` takes one event
and returns the actions that passed risk; actions that did not pass become
``OrderUpdate(status="rejected", reason="risk: ...")`` events, which the
strategy sees at once and which are left in :attr:`Kernel.rejected` for the
caller to journal. The live loop, backtests and replays all drive this one
class, so they cannot disagree.

Robot time (``ctx.time``, :attr:`Kernel.now`) is the latest source time
seen; it never goes backwards, whichever stream an event came from.

Client order ids are ``<robot>-<run>-<n>`` with ``n`` counting up from 1 in
the order the strategy builds orders; a replay of the same events rebuilds
the same ids, so a restarted robot can never send a different or a second
order under an id the order store already holds.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from roboframe.config.spec import parse_duration_ms
from roboframe.core.book import Book
from roboframe.core.context import Context
from roboframe.core.events import (
    Action,
    Bar,
    Cancel,
    Control,
    Fill,
    NewOrder,
    OrderUpdate,
    Replace,
    Tick,
    Timer,
)
from roboframe.core.exits import adding_orders, answered, cancels_of, open_by_symbol
from roboframe.core.orders import ACCEPTED, CANCEL_REJECTED, NEW, REPLACE_REJECTED, OrderBook
from roboframe.core.riskcheck import RiskView, make_checks
from roboframe.core.strategy import INTERFACE_VERSION, Strategy, merged_params
from roboframe.core.wellformed import check_client_id, normalized, refusal
from roboframe.errors import StrategyError
from roboframe.risk.limits import ACTIVE, HALTED, PAUSED, REDUCING, STOPPED, RiskEngine

log = logging.getLogger(__name__)

NO_ACTIONS: list[Action] = []
"""What a handler returns when an event asks for nothing: test it with ``is``."""
_MAX_DEPTH = 8  # rejection -> on_order -> new actions -> rejection ...
_DAY_NS = 86_400 * 1_000_000_000
_NEVER = 1 << 63  # later than any event time
_SEEN_TRADES = 100_000  # fills remembered to drop a repeated one
MAX_TIMERS = 1_000_000  # timer events before one market event before it is a bug
MAX_ANSWERS = 100_000  # answers to orders within one market event before it is a bug

STATE_COMMANDS = {"pause": PAUSED, "resume": ACTIVE, "reduce": REDUCING, "halt": HALTED}
REDUCE_ONLY_COMMANDS = ("reduce", "halt")


def order_path(risk: Any) -> str:
    """The order path's state as status shows it: up, down (the gateway said so),
    or stalled (up, but the exchange side acknowledges no order)."""
    if risk.gateway_down:
        return f"down: {risk.gateway_down}"
    if risk.unacknowledged:
        return f"stalled: {risk.unacknowledged}"
    return "up"


class Kernel:
    """One robot's whole business state, driven one event at a time."""

    def __init__(self, spec: Any, run_id: str, strategy: Strategy, registry: Any = None) -> None:
        if strategy.interface_version > INTERFACE_VERSION:
            raise StrategyError(
                f"strategy {type(strategy).__name__} needs strategy interface "
                f"{strategy.interface_version}; this roboframe has {INTERFACE_VERSION}"
            )
        self.robot: str = spec.name
        self.run_id = run_id
        self.spec = spec
        self.instruments = dict(spec.symbols)
        self.symbols = tuple(sorted(self.instruments))
        self.strategy = strategy
        self.book = Book(self.instruments)
        self.orders = OrderBook()
        self.ctx = Context(self)
        self.risk = RiskEngine(
            spec.risk, self.book, self.orders, make_checks(spec, registry), RiskView(self.ctx)
        )
        self.now = 0
        self.rejected: list[OrderUpdate] = []
        self.stop_reason = ""
        self.last_rejection = ""  # the latest risk rejection's reason, for summaries
        self.seen_trades: set[tuple[str, str]] = set()
        self._seen_order: deque[tuple[str, str]] = deque()
        self.counters = dict.fromkeys(
            (
                "orders",
                "cancels",
                "replaces",
                "fills",
                "rejections",
                "ignored",
                "duplicates",
                "stale",
                "stale_ticks",
            ),
            0,
        )
        self._order_seq = 0
        self._said_foreign = False  # market data of an unknown symbol was logged
        self._said: set[str] = set()  # timers warned of (a period in bare milliseconds)
        self.timers: dict[str, tuple[int, int | None]] = {}  # name -> (next time, period)
        self.next_due = _NEVER  # the earliest timer's time
        self._unanchored: dict[str, int] = {}  # every-timers set before any event time
        self._id_prefix = f"{self.robot}-{run_id}-"
        self._positions = self.book.positions
        self._user_on_bar = strategy.on_bar
        self._user_on_tick = strategy.on_tick
        # handlers the strategy leaves to the base class do nothing: not called
        self._handle_fill = strategy.handle_fill if _overrides(strategy, "on_fill") else None
        self._handle_order = strategy.handle_order if _overrides(strategy, "on_order") else None
        self._watch_loss = spec.risk.max_daily_loss is not None
        self._cancel_on_stop = spec.loop.open_orders_on_stop == "cancel"
        self._day_end = 0
        # flatten: symbol -> its orders that were open, whose cancels must be answered
        # before the position is closed (see _flatten)
        self.flattening: dict[str, list[str]] = {}
        # flatten: symbols whose closing orders wait for the order path to come back up
        self.closing_owed: list[str] = []
        # flatten leaves the robot paused (journals from before it replay without)
        self.flatten_pauses = True
        # reduce and halt cancel the orders that would add (journals from before: not)
        self.reduce_cancels = True
        # a timer after the day's end starts the new day (journals from before: not)
        self.timers_turn_day = True
        # after on_stop no market data or timers reach the strategy (before: they did)
        self.quiet_after_stop = True
        # a fill of no lots, or of another side or symbol than its order's, is
        # ignored as an anomaly (before: booked)
        self.fills_checked = True
        # a fill whose fee is no finite number is booked without it (before: it
        # raised, or made the PnL NaN)
        self.fees_checked = True
        # a cancel refused before its order was acknowledged goes again once it is, when
        # a flatten waits for the order, the stop cancelled it, or it adds in a
        # reduce-only state (before: not)
        self.cancels_again = True
        self._refused_unknown: dict[str, None] = {}  # those orders, by client id
        self._cancelled_at_stop: dict[str, None] = {}  # open_orders_on_stop: cancel's
        # flatten: its closing orders not filled yet (a stop right after waits for them)
        self._closing_sent: list[str] = []
        self._on_bar, self._on_tick = self._market_handlers()
        self.handlers = {
            Bar: self._on_bar,
            Tick: self._on_tick,
            Fill: self._on_fill,
            OrderUpdate: self._on_order,
            Control: self._on_control,
            Timer: self._on_timer,
        }

    # -- entry point ----------------------------------------------------------

    def handle(self, event: Any) -> list[Action]:
        """Apply one event; return the actions to send (may be empty).

        ``kernel.handlers[type(event)](event)`` does the same one call cheaper;
        the loop uses it.
        """
        return self.handlers[type(event)](event)

    def _advance(self, ts: int) -> None:
        if ts > self.now:
            if self._unanchored:
                self._anchor(ts)
            self.now = ts

    def market_time(self) -> int:
        """The time of the latest market event handled (any symbol): the robot's
        time as a simulated exchange must keep it, whatever the clock says.
        Reads plain ints: callable from any thread."""
        return max(max(p.bar_ts, p.tick_ts) for p in self._positions.values())

    def received(self, ts: int) -> None:
        """A message reached the robot at ``ts`` (the host's clock, journaled with
        it): with a real-time feed, robot time never lags it. Data a publisher
        replays from a file is stamped days before the clock; robot time stood
        still at the start's clock time, and the order-rate window, counted in
        robot time, took every order of the run for one second."""
        self._advance(ts)

    def next_client_id(self) -> str:
        self._order_seq += 1
        return f"{self._id_prefix}{self._order_seq}"

    # -- market data: the hot path --------------------------------------------

    def _market_handlers(self) -> tuple[Any, Any]:
        """The bar and tick handlers: closures, whose fixed parts (the positions,
        the strategy's handlers, the context) are cell reads rather than
        attribute lookups -- they run once for every market event of every run,
        backtest and replay. Robot time, the kill switch's flag and the timers
        to anchor stay attributes: they change."""
        kernel = self
        positions = self._positions
        user_on_bar, user_on_tick = self._user_on_bar, self._user_on_tick
        ctx = self.ctx
        process = self._process
        fail = self.strategy._fail

        def on_bar(bar: Bar) -> list[Action]:
            ts = bar.ts
            if ts > kernel.now:
                if kernel._unanchored:
                    kernel._anchor(ts)
                kernel.now = ts
            pos = positions.get(bar.symbol)
            if pos is None:
                return kernel._foreign(bar.symbol)
            if ts <= pos.bar_ts:
                return kernel._stale(bar, pos.bar_ts)
            pos.bar_ts = ts
            pos.last = bar.close
            if kernel._watch_loss and kernel._check_loss(ts, pos.qty):
                return kernel._on_halt(bar, user_on_bar, "on_bar")
            try:  # Strategy.handle_bar inlined: one call less on the hottest path
                out = user_on_bar(bar, ctx)
            except Exception as exc:
                raise fail("on_bar", bar, exc) from exc
            return process(out, 0) if out else NO_ACTIONS

        def on_tick(tick: Tick) -> list[Action]:
            ts = tick.ts
            if ts > kernel.now:
                if kernel._unanchored:
                    kernel._anchor(ts)
                kernel.now = ts
            pos = positions.get(tick.symbol)
            if pos is None:
                return kernel._foreign(tick.symbol)
            if ts < pos.tick_ts:
                return kernel._stale(tick, pos.tick_ts)
            pos.tick_ts = ts
            if tick.price:
                pos.last = tick.price
            if kernel._watch_loss and kernel._check_loss(ts, pos.qty):
                return kernel._on_halt(tick, user_on_tick, "on_tick")
            try:  # Strategy.handle_tick inlined, as for bars
                out = user_on_tick(tick, ctx)
            except Exception as exc:
                raise fail("on_tick", tick, exc) from exc
            return process(out, 0) if out else NO_ACTIONS

        return on_bar, on_tick

    def _foreign(self, symbol: str) -> list[Action]:
        """Market data of a symbol the robot does not trade: counted in ``ignored``,
        the first logged. A publisher naming its instruments otherwise (an exchange
        ticker under the robot symbol's topic) would leave the robot idle unheard."""
        self.counters["ignored"] += 1
        if not self._said_foreign:
            self._said_foreign = True
            log.warning(
                "market data for %s ignored: not one of the robot's symbols (%s); "
                "further ones are counted in ignored",
                symbol,
                ", ".join(self.symbols),
            )
        return NO_ACTIONS

    def _stale(self, event: Bar | Tick, last: int) -> list[Action]:
        """A bar no later than its symbol's last bar, or a tick before its last tick
        -- a publisher restarted from the start of its file, a repeat -- is counted,
        logged now and then, and not shown to the strategy: it would take the past
        for the present. Ticks at the time of the last are trades of one instant."""
        key, what = ("stale", "bar") if type(event) is Bar else ("stale_ticks", "tick")
        stale = self.counters[key] = self.counters[key] + 1
        if stale == 1 or stale % 1000 == 0:
            log.warning(
                "stale %s ignored (%d so far): %s at %d, the symbol's last %s was at %d",
                what,
                stale,
                event.symbol,
                event.ts,
                what,
                last,
            )
        return NO_ACTIONS

    def _check_loss(self, ts: int, exposed: int) -> bool:
        """Ask the kill switch (when a day ends, or while in the market); True
        when it fired just now."""
        ts = self.now
        if ts >= self._day_end:
            shift = self.risk.day_shift
            self._day_end = ((ts + shift) // _DAY_NS + 1) * _DAY_NS - shift
            return self.risk.watch_loss(ts)
        return bool(exposed) and self.risk.watch_loss(ts)

    def _on_halt(self, event: Bar | Tick, handler: Any, name: str) -> list[Action]:
        """The kill switch fired on ``event``: the orders that would add to a
        position are cancelled, and the strategy sees the event as usual."""
        cancels = adding_orders(self.orders, self._positions)
        try:
            out = handler(event, self.ctx)
        except Exception as exc:
            raise self.strategy._fail(name, event, exc) from exc
        return self._process([*cancels, *(out or ())], 0)

    # -- order path -----------------------------------------------------------

    def _on_fill(self, fill: Fill) -> list[Action]:
        self._advance(fill.ts)
        key = (fill.client_id, fill.trade_id)
        if key in self.seen_trades:
            self.counters["duplicates"] += 1
            log.warning("duplicate fill ignored: %s trade %s", fill.client_id, fill.trade_id)
            return NO_ACTIONS
        if fill.symbol not in self._positions:
            self.counters["ignored"] += 1
            log.warning("fill for unknown symbol %s ignored", fill.symbol)
            return NO_ACTIONS
        if self.fills_checked and self._garbled(fill):
            return NO_ACTIONS
        booked = self.as_booked(fill)
        if booked is not fill:
            self._fee_dropped(fill)
            fill = booked
        self.seen_trades.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > _SEEN_TRADES:  # duplicates arrive close to the original
            self.seen_trades.discard(self._seen_order.popleft())
        self.orders.on_fill(fill)
        self.book.apply_fill(fill)
        self.counters["fills"] += 1
        # by robot time, as on market data: a fill stamped on another day than the
        # robot's (an exchange's clock) switched the day back and forth
        when = self.now if self.risk.from_day_before else fill.ts
        halted = self._watch_loss and self.risk.watch_loss(when)
        out = None if self._handle_fill is None else self._handle_fill(fill, self.ctx)
        if halted:  # the kill switch fired on this fill's price
            out = [*adding_orders(self.orders, self._positions), *(out or ())]
        actions = self._process(out, 0) if out else NO_ACTIONS
        return self._flatten_answered(actions) if self.flattening else actions

    def _garbled(self, fill: Fill) -> bool:
        """A fill no order of the robot can have: no lots (or fewer), or another
        side or symbol than its order's -- a gateway's bug. Booked, it moved the
        position the wrong way without a word (a strategy then doubled down);
        ignored, it is an order anomaly, logged and counted, and one of some lots
        halts the robot (reduce-only): the exchange may hold another position."""
        own = self.orders.orders.get(fill.client_id)
        why = None
        if fill.qty <= 0:
            why = f"{fill.qty} lots"
        elif own is not None and (fill.side, fill.symbol) != (own.side, own.symbol):
            why = f"a {fill.side} of {fill.symbol} for a {own.side} of {own.symbol}"
        if why is None:
            return False
        said = f"fill {fill.trade_id} of {fill.client_id} ignored: {why}"
        self.orders.anomaly(said)
        if fill.qty > 0 and self.risk.state not in (STOPPED, HALTED):
            # the exchange's position may now be other than the robot's: no new risk
            # until a trader has looked (ctl status, the broker's) and resumes
            self.risk.set_state(HALTED, f"{said}; check the position, then resume")
        return True

    def as_booked(self, fill: Fill) -> Fill:
        """``fill`` as the books take it: without its fee when that is no number
        (``1,5`` from a bridge's locale, ``NaN``). Booked as it was, ``1,5``
        raised with the fill half booked (the cash moved, the position not), and
        every resume raised at it again; ``NaN`` made the PnL NaN, and the kill
        switch, comparing against it, never fired. An analysis of the journal
        takes the fill the same way."""
        if self.fees_checked and fill.fee and fill.fee != "0" and not _finite(fill.fee):
            return msgspec.structs.replace(fill, fee="0")
        return fill

    def _fee_dropped(self, fill: Fill) -> None:
        """Say that ``fill``'s fee was no number: an order anomaly."""
        self.orders.anomaly(
            f"fill {fill.trade_id} of {fill.client_id}: fee {fill.fee!r} is not a number; "
            "booked without it"
        )

    def _on_order(self, update: OrderUpdate) -> list[Action]:
        self._advance(update.ts)
        own = self.orders.on_update(update)
        out = None if self._handle_order is None else self._handle_order(update, self.ctx)
        actions = self._process(out, 0) if out else NO_ACTIONS
        if self.cancels_again and own is not None:
            actions = self._cancel_again(update.status, own, actions)
        return self._flatten_answered(actions) if self.flattening else actions

    def _cancel_again(self, status: str, own: Any, actions: list[Action]) -> list[Action]:
        """``actions``, and a cancel of ``own`` when one was refused before the
        order was acknowledged ("order not found", from a bridge that did not
        know it yet) and the acknowledgement is here, if the order must still go:
        a flatten waits for it, the stop cancelled it, or it adds to a position in
        a reduce-only state. Refused once, such a flatten waited for good, the
        position open; the stop's cancel left the order working after the run; the
        kill switch's or a reduce's left an adding order resting."""
        cid = own.client_id
        if status == CANCEL_REJECTED and own.status == NEW:
            refused = self._refused_unknown
            refused[cid] = None
            if len(refused) > _SEEN_TRADES:  # the oldest: filled or gone without an ack
                del refused[next(iter(refused))]
            return actions
        if status != ACCEPTED or cid not in self._refused_unknown:
            return actions
        del self._refused_unknown[cid]
        if not own.is_open or own.cancel_pending or not self._must_go(cid):
            return actions
        return [*actions, *self._process([Cancel(cid)], 0)]

    def _must_go(self, client_id: str) -> bool:
        """Whether open order ``client_id`` is one a flatten waits for, one the
        stop cancelled (``open_orders_on_stop: cancel``), or one the reduce-only
        state cancels (it would add to a position)."""
        if any(client_id in ids for ids in self.flattening.values()):
            return True
        if client_id in self._cancelled_at_stop:
            return True
        if self.risk.state not in (HALTED, REDUCING):
            return False
        return Cancel(client_id) in adding_orders(self.orders, self._positions)

    # -- timers -----------------------------------------------------------------

    def set_timer(
        self, name: str, *, every: int | str | None = None, at: int | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise StrategyError(f"a timer needs a name, got {name!r}")
        every_ns = None
        if every is not None:
            try:
                every_ns = parse_duration_ms(every) * 1_000_000
            except (TypeError, ValueError):
                every_ns = None
            if not every_ns or every_ns <= 0:
                raise StrategyError(f"timer {name!r}: every={every!r} is not a positive duration")
            if not isinstance(every, str) and every_ns < 1_000_000_000 and name not in self._said:
                self._said.add(name)  # every=5 meant 5 s: a million timer events a day
                log.warning(
                    "timer %r every=%r: a bare number is milliseconds (%s ms); "
                    "write every=\"%ss\" for seconds",
                    name, every, every, every,
                )  # fmt: skip
        if at is None and every_ns is None:
            raise StrategyError(f"timer {name!r} needs at= (a time) or every= (a period)")
        if at is None and self.now == 0:  # before the first event: from its time
            self.timers.pop(name, None)
            self._unanchored[name] = every_ns
        else:
            self._unanchored.pop(name, None)
            self.timers[name] = (int(at) if at is not None else self.now + every_ns, every_ns)
        self._next_due()

    def anchor_timers(self, ts: int) -> None:
        """Before the first market event: the every-timers asked for before any
        event time start at its time -- not at a one-shot timer's older time,
        fired before it (which took them back to it, a period at a time)."""
        if self._unanchored:
            self._anchor(ts)

    def _anchor(self, ts: int) -> None:
        """Timers asked for before any event time start at the first one."""
        for name, every in self._unanchored.items():
            self.timers[name] = (ts + every, every)
        self._unanchored.clear()
        self._next_due()

    def cancel_timer(self, name: str) -> None:
        self._unanchored.pop(name, None)
        if self.timers.pop(name, None) is not None:
            self._next_due()

    def _next_due(self) -> None:
        self.next_due = min((due for due, _ in self.timers.values()), default=_NEVER)

    def due_timers(self, until: int) -> list[Timer]:
        """Timer events due at or before ``until``, in time order (ties by name)."""
        due = sorted((d, name) for name, (d, _) in self.timers.items() if d <= until)
        return [Timer(name, d) for d, name in due]

    def timers_due_by(self, until: int) -> Iterator[Timer]:
        """The timers due by ``until`` (a market event's time), each at its own time,
        one at a time -- the handler of one may cancel, move or set others, so each
        is looked at again when its turn comes -- and every period of a repeating
        one, as a backtest fires them before that event."""
        self.anchor_timers(until)
        fired = 0
        while self.next_due <= until:
            for timer in self.due_timers(until):
                if self.still_due(timer.name, timer.ts, until):
                    yield timer
                    fired += 1
            if fired > MAX_TIMERS:
                raise StrategyError(
                    f"more than {MAX_TIMERS:,} timer events before one market event at "
                    f"{until}; does a timer handler set a timer in the past?"
                )

    def still_due(self, name: str, due: int, until: int) -> bool:
        """Whether timer ``name``, found due at ``due``, is still set for a time up to
        ``until`` and not moved since: a handler of a timer fired before it in the
        same round may have cancelled or moved it (it fired all the same)."""
        entry = self.timers.get(name)
        return entry is not None and entry[0] == due and due <= until

    def _on_timer(self, timer: Timer) -> list[Action]:
        self._advance(timer.ts)
        if self._watch_loss and self.timers_turn_day:
            # past the trading day's end a new one starts, and a halt for the day ends,
            # before the strategy acts (a timer opening the evening session was refused)
            self._check_loss(self.now, 0)
        entry = self.timers.get(timer.name)
        if entry is not None and timer.ts >= entry[0]:
            due, every = entry
            if every:
                missed = (timer.ts - due) // every  # a late loop fires once, not once per period
                self.timers[timer.name] = (due + (missed + 1) * every, every)
            else:
                del self.timers[timer.name]
            self._next_due()
        out = self.strategy.handle_timer(timer, self.ctx)
        return self._process(out, 0) if out else NO_ACTIONS

    # -- control --------------------------------------------------------------

    def _on_control(self, cmd: Control) -> list[Action]:
        self._advance(cmd.ts)
        name = cmd.command
        if name == "start":
            self.risk.set_state(ACTIVE)
            out = self.strategy.handle_start(cmd, self.ctx)
        elif name == "stop":
            if self.risk.state == STOPPED:
                return NO_ACTIONS
            working = list(self.orders.open)  # before on_stop: its exit orders stay
            out = self.strategy.handle_stop(cmd, self.ctx)
            actions = self._process(out, 0) if out else []
            if self._cancel_on_stop:
                actions += self._process(cancels_of(self.orders, working), 0)
                self._cancelled_at_stop = dict.fromkeys(working)
            self.stop_reason = str(cmd.args.get("reason", ""))
            self.risk.set_state(STOPPED, self.stop_reason)
            if self.quiet_after_stop:
                self._quiet()
            return actions
        elif name in STATE_COMMANDS:
            if self.risk.state == STOPPED:  # on_stop ran: a late resume must not trade again
                self.counters["ignored"] += 1
                log.warning("%s ignored: the robot is stopping", name)
                return NO_ACTIONS
            self.risk.set_state(STATE_COMMANDS[name], str(cmd.args.get("reason", name)))
            if self.reduce_cancels and name in REDUCE_ONLY_COMMANDS:
                # reduce-only refuses new risk; the orders resting at the exchange that
                # would add to a position go too, as when the kill switch fires
                return self._process(adding_orders(self.orders, self._positions), 0)
            return NO_ACTIONS
        elif name == "cancel-all":
            out = self.ctx.cancel_all()
        elif name == "flatten":
            return self._flatten()
        elif name == "restarted":  # a resumed run: state was rebuilt from the journal
            log.info("run resumed after seq %s", cmd.args.get("after_seq"))
            return NO_ACTIONS
        elif name == "gateway":  # the trade stream says the order path is down or up
            down = cmd.args.get("status") == "down"
            self.risk.gateway_down = str(cmd.args.get("reason") or "down") if down else ""
            log.warning(
                "order path %s%s",
                "down" if down else "up",
                f": {self.risk.gateway_down}" if down else "",
            )
            return NO_ACTIONS if down or not self.closing_owed else self._close_owed()
        elif name == "acks":  # the robot says its orders wait unacknowledged, or no more
            late = cmd.args.get("status") == "late"
            self.risk.unacknowledged = str(cmd.args.get("reason") or "late") if late else ""
            return NO_ACTIONS
        elif name == "set":
            self.strategy.params = merged_params(self.strategy.params, cmd.args)
            out = self.strategy.handle_params(cmd, self.ctx)
        else:
            self.counters["ignored"] += 1
            log.warning("unknown control command %r ignored", name)
            return NO_ACTIONS
        return self._process(out, 0) if out else NO_ACTIONS

    def _quiet(self) -> None:
        """After ``on_stop`` the strategy sees no more market data and no timers (its
        handlers ran on in the drain, and their orders were refused); fills and
        updates of its orders still reach it."""
        self.timers.clear()
        self._next_due()
        self.handlers[Bar] = self.handlers[Tick] = self._marked_only

    def _marked_only(self, event: Bar | Tick) -> list[Action]:
        """A market event after the stop: its price marks the position (the summary's
        PnL; the robot time a simulated exchange keeps to); no strategy is called."""
        self._advance(event.ts)
        pos = self._positions.get(event.symbol)
        if pos is None:
            return NO_ACTIONS
        ts = event.ts
        if type(event) is Bar:
            if ts <= pos.bar_ts:  # stale, as before the stop
                return NO_ACTIONS
            price, pos.bar_ts = event.close, ts
        else:
            if ts < pos.tick_ts:
                return NO_ACTIONS
            price, pos.tick_ts = event.price, ts
        if price:
            pos.last = price
        return NO_ACTIONS

    def _flatten(self) -> list[Action]:
        """Cancel every open order and close every position at market. A symbol
        with orders open closes once each of them is answered (cancelled, or
        filled first): a closing order sent beside an exit that fills before its
        cancel arrives would overshoot into the opposite position, and in a
        reduce-only state (HALTED, REDUCING) risk refuses it for that reason,
        which left the position open with its exit cancelled."""
        if self.flatten_pauses and self.risk.state == ACTIVE:
            # a panic button: the strategy, trading on, re-entered at its next signal
            self.risk.set_state(PAUSED, "flatten; resume to trade again")
        cancels = self._process(self.ctx.cancel_all(), 0)
        self.flattening = open_by_symbol(self.orders)
        return [*cancels, *self._closing([s for s in self.symbols if s not in self.flattening])]

    def _closing(self, symbols: list[str]) -> list[Action]:
        """A flatten's closing orders for ``symbols``. While the order path is
        down they would only be refused, leaving the position open for good:
        they wait for it to come back up instead (``closing_owed``)."""
        if self.risk.gateway_down:
            owed = [s for s in symbols if self._positions[s].qty and s not in self.closing_owed]
            if owed:
                self.closing_owed += owed
                log.warning(
                    "flatten: the order path is down (%s); %s close when it is back up",
                    self.risk.gateway_down,
                    ", ".join(f"{s} {self._positions[s].qty:+d}" for s in owed),
                )
            return NO_ACTIONS
        closing = [o for s in symbols for o in self._close(s)]
        if not closing:
            return NO_ACTIONS
        sent = self._process(closing, 0, closing=True)
        self._closing_sent += [a.client_id for a in sent if type(a) is NewOrder]
        return sent

    def closing_unfilled(self) -> list[str]:
        """The symbols of a flatten's closing orders still open: a stop right after
        the flatten waits for them to fill, as for its cancels' answers."""
        open_now = self.orders.open
        self._closing_sent = [cid for cid in self._closing_sent if cid in open_now]
        return sorted({open_now[cid].symbol for cid in self._closing_sent})

    def _close_owed(self) -> list[Action]:
        """The order path is back up: close what a flatten could not while it was
        down. A symbol with orders still open waits for their answers, as in
        :meth:`_flatten`."""
        owed, self.closing_owed = self.closing_owed, []
        waiting = open_by_symbol(self.orders)
        for symbol in owed:
            if symbol in waiting:
                self.flattening[symbol] = waiting[symbol]
        log.info("order path up: closing the flattened positions of %s", ", ".join(owed))
        return self._closing([s for s in owed if s not in waiting])

    def _close(self, symbol: str) -> list[NewOrder]:
        """The market orders that close ``symbol``'s position, each at most
        max_order_qty (a position built in small orders closes in as many); the
        caller has risk check them as closing orders (see
        :meth:`RiskEngine.check_new`)."""
        qty = self._positions[symbol].qty
        side = self.ctx.sell if qty > 0 else self.ctx.buy
        left, most = abs(qty), self.risk.max_order_qty or abs(qty)
        orders = []
        while left:
            order = side(symbol, min(left, most))
            orders.append(order)
            left -= order.qty
        return orders

    def _flatten_answered(self, actions: list[Action]) -> list[Action]:
        """``actions``, then the closing orders of the symbols a flatten waited
        for whose open orders are all answered now."""
        closing = self._closing(answered(self.orders, self.flattening))
        return [*actions, *closing] if closing else actions

    # -- actions through risk -------------------------------------------------

    def _process(self, out: list, depth: int, closing: bool = False) -> list[Action]:
        """``out``'s actions that pass risk; the refused ones become rejections
        (``closing``: a flatten's closing orders, see :meth:`RiskEngine.check_new`)."""
        if type(out) is not list:
            out = self._as_list(out)
        actions: list[Action] = []
        now = self.now
        for action in out:
            kind = type(action)
            if kind is NewOrder:
                if type(action.qty) is not int or type(action.price) is not int:
                    action = normalized(action)
                reason = self._refuse_new(action, now, closing)
                if reason is None:
                    self.orders.add(action, now)
                    self.risk.note_sent(now)
                    self.counters["orders"] += 1
                    actions.append(action)
                    continue
                self.orders.add_rejected(action, now, reason)
            elif kind is Cancel:
                check_client_id(action, type(self.strategy).__name__)
                own = self.orders.open.get(action.client_id)
                if own is not None and not own.cancel_pending:
                    own.cancel_pending = True
                    self.counters["cancels"] += 1
                    actions.append(action)
                    continue
                reason = "order is not open" if own is None else "cancel already pending"
                actions.extend(self._reject(action.client_id, reason, depth, CANCEL_REJECTED))
                continue
            elif kind is Replace:
                check_client_id(action, type(self.strategy).__name__)
                if type(action.qty) is not int or type(action.price) is not int:
                    action = normalized(action)
                own, reason = self._refuse_replace(action, now)
                if reason is None:
                    own.replace_pending = (action.qty, action.price)
                    self.risk.note_sent(now)
                    self.counters["replaces"] += 1
                    actions.append(action)
                    continue
                actions.extend(self._reject(action.client_id, reason, depth, REPLACE_REJECTED))
                continue
            else:
                nested = (
                    "; a list inside the list: ctx.order_target already returns a list, "
                    "return it as it is (or add lists with +)"
                    if isinstance(action, list | tuple)
                    else ""
                )
                raise StrategyError(
                    f"strategy {type(self.strategy).__name__} returned {action!r}; "
                    "expected NewOrder, Cancel or Replace (build them with "
                    f"ctx.buy/sell/cancel/replace){nested}"
                )
            actions.extend(self._reject(action.client_id, reason, depth))
        return actions

    def _refuse_new(self, order: NewOrder, now: int, closing: bool = False) -> str | None:
        check_client_id(order, type(self.strategy).__name__)
        if order.client_id in self.orders.orders:
            return f"duplicate client id {order.client_id}"
        return refusal(order) or self.risk.check_new(order, now, closing)

    def _refuse_replace(self, action: Replace, now: int) -> tuple[Any, str | None]:
        """The open order ``action`` would change, and why it may not (or None)."""
        own = self.orders.open.get(action.client_id)
        if own is None:
            return None, "replace: order is not open"
        if own.type != "limit":
            return own, "replace: only a limit order can be replaced"
        if own.cancel_pending or own.replace_pending is not None:
            what = "cancel" if own.cancel_pending else "replace"
            return own, f"replace: a {what} is already pending"
        order = NewOrder(own.client_id, own.symbol, own.side, action.qty, "limit", action.price)
        reason = refusal(order)
        if reason is None and action.qty <= own.filled:
            reason = f"quantity {action.qty} is not above the {own.filled} lots already filled"
        if reason is None and (action.qty, action.price) == (own.qty, own.price):
            reason = "nothing to change"
        if reason is None:
            reason = self.risk.check_replace(order, own, now)
        return own, None if reason is None else f"replace: {reason}"

    def _reject(
        self, client_id: str, reason: str, depth: int, status: str = "rejected"
    ) -> list[Action]:
        update = OrderUpdate(client_id, self.now, status, f"risk: {reason}")
        self.rejected.append(update)
        self.last_rejection = update.reason
        self.counters["rejections"] += 1
        self.risk.rejections += 1
        log.info("rejected %s: %s", client_id, reason)
        out = self.strategy.handle_order(update, self.ctx)
        if not out:
            return NO_ACTIONS
        if depth >= _MAX_DEPTH:
            raise StrategyError(
                f"strategy {type(self.strategy).__name__} keeps answering risk rejections "
                f"with new orders ({_MAX_DEPTH} levels deep); last: {reason}"
            )
        return self._process(out, depth + 1)

    def _as_list(self, out: Any) -> list:
        if isinstance(out, (NewOrder, Cancel, Replace)):
            return [out]
        if isinstance(out, str | bytes | dict):  # a str iterated: "returned 'b'"
            raise StrategyError(
                f"strategy {type(self.strategy).__name__} returned {out!r}; "
                "expected a list of actions (ctx.buy/sell/cancel/replace) or None"
            )
        try:
            return list(out)
        except TypeError:
            raise StrategyError(
                f"strategy {type(self.strategy).__name__} returned {out!r}; "
                "expected a list of actions or None"
            ) from None

    # -- inspection -----------------------------------------------------------

    def take_rejected(self) -> list[OrderUpdate]:
        rejected, self.rejected = self.rejected, []
        return rejected

    def _order_state(self, own: Any) -> dict:
        """An open order as plain data: ``price`` in ticks, as the order has it, and
        ``limit_price`` in price units, as positions show their prices."""
        state = own.snapshot()
        inst = self.instruments.get(own.symbol)
        state["limit_price"] = str(inst.to_price(own.price)) if own.price and inst else None
        return state

    def snapshot(self) -> dict:
        """The robot's whole state as plain data (status, replay --until, analysis)."""
        return {
            "robot": self.robot,
            "run_id": self.run_id,
            "time": self.now,
            "state": self.risk.state,
            "halt_reason": self.risk.halt_reason,
            "order_path": order_path(self.risk),
            "counters": dict(self.counters),
            "positions": {s: p.snapshot() for s, p in self._positions.items()},
            "net_pnl": str(self.book.net_money()),
            "open_orders": [self._order_state(o) for o in self.orders.open.values()],
            "orders_total": self.orders.total,
            "anomalies": self.orders.anomalies,
            "timers": {name: due for name, (due, _) in sorted(self.timers.items())},
            "flattening": sorted(self.flattening),
            "closing_when_up": list(self.closing_owed),
            "strategy": strategy_state(self.strategy),
        }


def too_many_answers() -> StrategyError:
    """Answers to orders that bring orders that bring answers, without end."""
    return StrategyError(
        f"more than {MAX_ANSWERS:,} answers to orders within one market event; "
        "does the strategy send an order for every answer (on_order, on_fill)?"
    )


def _finite(text: str) -> bool:
    """Whether ``text`` is a finite decimal number (a fee as a fill gives it)."""
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _overrides(strategy: Strategy, handler: str) -> bool:
    """Whether ``strategy`` has its own ``on_<x>`` handler, or wraps its
    ``handle_<x>`` system method (the base class's do nothing)."""
    system = "handle_" + handler.removeprefix("on_")
    return any(
        name in vars(strategy) or getattr(type(strategy), name) is not getattr(Strategy, name)
        for name in (handler, system)
    )


def strategy_state(strategy: Strategy) -> dict:
    """A strategy's public attributes that are plain values."""
    names = getattr(strategy, "state_attributes", None)
    if names is None:
        names = [n for n in vars(strategy) if not n.startswith("_") and n != "params"]
    out = {}
    for name in names:
        value = getattr(strategy, name, None)
        if isinstance(value, (bool, int, float, str)) or value is None:
            out[name] = value
        elif isinstance(value, dict) and all(
            isinstance(v, (bool, int, float, str)) or v is None for v in value.values()
        ):
            out[name] = {str(k): v for k, v in value.items()}
    return out
