"""Replaying one journal into the rows of the analysis database.

:class:`RunAnalysis` feeds a journal's inbound events through a fresh kernel
of the robot that wrote it (as ``replay`` does) and, after each event, turns
what changed into rows: the event, the actions it caused, fills, finished
orders, the robot's state, the positions it touched, and the strategy's
state when it changed. Rows go to a sink in batches, so memory stays flat
however long the journal.

The statistics follow the backtest's own arithmetic step by step (equity
marked after every market event, trades matched first in, first out), so a
backtest's journal analysed here gives exactly the table ``backtest``
printed.

A run the strategy stopped by raising is analysed up to the event it raised
on (:attr:`RunAnalysis.failure`); the same error where the journal goes on
is a divergence, and the analysis stops there too.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from roboframe.analyze.model import TRADE_MARKS, Curve, RunReport
from roboframe.analyze.rows import event_data, position_row, state_reader
from roboframe.analyze.tables import run_number
from roboframe.backtest.stats import (
    EquityTracker,
    Ledger,
    last_prices,
    order_counts,
    revalued,
    summarize,
    time_taken,
)
from roboframe.core.events import (
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
from roboframe.core.orders import OPEN_STATES
from roboframe.errors import StrategyError, described
from roboframe.journal import JournalReader
from roboframe.journal.format import ACTIONS, MESSAGE, NOTE, receipt_clock
from roboframe.replay import (
    Divergence,
    OutputCheck,
    closed_note,
    failed_on,
    kernel_from_header,
    message_events,
    quietly,
    robot_header,
    stopped_note,
    stopped_there,
    unraised,
)
from roboframe.risk.limits import STOPPED

log = logging.getLogger(__name__)

DEFAULT_CASH = Decimal(1_000_000)
BATCH_ROWS = 20_000
"""Rows a table collects before they go to the sink."""

_KIND = {
    Bar: "bar",
    Tick: "tick",
    Fill: "fill",
    OrderUpdate: "order",
    Control: "control",
    Timer: "timer",
}
_dumps = msgspec.json.encode

Sink = Callable[[str, list[tuple]], None]
"""``sink(table, rows)``: receives each batch of rows of one table; it must be done with
``rows`` when it returns (the list is cleared and refilled)."""


def journal_key(header: dict) -> str:
    """A journal's identity: SHA-256 of its header (robot, run id, config, strategy...).

    A journal keeps its key as it grows, so analysing a running robot again
    replaces that run's rows instead of adding a second run.
    """
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def fills_at_close(header: dict) -> bool:
    """Whether the journal's run had a paper exchange fill market orders at once, at
    the close: a backtest's ``fill_at``, or a live run's paper gateway's."""
    if header.get("mode") == "backtest":
        return (header.get("backtest") or {}).get("fill_at") == "close"
    gateway = (header.get("config") or {}).get("gateway") or {}
    return (
        gateway.get("plugin") == "paper" and (gateway.get("params") or {}).get("fill_at") == "close"
    )


def _market_orders(actions: Iterable) -> set[str]:
    return {a.client_id for a in actions if type(a) is NewOrder and a.type == "market"}


def initial_cash(header: dict) -> Decimal:
    """The backtest's cash for a backtest journal; the robot's ``backtest.cash`` otherwise."""
    cash = (header.get("backtest") or {}).get("cash")
    if cash is None:
        cash = (header.get("config", {}).get("backtest") or {}).get("cash", DEFAULT_CASH)
    return Decimal(str(cash))


