"""The backtest: the robot's own kernel, driven from history, in step with
the paper exchange. No threads, no sockets, no clock.

For each market event, in time order:

1. the paper exchange fills what the event allows (orders resting from
   before: a market order fills at this bar's open), and each update or fill
   goes to the kernel as an event;
2. the kernel handles the market event; its actions go to the exchange,
   whose answers (accepted, or filled at once with ``fill_at: close``) go
   back to the kernel as events.

Answers reach the kernel in the order the exchange gave them, as on a live
order stream: the actions the kernel takes on one answer go to the exchange
at once, but their answers wait behind those already given. So an order sent
in reaction to an answer reaches the exchange after the orders sent before
it -- a cancel never overtakes the order it cancels.

Every event the kernel sees is journaled exactly as in a live run, with the
event's own time as its receive time, so two backtests of the same robot on
the same data write byte-identical journals and ``roboframe replay --verify``
checks a backtest's journal like any other. To keep the hot path cheap,
consecutive events share one journal frame (a batch), flushed before any
actions are recorded.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain
from pathlib import Path
from typing import Any

from roboframe.backtest.stats import (
    EquityTracker,
    Ledger,
    last_prices,
    revalued,
    summarize,
    time_taken,
)
from roboframe.builtin.paper import PaperExchange
from roboframe.core import codec
from roboframe.core.events import Bar, Batch, Control, Fill, Tick
from roboframe.core.kernel import MAX_ANSWERS, NO_ACTIONS, Kernel, too_many_answers
from roboframe.core.loop import strategy_error_note
from roboframe.core.robot import JOURNAL_SUFFIX, journal_header, make_strategy
from roboframe.errors import ConfigError, StrategyError
from roboframe.journal import NOTE, JournalWriter
from roboframe.journal.format import CLOSED, encode_note

_BATCH = 512  # events per journal frame between actions
_NEVER = 1 << 63


def _floor(peak: float, max_dd: float) -> float:
    """Equity below which a new maximum drawdown may start: a cheap test before
    the exact one, with a margin far above rounding so it never hides one."""
    if peak <= 0.0:
        return -math.inf
    return peak * (1.0 + max_dd) + peak * 1e-12


@dataclass
class BacktestResult:
    stats: dict[str, Any]
    trades: list[dict]
    journal: str | None
    kernel: Kernel
    elapsed_s: float
    summary: dict = field(default_factory=dict)


def backtest_run_id(spec: Any, data_id: str, cash: Decimal, fill_at: str) -> str:
    """Deterministic: the same robot on the same data gets the same id."""
    text = f"{spec.config_hash}|{data_id}|{cash}|{fill_at}"
    return "bt-" + hashlib.sha256(text.encode()).hexdigest()[:10]


def free_journal_path(journal_dir: Path, run_id: str) -> Path:
    path = journal_dir / f"{run_id}{JOURNAL_SUFFIX}"
    n = 1
    while path.exists():
        n += 1
        path = journal_dir / f"{run_id}.{n}{JOURNAL_SUFFIX}"
    return path


class Backtest:
    """One backtest of one robot over one stream of market events."""

    def __init__(
        self,
        spec: Any,
        events: Iterable[Tick | Bar],
        *,
        cash: Decimal,
        fill_at: str = "next",
        data_id: str = "",
        journal_dir: Path | None = None,
        journal: bool = True,
        registry: Any = None,
        progress: Callable[[int], None] | None = None,
        keep_trades: bool = False,
    ) -> None:
        self.spec = spec
        self.events = events
        self.cash = Decimal(cash)
        self.fill_at = fill_at
        self.run_id = backtest_run_id(spec, data_id, self.cash, fill_at)
        strategy, strategy_cls, _ = make_strategy(spec, registry)
        self.kernel = Kernel(spec, self.run_id, strategy, registry)
        params = spec.gateway.params
        self.exchange = PaperExchange(
            self.kernel.instruments,
            commission=params.get("commission", 0),
            slippage_ticks=params.get("slippage_ticks", 0),
            fill_at=fill_at,
        )
        self.journal_path: Path | None = None
        self.writer: JournalWriter | None = None
        if journal:
            folder = Path(journal_dir or spec.journal.dir)
            self.journal_path = free_journal_path(folder, self.run_id)
            header = journal_header(spec, self.run_id, strategy_cls, "backtest")
            header["backtest"] = {"data": data_id, "cash": str(self.cash), "fill_at": fill_at}
            self.writer = JournalWriter(self.journal_path, header, fsync=spec.journal.fsync)
        self.progress = progress
        self.ledger = Ledger(self.kernel.instruments, keep=keep_trades)
        self._pending: list[Any] = []  # events not yet in the journal
        self._answers: deque[Any] = deque()  # the exchange's answers, not yet handled
        self._pending_seq = 1
        self.seq = 0

    # -- journaling -----------------------------------------------------------

    def _flush_pending(self, recv_ns: int) -> None:
        pending = self._pending
        if pending:
            if self.writer is not None:
                raw = codec.encode(pending[0] if len(pending) == 1 else Batch(pending))
                self.writer.append_message(self._pending_seq, recv_ns, raw)
            pending.clear()  # cleared in place: run() holds a reference to it
        self._pending_seq = self.seq + 1

    def _feed(self, event: Any) -> None:
        """Journal ``event``, let the kernel handle it, send its actions; then
        handle the answers they brought."""
        self._handle(event)
        if self._answers:
            self._take_answers()

    def _handle(self, event: Any) -> None:
        """Journal ``event``, let the kernel handle it, send its actions."""
        kernel = self.kernel
        self.seq += 1
        self._pending.append(event)
        if len(self._pending) >= _BATCH:
            self._flush_pending(event.ts)
        actions = kernel.handlers[type(event)](event)
        if type(event) is Fill:
            self.ledger.on_fill(event)
        if actions or kernel.rejected:
            self._act(actions, event.ts)

    def _act(self, actions: list, ts: int) -> None:
        """Journal the actions and send them; the exchange's answers queue up
        behind those not yet handled (see the module's docstring)."""
        rejected = self.kernel.take_rejected()
        if not actions and not rejected:
            return
        seq = self.seq
        self._flush_pending(ts)
        if self.writer is not None:
            self.writer.append_actions(seq, codec.encode_outputs(actions, rejected))
        submit, answers = self.exchange.submit, self._answers
        for action in actions:
            answers.extend(submit(action, ts))

    def _take_answers(self) -> None:
        """Handle the queued answers, oldest first, and the answers those bring."""
        answers = self._answers
        handled = 0
        while answers:
            self._handle(answers.popleft())
            handled += 1
            if handled > MAX_ANSWERS:
                raise too_many_answers()

    def _fire_timers(self, until: int) -> None:
        """Timers due up to ``until``, each at its own time -- every period of a
        repeating timer, also across gaps in the data."""
        kernel = self.kernel
        if until >= _NEVER:  # a plugin feed's time past 2262: no timer is ever later
            raise ConfigError(
                f"a market event at {until} ns: past 2262, out of the 64-bit time range "
                "(a time in the wrong unit?)"
            )
        for timer in kernel.timers_due_by(until):
            self._feed(timer)

    # -- the run --------------------------------------------------------------

    def run(self) -> BacktestResult:
        """Drive the data through the kernel; statistics at the end.

        A strategy error ends the journal at the event it raised on, as a live
        run's does, so ``replay`` and ``analyze`` read the run up to it. Anything
        else that stops it (a bad data row, Ctrl-C) leaves no journal.
        """
        try:
            return self._drive()
        except StrategyError as exc:
            seq = self._pending_seq + len(self._pending) - 1  # the last event fed: that one
            if self._pending:
                self._flush_pending(self._pending[-1].ts)
            if self.writer is not None:
                self.writer.append_record(NOTE, seq, 0, strategy_error_note(exc))
            where = f"event seq {seq}"
            if self.journal_path is not None:
                where += f"; the journal ends there: {self.journal_path}"
            err = StrategyError(f"{exc} ({where})")
            err.seq, err.event = seq, exc.event
            raise err from None
        except BaseException:
            # the data broke off (a bad row) or Ctrl-C: no result, and a journal of it
            # would lack the events still batched and never be closed -- analyze and
            # replay took it for a run "still running" with nothing in it
            if self.writer is not None:
                self.writer.close()
                self.journal_path.unlink(missing_ok=True)
            raise
        finally:
            if self.writer is not None:
                self.writer.close()

    def _drive(self) -> BacktestResult:
        """:meth:`run`'s loop.

        Per market event the hot path does only what every event needs:
        journal it (a list append; a batch is encoded at a time, in C), let the
        kernel handle it, mark equity. Fills, timers, the frames around
        actions and new equity coefficients run only when something happened.
        """
        started = time.perf_counter()
        kernel = self.kernel
        exchange = self.exchange
        book = kernel.book
        positions = book.positions
        handlers = kernel.handlers
        feed = self._feed
        act = self._act
        answers = self._answers
        take_answers = self._take_answers
        pending = self._pending
        flush_pending = self._flush_pending
        last_seen = exchange.last
        open_orders = exchange.open_orders
        events = iter(self.events)
        first = next(events, None)
        tracker = EquityTracker(float(self.cash))
        if first is None:
            return self._finish(started, 0, 0, tracker)
        first_ts = first.ts
        # the start comes before any market time, as in a live run on recorded data:
        # at the first bar's time, a strategy's ctx.time in on_start (a timer set
        # "an hour from now") differed between the backtest and the live run
        feed(Control("start", 0))
        # one symbol: equity = k + n * last, with k and n changed by fills only;
        # several: each symbol's contribution kept and the total moved by the difference
        single = positions[kernel.symbols[0]] if len(positions) == 1 else None
        tv = single.inst.tick_value_float if single is not None else 0.0
        tick_value = {s: p.inst.tick_value_float for s, p in positions.items()}
        contrib = dict.fromkeys(positions, 0.0)
        counters = kernel.counters
        fills_seen = counters["fills"]
        cash = tracker.cash
        base = equity = peak = held = cash
        held_ts = None  # the time of the equity held, not yet taken (see stats.time_taken)
        k = n = 0.0
        max_dd = 0.0
        floor = _floor(peak, max_dd)
        marks = exposed = exposed_since = 0
        is_open = False
        progress = self.progress
        next_report = 100_000 if progress is not None else _NEVER
        seq = self.seq
        flush_at = self._pending_seq + _BATCH - 1
        changed = True
        event = first
        for event in chain((first,), events):
            ts = event.ts
            symbol = event.symbol
            if open_orders or kernel.next_due <= ts:
                self.seq = seq
                if kernel.next_due <= ts:
                    self._fire_timers(ts)
                if open_orders:
                    answers.extend(exchange.on_market(event))
                    if answers:
                        take_answers()
                else:
                    last_seen[symbol] = event
                seq = self.seq
                flush_at = self._pending_seq + _BATCH - 1
                changed = True
            else:
                last_seen[symbol] = event
            # the market event itself: _feed inlined
            seq += 1
            pending.append(event)
            if seq >= flush_at:
                self.seq = seq
                flush_pending(ts)
                flush_at = seq + _BATCH
            actions = handlers[type(event)](event)
            if actions is not NO_ACTIONS:
                self.seq = seq
                act(actions, ts)
                if answers:
                    take_answers()
                seq = self.seq
                flush_at = self._pending_seq + _BATCH - 1
                changed = True
            if changed:  # fills may have moved positions, cash and fees
                changed = False
                if is_open:
                    exposed += marks - exposed_since
                exposed_since = marks
                is_open = book.open_count > 0
                if single is not None:
                    k = cash - book.fees_float + single.cash * tv
                    n = single.qty * tv
                elif counters["fills"] != fills_seen:  # a fill moves its symbol's value now
                    fills_seen = counters["fills"]
                    base = revalued(base, positions, tick_value, contrib)
            if single is not None:
                if symbol != single.symbol:
                    continue
                equity = k + n * single.last
            else:
                pos = positions.get(symbol)
                if pos is None:
                    continue
                now = (pos.cash + pos.qty * pos.last) * tick_value[symbol]
                base += now - contrib[symbol]
                contrib[symbol] = now
                equity = base - book.fees_float
            marks += 1
            if ts != held_ts:  # the equity held is its time's last: its peak, its drawdown
                held_ts = ts
                if held > peak:
                    peak = held
                    floor = _floor(peak, max_dd)
                elif held < floor:
                    drawdown = held / peak - 1.0
                    if drawdown < max_dd:
                        max_dd = drawdown
                    floor = _floor(peak, max_dd)
            held = equity
            if marks >= next_report:
                progress(marks)
                next_report += 100_000
        if is_open:
            exposed += marks - exposed_since
        peak, max_dd = time_taken(held, peak, max_dd)
        self.seq = seq
        last_ts = event.ts
        feed(Control("stop", last_ts, {"reason": "data ended"}))
        tracker.events, tracker.exposed, tracker.peak, tracker.max_dd = (
            marks,
            exposed,
            peak,
            max_dd,
        )
        return self._finish(started, first_ts, last_ts, tracker)

    def _finish(
        self, started: float, first_ts: int, last_ts: int, tracker: EquityTracker
    ) -> BacktestResult:
        kernel = self.kernel
        positions = kernel.book.positions
        if self.writer is not None:
            self._flush_pending(last_ts)
            self.writer.append_record(NOTE, self.seq, 0, encode_note(CLOSED))
            self.writer.close()
        last_price = last_prices(positions, last_ts)
        tracker.equity = float(self.cash + kernel.book.net_money())
        fees = float(sum((p.fees for p in positions.values()), Decimal(0)))
        self.ledger.finish(last_price)
        stats = summarize(self.ledger, tracker, fees=fees, start=first_ts, end=last_ts)
        return BacktestResult(
            stats=stats,
            trades=[t.as_dict(kernel.instruments[t.symbol]) for t in self.ledger.trades],
            journal=str(self.journal_path) if self.journal_path else None,
            kernel=kernel,
            elapsed_s=time.perf_counter() - started,
        )
