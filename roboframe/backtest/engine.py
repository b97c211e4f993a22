"""The backtest: the robot's own kernel, driven from history, in step with
the paper exchange. No threads, no sockets, no clock.

For each market event, in time order:

1. the paper exchange fills what the event allows (orders resting from
   before: a market order fills at this bar's open), and each update or fill
   goes to the kernel as an event;
2. the kernel handles the market event; its actions go to the exchange,
   whose answers (accepted, or filled at once with ``fill_at: close``) go
   back to the kernel as events.

Every event the kernel sees is journaled exactly as in a live run, with the
event's own time as its receive time, so two backtests of the same robot on
the same data write byte-identical journals and ``roboframe replay --verify``
checks a backtest's journal like any other. To keep the hot path cheap,
consecutive events share one journal frame (a batch), flushed before any
actions are recorded.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from roboframe.backtest.stats import EquityTracker, round_trips, summarize
from roboframe.builtin.paper import PaperExchange
from roboframe.core import codec
from roboframe.core.events import Bar, Control, Fill, Tick
from roboframe.core.kernel import Kernel
from roboframe.core.robot import JOURNAL_SUFFIX, journal_header, make_strategy
from roboframe.journal import JournalWriter

_BATCH = 512  # events per journal frame between actions


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
    ) -> None:
        self.spec = spec
        self.events = events
        self.cash = Decimal(cash)
        self.fill_at = fill_at
        self.run_id = backtest_run_id(spec, data_id, self.cash, fill_at)
        strategy, strategy_cls, _ = make_strategy(spec, registry)
        self.kernel = Kernel(spec, self.run_id, strategy)
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
        self.fills: list[Fill] = []
        self._pending: list[bytes] = []
        self._pending_seq = 1
        self.seq = 0

    # -- journaling -----------------------------------------------------------

    def _flush_pending(self, recv_ns: int) -> None:
        pending = self._pending
        if pending:
            raw = pending[0] if len(pending) == 1 else codec.encode_batch(pending)
            self.writer.append_message(self._pending_seq, recv_ns, raw)
            self._pending = []
        self._pending_seq = self.seq + 1

    def _feed(self, event: Any, depth: int = 0) -> None:
        """Journal ``event``, let the kernel handle it, route its actions."""
        kernel = self.kernel
        self.seq += 1
        if self.writer is not None:
            self._pending.append(codec.encode(event))
            if len(self._pending) >= _BATCH:
                self._flush_pending(event.ts)
        actions = kernel.handlers[type(event)](event)
        if type(event) is Fill:
            self.fills.append(event)
        if actions or kernel.rejected:
            self._act(actions, event.ts, depth)

    def _act(self, actions: list, ts: int, depth: int) -> None:
        rejected = self.kernel.take_rejected()
        if self.writer is not None:
            seq = self.seq
            self._flush_pending(ts)
            self.writer.append_actions(seq, codec.encode_outputs(actions, rejected))
        for action in actions:
            for answer in self.exchange.submit(action, ts):
                self._feed(answer, depth + 1)

    # -- the run --------------------------------------------------------------

    def run(self) -> BacktestResult:
        started = time.perf_counter()
        kernel = self.kernel
        exchange = self.exchange
        book = kernel.book
        positions = book.positions
        tracker = EquityTracker(float(self.cash))
        contrib = dict.fromkeys(positions, 0.0)
        tick_value = {s: p.inst.tick_value_float for s, p in positions.items()}
        base = float(self.cash)
        feed = self._feed
        first_ts = last_ts = 0
        last_price: dict[str, tuple[int, int]] = {}
        progress, next_report = self.progress, 100_000
        for event in self.events:
            ts = event.ts
            if not first_ts:
                first_ts = ts
                feed(Control("start", ts))
            last_ts = ts
            if exchange.open_orders:
                for answer in exchange.on_market(event):
                    feed(answer)
            else:
                exchange.last[event.symbol] = event
                exchange.ts = ts
            feed(event)
            symbol = event.symbol
            pos = positions.get(symbol)
            if pos is None:
                continue
            contrib_now = (pos.cash + pos.qty * pos.last) * tick_value[symbol]
            base += contrib_now - contrib[symbol]
            contrib[symbol] = contrib_now
            tracker.mark(base - book.fees_float, book.open_count > 0)
            if progress is not None and tracker.events >= next_report:
                progress(tracker.events)
                next_report += 100_000
        if first_ts:
            feed(Control("stop", last_ts, {"reason": "data ended"}))
        for symbol, pos in positions.items():
            if pos.last:
                last_price[symbol] = (last_ts, pos.last)
        if self.writer is not None:
            self._flush_pending(last_ts)
            self.writer.close()
        fees = float(sum((p.fees for p in positions.values()), Decimal(0)))
        final = float(self.cash + kernel.book.net_money())
        tracker.equity = final
        trades = round_trips(self.fills, kernel.instruments, last_price)
        stats = summarize(trades, tracker, fees=fees, start=first_ts, end=last_ts)
        return BacktestResult(
            stats=stats,
            trades=[t.as_dict(kernel.instruments[t.symbol]) for t in trades],
            journal=str(self.journal_path) if self.journal_path else None,
            kernel=kernel,
            elapsed_s=time.perf_counter() - started,
        )