class _Rows:
    """Per-table row buffers, flushed to the sink when full."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.tables: dict[str, list[tuple]] = {}

    def table(self, name: str) -> list[tuple]:
        rows = self.tables.get(name)
        if rows is None:
            rows = self.tables[name] = []
        return rows

    def flush(self, name: str | None = None) -> None:
        for table in [name] if name else list(self.tables):
            rows = self.tables.get(table)
            if rows:
                self.sink(table, rows)
                rows.clear()  # in place: the replay loop holds references to these lists


class RunAnalysis:
    """One journal, replayed into rows; :meth:`replay` returns its :class:`RunReport`."""

    def __init__(
        self,
        path: str | Path,
        *,
        registry: Any = None,
        statistics: Iterable[tuple[str, type]] = (),
        keep_fills: bool = False,
    ) -> None:
        self.path = Path(path)
        self.reader = JournalReader(self.path)
        header = robot_header(self.reader)  # refused in words: no robot, a newer codec
        self.header = header
        self.key = journal_key(header)
        self.run = run_number(self.key)
        self.kernel = kernel_from_header(header, registry)
        self.cash = initial_cash(header)
        self.extra_stats = [(name, _started(name, cls)) for name, cls in statistics]
        self.fills: list[Fill] | None = [] if keep_fills else None  # for reconciliation
        self.order_qty: dict[str, int] = {}  # client id -> the most it may fill
        self.divergences = 0
        self.first_divergence: str | None = None
        self.failure: StrategyError | None = None  # the strategy error the run stopped on

    # -- the run row ----------------------------------------------------------

    def run_row(self, *, first_seq=None, last_seq=None, start=None, end=None, events=0,
                complete=False, verified=None, stats=None) -> tuple:  # fmt: skip
        h = self.header
        strategy = h.get("strategy") or {}
        return (
            self.run,
            self.key,
            str(self.path),
            h.get("robot"),
            h.get("run_id"),
            h.get("mode"),
            h.get("config_hash"),
            strategy.get("name"),
            strategy.get("version"),
            h.get("roboframe"),
            first_seq,
            last_seq,
            start,
            end,
            events,
            int(complete),
            None if verified is None else int(verified),
            None if stats is None else json.dumps(stats, sort_keys=True),
        )

    # -- the replay -----------------------------------------------------------

    @quietly
    def replay(self, sink: Sink) -> RunReport:
        rows = _Rows(sink)
        kernel = self.kernel
        handlers = kernel.handlers
        book = kernel.book
        positions = book.positions
        instruments = kernel.instruments
        tick_size = {s: float(i.tick_size) for s, i in instruments.items()}
        tick_value = {s: p.inst.tick_value_float for s, p in positions.items()}
        contrib = dict.fromkeys(positions, 0.0)
        marks: list = []  # first TRADE_MARKS round trips, for the report
        trades_rows = rows.table("trades")
        run = self.run

        def write_trade(trade) -> None:
            inst = instruments[trade.symbol]
            row = trade.as_dict(inst)
            n = ledger.count
            trades_rows.append(
                (run, n, trade.symbol, trade.side, trade.qty, trade.entry_ts,
                 float(row["entry_price"]), trade.exit_ts, float(row["exit_price"]),
                 trade.pnl, int(trade.open_at_end))
            )  # fmt: skip
            if len(marks) < TRADE_MARKS:
                marks.append(row)
            if len(trades_rows) >= BATCH_ROWS:
                rows.flush("trades")

        ledger = Ledger(instruments, on_trade=write_trade)  # every round trip becomes a row

        cash = float(self.cash)
        base = peak = cash
        max_dd = 0.0
        n_marks = exposed = 0
        first_ts = last_ts = 0
        equity_curve, drawdown_curve = Curve(), Curve()
        position_curves = {s: Curve() for s in positions}
        price_curves = {s: Curve() for s in positions}
        events_rows = rows.table("events")
        states_rows = rows.table("states")
        positions_rows = rows.table("positions")
        strategy_rows = rows.table("strategy_states")
        extra = self.extra_stats
        equity = cash
        check = OutputCheck()  # replayed actions against the journal's records
        first_seq = last_seq = None
        count = 0
        fills_before = 0
        open_orders: dict[str, tuple[int, int]] = {}  # client id -> (seq, ts) of creation
        snapshot = state_reader(kernel.strategy)
        risk = kernel.risk
        open_now = kernel.orders.open
        pnl = dict.fromkeys(positions, (0.0, 0.0))  # symbol -> (realized, unrealized)
        realized = unrealized = 0.0

        # A market event is marked (equity, drawdown, exposure) after its answers, as
        # the backtest marks it: a fill at the bar's close, and what answered that.
        waiting: tuple[str, int] | None = None  # (symbol, ts) of the event to mark
        step_ids: set[str] = set()  # the orders its actions (and theirs) made or moved
        # of those, the market orders a paper exchange filling at the close fills at
        # once, in the step: any other fill comes with a later market event (a tick of
        # the same time included), which the backtest marks this one before
        at_close = fills_at_close(self.header)
        market_ids: set[str] = set()
        moved = False  # a fill since the last mark: every symbol's value is taken anew

        held: tuple[int, float] | None = None  # the last mark's (ts, equity), not yet taken

        def take(ts: int, value: float) -> None:
            """Take a time's equity: after its last market event, as the backtest
            takes it (a hedged pair's legs of one minute move together)."""
            nonlocal peak, max_dd
            peak, max_dd = time_taken(value, peak, max_dd)
            equity_curve.add(ts, value)
            drawdown_curve.add(ts, (value / peak - 1.0) * 100 if peak > 0 else 0.0)

        def mark(symbol: str, ts: int) -> None:
            nonlocal base, equity, n_marks, exposed, moved, held
            if moved:  # as the backtest does: the same floats
                moved = False
                base = revalued(base, positions, tick_value, contrib)
            pos = positions[symbol]
            now = (pos.cash + pos.qty * pos.last) * tick_value[symbol]
            base += now - contrib[symbol]
            contrib[symbol] = now
            equity = base - book.fees_float
            n_marks += 1
            if book.open_count:
                exposed += 1
            if held is not None and held[0] != ts:
                take(*held)
            held = (ts, equity)
            price_curves[symbol].add(ts, pos.last * tick_size[symbol])

        records = self.reader.records()
        receipt = receipt_clock(self.header)
        stopped: tuple[int, str] | None = None  # the strategy error the run ended on
        for record in records:
            if record.kind == NOTE:
                stopped = stopped_note(record) or stopped
                if closed_note(record):
                    self._diverged(check.closed())
                continue
            stopped = None  # records after it: a run resumed with the strategy fixed
            if record.kind == ACTIONS:
                self._diverged(check.journaled(record))
                continue
            if record.kind != MESSAGE:
                continue
            self._diverged(check.message(record.offset))
            batch = message_events(self.reader, record)
            seq = record.seq - 1
            recv_ns = record.recv_ns
            if receipt:
                kernel.received(recv_ns)
            if first_seq is None:
                first_seq = record.seq
            count += len(batch)
            for event in batch:
                seq += 1
                kind = type(event)
                ts = event.ts
                symbol = getattr(event, "symbol", None)
                if waiting is not None and not (
                    ts <= waiting[1]
                    and (
                        (kind is OrderUpdate and event.client_id in step_ids)
                        or (kind is Fill and event.client_id in market_ids)
                    )
                ):
                    mark(*waiting)
                    waiting = None
                events_rows.append(
                    (run, seq, ts, recv_ns, _KIND[kind], symbol, event_data(event, tick_size))
                )
                try:
                    actions = handlers[kind](event)
                except StrategyError as exc:
                    self.failure = failed_on(exc, seq, event)
                    count -= record.seq + len(batch) - 1 - seq  # never handled
                    break
                rejected = kernel.take_rejected()
                if actions or rejected:
                    check.produced(seq, event, (list(actions), rejected))
                    self._write_actions(rows, seq, ts, actions, rejected, open_orders)
                touched = None
                if waiting is not None:  # this event answered it (see above)
                    step_ids.update(a.client_id for a in actions)  # and its orders too
                    if at_close:
                        market_ids.update(_market_orders(actions))
                if kind is Bar or kind is Tick:
                    if not first_ts:
                        first_ts = ts
                    last_ts = ts
                    pos = positions.get(symbol)
                    if pos is not None:
                        touched = pos
                        waiting = (symbol, ts)
                        step_ids = {a.client_id for a in actions}
                        market_ids = _market_orders(actions) if at_close else set()
                elif kind is Fill:
                    if self.fills is not None:
                        self.fills.append(event)
                    if kernel.counters["fills"] != fills_before:  # not a duplicate
                        fills_before = kernel.counters["fills"]
                        moved = True
                        event = kernel.as_booked(event)  # a fee that is no number: none
                        ledger.on_fill(event)
                        touched = positions[event.symbol]
                        position_curves[event.symbol].add(ts, touched.qty)
                        rows.table("fills").append(
                            (run, seq, ts, event.client_id, event.symbol, event.side, event.qty,
                             event.price * tick_size[event.symbol], event.trade_id,
                             float(Decimal(event.fee)))
                        )  # fmt: skip
                    self._finish_order(rows, event.client_id, seq, ts, open_orders)
                elif kind is OrderUpdate:
                    self._finish_order(rows, event.client_id, seq, ts, open_orders)
                for entry in extra:
                    try:
                        entry[1].on_event(event, kernel)
                    except Exception as exc:  # its own bug: it alone is left out
                        extra[extra.index(entry)] = (entry[0], _Failed(entry[0], exc))
                if touched is not None:
                    row = position_row(run, seq, touched, tick_size, tick_value)
                    positions_rows.append(row)
                    pnl[touched.symbol] = (row[6], row[7])
                    realized = unrealized = 0.0
                    for r, u in pnl.values():
                        realized += r
                        unrealized += u
                states_rows.append(
                    (run, seq, ts, cash + realized + unrealized - book.fees_float,
                     realized, unrealized, book.fees_float, len(open_now), risk.state)
                )  # fmt: skip
                state = snapshot()
                if state is not None:
                    strategy_rows.append((run, seq, _dumps(state).decode()))
            last_seq = seq
            if self.failure is not None:  # the rest of the message was never handled
                self._diverged(stopped_there(records, check, self.failure))
                break
            if len(events_rows) >= BATCH_ROWS:
                rows.flush()
        if waiting is not None:
            mark(*waiting)
        if held is not None:
            take(*held)
        if stopped is not None and self.failure is None:
            self._diverged(unraised(check, *stopped))
        for cid, (seq, ts) in sorted(open_orders.items()):
            self._order_row(rows, cid, seq, ts, None, None)
        torn = self.reader.torn_tail
        complete = torn is None and kernel.risk.state == STOPPED  # the run ended
        last_price = last_prices(positions, last_ts)
        ledger.finish(last_price)
        tracker = EquityTracker(cash)
        tracker.events, tracker.exposed, tracker.peak, tracker.max_dd = (
            n_marks,
            exposed,
            peak,
            max_dd,
        )
        tracker.equity = float(self.cash + book.net_money())
        fees = float(sum((p.fees for p in positions.values()), Decimal(0)))
        stats = summarize(ledger, tracker, fees=fees, start=first_ts, end=last_ts)
        stats.update(order_counts(kernel))  # as backtest --json gives them
        for name, stat in extra:
            stats[name] = _result(name, stat)
        rows.flush()
        sink(
            "runs",
            [
                self.run_row(
                    first_seq=first_seq,
                    last_seq=last_seq,
                    start=first_ts or None,
                    end=last_ts or None,
                    events=count,
                    complete=complete,
                    verified=self.divergences == 0,
                    stats=stats,
                )
            ],
        )
        return RunReport(
            key=self.key,
            robot=str(self.header.get("robot")),
            run_id=str(self.header.get("run_id")),
            mode=str(self.header.get("mode")),
            journal=str(self.path),
            stats=stats,
            equity=equity_curve.finished(),
            drawdown=drawdown_curve.finished(),
            positions={s: c.finished() for s, c in position_curves.items()},
            prices={s: c.finished() for s, c in price_curves.items()},
            trades=marks,
            complete=complete,
            failure=None if self.failure is None else failure_note(self.failure),
        )

    # -- actions and orders ---------------------------------------------------

    def _write_actions(self, rows, seq, ts, actions, rejected, open_orders) -> None:
        table = rows.table("actions")
        tick = self.kernel.instruments
        n = 0
        for action in actions:
            if type(action) is NewOrder:
                price = (
                    action.price * float(tick[action.symbol].tick_size) if action.price else None
                )
                table.append(
                    (self.run, seq, n, "new", action.client_id, action.symbol, action.side,
                     action.qty, action.type, price, None)
                )  # fmt: skip
                open_orders[action.client_id] = (seq, ts)
                self.order_qty[action.client_id] = action.qty
            elif type(action) is Cancel:
                table.append(
                    (self.run, seq, n, "cancel", action.client_id, None, None, None, None, None,
                     None)
                )  # fmt: skip
            elif type(action) is Replace:
                cid = action.client_id  # the most it may fill: its largest size asked
                self.order_qty[cid] = max(self.order_qty.get(cid, 0), action.qty)
                own = self.kernel.orders.orders.get(action.client_id)
                symbol = own.symbol if own else None
                price = action.price * float(tick[symbol].tick_size) if own else None
                table.append(
                    (self.run, seq, n, "replace", action.client_id, symbol,
                     own.side if own else None, action.qty, "limit", price, None)
                )  # fmt: skip
            n += 1
        for update in rejected:
            own = self.kernel.orders.orders.get(update.client_id)
            if update.status in ("replace_rejected", "cancel_rejected"):  # the order goes on
                table.append(
                    (self.run, seq, n, update.status, update.client_id,
                     own.symbol if own else None, own.side if own else None, None, None, None,
                     update.reason)
                )  # fmt: skip
                n += 1
                continue
            price = None  # a limit order's price, as for a new one
            if own is not None and own.type == "limit" and own.price:
                price = own.price * float(tick[own.symbol].tick_size)
            table.append(
                (self.run, seq, n, "rejected", update.client_id,
                 own.symbol if own else None, own.side if own else None,
                 own.qty if own else None, own.type if own else None, price, update.reason)
            )  # fmt: skip
            n += 1
            # a new order refused by risk is born finished: its one order row now.
            # A refused cancel names an order that has (or will have) its own row.
            if (
                own is not None
                and own.status == "rejected"
                and update.reason == (f"risk: {own.reason}")
            ):
                self._order_row(rows, update.client_id, seq, ts, seq, ts)

    def _finish_order(self, rows, cid: str, seq: int, ts: int, open_orders: dict) -> None:
        created = open_orders.get(cid)
        if created is None:
            return
        own = self.kernel.orders.orders.get(cid)
        if own is None or own.status not in OPEN_STATES:
            del open_orders[cid]
            self._order_row(rows, cid, created[0], created[1], seq, ts)

    def _order_row(self, rows, cid, seq, ts, done_seq, done_ts) -> None:
        own = self.kernel.orders.orders.get(cid)
        if own is None:
            return
        inst = self.kernel.instruments[own.symbol]
        price = own.price * float(inst.tick_size) if own.price else None
        status = "open" if own.status in OPEN_STATES else own.status
        rows.table("orders").append(
            (self.run, cid, seq, ts, own.symbol, own.side, own.qty, own.type, price, status,
             own.filled, done_seq, done_ts, own.reason or None)
        )  # fmt: skip

    # -- verification against the journal's own records -----------------------

    def _diverged(self, divergence: Divergence | None) -> None:
        if divergence is None:
            return
        self.divergences += 1
        if self.first_divergence is None:
            self.first_divergence = str(divergence).replace("\n", ";")


class _Failed:
    """A plugin statistic that raised: left out of the run, its error in its place
    (the analysis of every journal goes on, as for a report section that fails)."""

    def __init__(self, name: str, exc: Exception, when: str = "on_event") -> None:
        self.error = f"statistic {name!r} {when} raised {described(exc)}"
        log.warning("%s; left out of this run's statistics", self.error)

    def on_event(self, event: Any, kernel: Any) -> None:
        pass

    def result(self) -> dict:
        return {"error": self.error}


def _started(name: str, cls: type) -> Any:
    try:
        return cls()
    except Exception as exc:
        return _Failed(name, exc, "on start")


def _result(name: str, stat: Any) -> Any:
    """A statistic's result, checked to be JSON (it is stored as JSON)."""
    try:
        value = stat.result()
        json.dumps(value)
    except Exception as exc:
        return _Failed(name, exc, "result()").result()
    return value


def failure_note(failure: StrategyError) -> str:
    return f"stopped on a strategy error at seq {failure.seq}: {failure}"
