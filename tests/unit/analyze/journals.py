"""Hand-made journals with states known at known sequence numbers."""

from __future__ import annotations

from pathlib import Path

from roboframe.core import codec
from roboframe.core.events import Control, NewOrder, OrderUpdate
from roboframe.core.kernel import Kernel
from roboframe.core.robot import journal_header, make_strategy
from roboframe.core.strategy import Strategy
from roboframe.journal import JournalWriter
from roboframe.replay import follow_rules
from roboframe.testing.helpers import MINUTE_NS, T0, bar, fill, make_spec

SI = "Si-12.26"


class Scripted(Strategy):
    """Buys 2 on the first bar, offers 1 at 110 on the second; counts bars."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.bars = 0
        self.last_close = 0
        self._hidden = "not state"

    def on_bar(self, bar, ctx):
        self.bars += 1
        self.last_close = bar.close
        if self.bars == 1:
            return [ctx.buy(bar.symbol, 2)]
        if self.bars == 2:
            return [ctx.sell(bar.symbol, 1, price=110)]
        return None


def scripted_spec(**sections):
    return make_spec(
        strategy={"plugin": "tests.unit.analyze.journals:Scripted", "params": {}},
        **sections,
    )


def write_journal(
    path: Path, spec, events, *, run_id: str = "r1", mode: str = "live", without=()
) -> list:
    """Drive a kernel with ``events`` (callables of the last actions may make them)
    and journal everything like a live run; return ``[(seq, event, actions)]``.
    ``without``: header keys left out, as a journal from before they were written
    (its kernel then follows the rules of then)."""
    strategy, cls, _ = make_strategy(spec)
    header = journal_header(spec, run_id, cls, mode)
    for key in without:
        del header[key]
    kernel = follow_rules(Kernel(spec, run_id, strategy), header)
    out = []
    sent: list[NewOrder] = []
    with JournalWriter(path, header, fsync="never") as writer:
        for seq, item in enumerate(events, start=1):
            event = item(sent) if callable(item) else item
            writer.append_message(seq, event.ts, codec.encode(event))
            actions = list(kernel.handle(event))
            rejected = kernel.take_rejected()
            if actions or rejected:
                writer.append_actions(seq, codec.encode_outputs(actions, rejected))
            sent += [a for a in actions if isinstance(a, NewOrder)]
            out.append((seq, event, actions))
    return out


def at(minute: int) -> int:
    return T0 + minute * MINUTE_NS


def scripted_events(stop: bool = True) -> list:
    """seq 1 start; 2 bar 100 (buy 2); 3 accepted; 4 fill 2 @ 101 fee 1; 5 bar 105
    (sell 1 limit 110); 6 accepted; 7 bar 111; 8 fill 1 @ 110 fee 0.5; 9 bar 108;
    10 stop."""
    events = [
        Control("start", at(0)),
        bar(SI, 1, 100),
        lambda sent: OrderUpdate(sent[0].client_id, at(1), "accepted"),
        lambda sent: fill(sent[0], 101, trade_id="T1", ts=at(1) + 1, fee="1"),
        bar(SI, 2, 105),
        lambda sent: OrderUpdate(sent[1].client_id, at(2), "accepted"),
        bar(SI, 3, 111),
        lambda sent: fill(sent[1], 110, trade_id="T2", ts=at(3) + 1, fee="0.5"),
        bar(SI, 4, 108),
    ]
    if stop:
        events.append(Control("stop", at(4), {"reason": "test over"}))
    return events


class Canceller(Strategy):
    """Bar 1: a limit buy at 90 and one at 95 over max_order_qty; bar 2: cancel the
    buy twice; bar 3 (it is cancelled): cancel it once more; bar 4: replace it."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.bars = 0
        self.first = None

    def on_bar(self, bar, ctx):
        self.bars += 1
        if self.bars == 1:
            self.first = ctx.buy(bar.symbol, 1, price=90)
            return [self.first, ctx.buy(bar.symbol, 50, price=95)]
        if self.bars in (2, 3):
            return [ctx.cancel(self.first.client_id)] * (2 if self.bars == 2 else 1)
        if self.bars == 4:
            return [ctx.replace(self.first.client_id, price=91)]
        return None


class Pending(Strategy):
    """Bar 1: three limit buys; bar 2: cancel the first, replace the second."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.bars = 0

    def on_bar(self, bar, ctx):
        self.bars += 1
        if self.bars == 1:
            return [ctx.buy(bar.symbol, 1, price=90 + i) for i in range(3)]
        if self.bars == 2:
            first, second = ctx.open_orders()[:2]
            return [ctx.cancel(first), ctx.replace(second, price=95)]
        return None


class Planned(Strategy):
    """``plan``: ``[[symbol, n, ordered symbol, signed qty]]`` -- a market order
    on the ``n``-th bar (from 1) of ``symbol``."""

    def __init__(self, params) -> None:
        super().__init__(params)
        self.seen: dict[str, int] = {}

    def on_bar(self, bar, ctx):
        n = self.seen[bar.symbol] = self.seen.get(bar.symbol, 0) + 1
        return [
            ctx.buy(ordered, qty) if qty > 0 else ctx.sell(ordered, -qty)
            for symbol, at_bar, ordered, qty in self.params["plan"]
            if symbol == bar.symbol and at_bar == n
        ] or None

    on_tick = on_bar  # the n-th tick alike


def planned_spec(plan: list, **sections):
    return make_spec(
        strategy={"plugin": "tests.unit.analyze.journals:Planned", "params": {"plan": plan}},
        **sections,
    )
